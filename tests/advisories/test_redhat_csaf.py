"""Red Hat CSAF VEX: real documents counted independently, statuses and module streams, hostile input."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisories.importers.base import AdvisoryRecord, Document, DocumentError, Rejected, SeverityType, Status
from advisories.importers.redhat_csaf import (
    RedHatCsafImporter,
    component_from_id,
    component_from_purl,
    evr,
    parse_vex,
    unfixed_status,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
VEX = SHARED / "feeds" / "samples" / "redhat-csaf-vex"
SAMPLES = ["cve-2021-0084.json", "cve-2023-38545.json", "cve-2023-4154.json", "cve-2024-22047.json",
           "cve-2024-24786-simple.json"]  # fmt: skip


def vex_file(name: str) -> Path:
    path = VEX / name
    if not path.exists():
        pytest.skip(f"{path} is missing: the shared feeds must sit beside the repository (../shared/feeds)")
    return path


def from_path(path: Path) -> Document:
    return Document(path.name, lambda: path.open("rb"))


def from_json(value: object, name: str = "cve-2099-0001.json") -> Document:
    data = json.dumps(value).encode()
    return Document(name, lambda: io.BytesIO(data))


def parse(document: Document) -> tuple[AdvisoryRecord, list[Rejected]]:
    items = list(parse_vex(document))
    (record,) = [i for i in items if isinstance(i, AdvisoryRecord)]
    return record, [i for i in items if isinstance(i, Rejected)]


class RawVex:
    """The parts of a VEX document a test needs, read without the importer."""

    def __init__(self, data: dict) -> None:
        self.data = data
        self.helpers: dict[str, dict] = {}
        self._walk(data["product_tree"].get("branches", []))
        self.relationships = {
            r["full_product_name"]["product_id"]: (r["relates_to_product_reference"], r["product_reference"])
            for r in data["product_tree"].get("relationships", [])
        }
        self.vulnerability = data["vulnerabilities"][0]

    def _walk(self, branches: list) -> None:
        for branch in branches:
            if "product" in branch:
                self.helpers[branch["product"]["product_id"]] = branch["product"].get(
                    "product_identification_helper", {}
                )
            self._walk(branch.get("branches", []))

    def rhel_packages(self, status: str, major: str) -> dict[str, set[str]]:
        """{package name: {EVR, ...}} listed under a status for RHEL `major` itself, debug packages left out."""
        found: dict[str, set[str]] = {}
        for product_id in self.vulnerability["product_status"].get(status, []):
            if product_id not in self.relationships:
                continue
            platform, component = self.relationships[product_id]
            if not re.fullmatch(rf"cpe:/[ao]:redhat:enterprise_linux:{major}(::\w+)?", self.helpers[platform]["cpe"]):
                continue
            name, version = component, ""
            purl = re.match(r"pkg:rpm/redhat/([^@?]+)", self.helpers.get(component, {}).get("purl", ""))
            nevra = re.fullmatch(r"(.+)-(\d+):(.+)\.\w+", component)
            if purl:  # "curl.src" is pkg:rpm/redhat/curl?arch=src
                name = purl.group(1)
            if nevra:
                name = nevra.group(1)
                epoch, version = nevra.group(2), nevra.group(3)
                version = version if epoch == "0" else f"{epoch}:{version}"
            if "-debuginfo" in name or "-debugsource" in name:
                continue
            found.setdefault(name, set()).update({version} if version else set())
        return found


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_gives_its_cve(name):
    path = vex_file(name)
    raw = json.loads(path.read_text())
    vulnerability = raw["vulnerabilities"][0]
    record, rejected = parse(from_path(path))

    assert rejected == []
    assert record.id == raw["document"]["tracking"]["id"] == vulnerability["cve"]
    assert record.source == "redhat-csaf"
    errata = {
        m for r in vulnerability.get("remediations", []) if r["category"] == "vendor_fix"
        for m in re.findall(r"RHSA-\d{4}:\d+", r.get("url", ""))
    }  # fmt: skip
    assert set(record.related) == errata
    assert record.aliases == ()
    vectors = {s["cvss_v3"]["vectorString"] for s in vulnerability.get("scores", []) if "cvss_v3" in s}
    assert {s.vector for s in record.severities if s.type == SeverityType.CVSS_V3} == vectors
    vendor = [s.rating for s in record.severities if s.type == SeverityType.VENDOR]
    assert [v.lower() for v in vendor] == [raw["document"]["aggregate_severity"]["text"].lower()]
    if "cwe" in vulnerability:
        assert record.cwes == (vulnerability["cwe"]["id"],)
    assert record.published is not None
    assert record.modified is not None
    assert record.summary
    assert "product_tree" not in record.raw["document"]


def test_curl_socks5_rows_per_rhel_release():
    path = vex_file("cve-2023-38545.json")
    raw = RawVex(json.loads(path.read_text()))
    record, _ = parse(from_path(path))
    rows = {(a.release, a.name): a for a in record.affected}

    for major in ("8", "9"):
        fixed = raw.rhel_packages("fixed", major)
        not_affected = raw.rhel_packages("known_not_affected", major)
        assert {n for (r, n), a in rows.items() if r == major and a.status == Status.FIXED} == set(fixed)
        assert {n for (r, n), a in rows.items() if r == major and a.status == Status.NOT_AFFECTED} == set(
            not_affected
        ) - set(fixed)
        for name, versions in fixed.items():
            assert set(rows[(major, name)].fixed_versions) == versions
    assert len(raw.rhel_packages("fixed", "8")) == 0  # RHEL 8's curl 7.61 predates the bug
    assert sorted(raw.rhel_packages("fixed", "9")) == ["curl", "curl-minimal", "libcurl", "libcurl-devel",
                                                        "libcurl-minimal"]  # fmt: skip
    assert rows[("9", "curl")].fixed_versions == ("7.76.1-23.el9_2.4", "7.76.1-26.el9_3.2")
    assert rows[("9", "curl")].severity == "Important"
    assert {a.distro for a in record.affected} == {"rhel"}
    # Layered products and EUS streams are not RHEL rows.
    assert not any(a.name.startswith(("jbcs-", "puppet-agent")) for a in record.affected)


def test_kernel_not_affected_anywhere():
    path = vex_file("cve-2021-0084.json")
    raw = json.loads(path.read_text())
    record, _ = parse(from_path(path))
    assert len(record.affected) == len(raw["vulnerabilities"][0]["product_status"]["known_not_affected"])
    assert {a.status for a in record.affected} == {Status.NOT_AFFECTED}
    assert sorted({a.release for a in record.affected}) == ["5", "6", "7", "8", "9"]


@pytest.mark.parametrize("name", ["cve-2024-22047.json", "cve-2024-24786-simple.json"])
def test_layered_products_only_give_an_advisory_without_rows(name):
    record, rejected = parse(from_path(vex_file(name)))
    assert record.affected == ()
    assert rejected == []


def test_csaf_security_advisories_are_not_vex():
    folder = SHARED / "feeds" / "samples" / "redhat-csaf-advisory"
    if not folder.exists():
        pytest.skip(f"{folder} is missing: the shared feeds must sit beside the repository")
    for path in sorted(folder.glob("*.json")):
        with pytest.raises(DocumentError, match="csaf_security_advisory"):
            list(parse_vex(from_path(path)))


# Documents of our own making.


def vex(*, status: dict, remediations: list | None = None, branches: list | None = None,
        relationships: list | None = None) -> dict:  # fmt: skip
    return {
        "document": {
            "category": "csaf_vex",
            "title": "pkg: a flaw",
            "aggregate_severity": {"text": "Moderate"},
            "tracking": {
                "id": "CVE-2099-0001",
                "initial_release_date": "2099-01-01T00:00:00+00:00",
                "current_release_date": "2099-01-02T00:00:00",
            },  # fmt: skip
        },
        "product_tree": {
            "branches": branches
            or [
                {
                    "category": "product_name",
                    "name": "RHEL 8",
                    "product": {
                        "product_id": "red_hat_enterprise_linux_8",
                        "name": "RHEL 8",
                        "product_identification_helper": {"cpe": "cpe:/o:redhat:enterprise_linux:8"},
                    },
                },
                {
                    "category": "product_name",
                    "name": "RHEL 9 AppStream",
                    "product": {
                        "product_id": "AppStream-9.4.0.Z.MAIN",
                        "name": "AppStream",
                        "product_identification_helper": {"cpe": "cpe:/a:redhat:enterprise_linux:9::appstream"},
                    },
                },
                {
                    "category": "product_name",
                    "name": "RHEL 9.2 EUS",
                    "product": {
                        "product_id": "AppStream-9.2.0.Z.EUS",
                        "name": "EUS",
                        "product_identification_helper": {"cpe": "cpe:/a:redhat:rhel_eus:9.2::appstream"},
                    },
                },
            ],  # fmt: skip
            "relationships": relationships or [],
        },
        "vulnerabilities": [{"cve": "CVE-2099-0001", "product_status": status, "remediations": remediations or []}],
    }


def rel(parent: str, component: str) -> dict:
    return {
        "category": "default_component_of",
        "full_product_name": {"product_id": f"{parent}:{component}", "name": component},
        "product_reference": component,
        "relates_to_product_reference": parent,
    }


def test_unfixed_statuses_from_remediations():
    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    pids = [f"red_hat_enterprise_linux_8:{n}" for n in names]
    document = vex(
        status={"known_affected": pids[:4], "under_investigation": [pids[4]]},
        relationships=[rel("red_hat_enterprise_linux_8", n) for n in names],
        remediations=[
            {"category": "none_available", "details": "Affected", "product_ids": [pids[0]]},
            {"category": "none_available", "details": "Fix deferred", "product_ids": [pids[1]]},
            {"category": "no_fix_planned", "details": "Will not fix", "product_ids": [pids[2]]},
            {"category": "no_fix_planned", "details": "Out of support scope", "product_ids": [pids[3]]},
        ],
    )
    record, _ = parse(from_json(document))
    assert {a.name: a.status for a in record.affected} == {
        "alpha": Status.AFFECTED,
        "beta": Status.DEFERRED,
        "gamma": Status.WILL_NOT_FIX,
        "delta": Status.WILL_NOT_FIX,
        "epsilon": Status.AFFECTED,
    }
    assert {a.severity for a in record.affected} == {"Moderate"}  # the aggregate, no threats given
    assert record.published.isoformat() == "2099-01-01T00:00:00+00:00"
    assert record.modified.tzinfo is not None  # a date without a zone is read as UTC


def test_fixed_epochs_modules_and_streams():
    mod = "nodejs:18:9040020240101000000:abcdef12"
    document = vex(
        status={
            "fixed": [
                "AppStream-9.4.0.Z.MAIN:tar-2:1.34-6.el9_4.1.x86_64",
                f"AppStream-9.4.0.Z.MAIN:{mod}:nodejs-1:18.20.2-1.module+el9.4.0+21742+692df1ea.x86_64",
                "AppStream-9.4.0.Z.MAIN:python3-0:3.9.18-3.el9_4.1.x86_64",
                "AppStream-9.2.0.Z.EUS:tar-2:1.34-5.el9_2.1.x86_64",  # an EUS stream: left out
                "AppStream-9.4.0.Z.MAIN:python3-debuginfo-0:3.9.18-3.el9_4.1.x86_64",
                "AppStream-9.4.0.Z.MAIN:noversion",
            ],
            "known_affected": ["red_hat_enterprise_linux_8:nodejs:16/nodejs"],
        },
        branches=vex(status={})["product_tree"]["branches"]
        + [
            {
                "category": "product_version",
                "name": mod,
                "product": {
                    "product_id": mod,
                    "name": mod,
                    "product_identification_helper": {"purl": f"pkg:rpmmod/redhat/nodejs@{mod.split(':', 1)[1]}"},
                },
            },
            {
                "category": "product_version",
                "name": "python3",
                "product": {
                    "product_id": "python3-0:3.9.18-3.el9_4.1.x86_64",
                    "name": "python3",
                    "product_identification_helper": {
                        "purl": "pkg:rpm/redhat/python3@3.9.18-3.el9_4.1?arch=x86_64&rpmmod=python39:3.9:1:2"
                    },
                },
            },
        ],  # fmt: skip
        relationships=[
            rel("AppStream-9.4.0.Z.MAIN", "tar-2:1.34-6.el9_4.1.x86_64"),
            rel("AppStream-9.4.0.Z.MAIN", mod),
            rel(f"AppStream-9.4.0.Z.MAIN:{mod}", "nodejs-1:18.20.2-1.module+el9.4.0+21742+692df1ea.x86_64"),
            rel("AppStream-9.4.0.Z.MAIN", "python3-0:3.9.18-3.el9_4.1.x86_64"),
            rel("AppStream-9.2.0.Z.EUS", "tar-2:1.34-5.el9_2.1.x86_64"),
            rel("AppStream-9.4.0.Z.MAIN", "python3-debuginfo-0:3.9.18-3.el9_4.1.x86_64"),
            rel("AppStream-9.4.0.Z.MAIN", "noversion"),
            rel("red_hat_enterprise_linux_8", "nodejs:16/nodejs"),
        ],
    )
    record, rejected = parse(from_json(document))
    rows = {(a.release, a.name, a.module): a for a in record.affected}
    assert set(rows) == {("9", "tar", ""), ("9", "nodejs", "nodejs:18"), ("9", "python3", "python39:3.9"),
                         ("8", "nodejs", "nodejs:16")}  # fmt: skip
    assert rows[("9", "tar", "")].fixed_versions == ("2:1.34-6.el9_4.1",)
    assert rows[("9", "nodejs", "nodejs:18")].fixed_versions == ("1:18.20.2-1.module+el9.4.0+21742+692df1ea",)
    assert rows[("9", "python3", "python39:3.9")].fixed_versions == ("3.9.18-3.el9_4.1",)
    assert rows[("8", "nodejs", "nodejs:16")].status == Status.AFFECTED
    assert [r.reason for r in rejected] == ["fixed product without a version"]


def test_a_fix_wins_over_other_states_of_the_same_row():
    document = vex(
        status={
            "fixed": ["AppStream-9.4.0.Z.MAIN:tar-2:1.34-6.el9_4.1.x86_64"],
            "known_affected": ["AppStream-9.4.0.Z.MAIN:tar"],
        },
        relationships=[
            rel("AppStream-9.4.0.Z.MAIN", "tar-2:1.34-6.el9_4.1.x86_64"),
            rel("AppStream-9.4.0.Z.MAIN", "tar"),
        ],
    )
    record, _ = parse(from_json(document))
    (row,) = record.affected
    assert row.status == Status.FIXED


def test_component_parsing():
    curl = component_from_id("curl-0:7.61.1-30.el8_8.3.x86_64")
    assert (curl.name, curl.evr, curl.arch) == ("curl", "7.61.1-30.el8_8.3", "x86_64")
    md = component_from_id("jbcs-httpd24-mod_md-1:2.4.24-2.el7jbcs.src")
    assert (md.name, md.evr, md.arch) == ("jbcs-httpd24-mod_md", "1:2.4.24-2.el7jbcs", "src")
    assert component_from_id("kernel-rt").name == "kernel-rt"
    assert component_from_id("nodejs:18/nodejs").module == "nodejs:18"
    purl = component_from_purl("pkg:rpm/redhat/foreman-installer@3.7.0.7-1.el8sat?arch=src&epoch=1")
    assert (purl.name, purl.evr, purl.arch) == ("foreman-installer", "1:3.7.0.7-1.el8sat", "src")
    assert component_from_purl("pkg:oci/ubi9@sha256:abc") is None
    assert component_from_purl("not a purl") is None
    assert evr("0", "1.0-1") == evr("", "1.0-1") == "1.0-1"
    assert unfixed_status([("none_available", "Affected")]) == Status.AFFECTED


def test_record_errors_are_rejected_not_raised():
    document = vex(status={})
    document["vulnerabilities"][0]["scores"] = [{"cvss_v3": {"vectorString": "CVSS:3.1/AV:Q"}}]
    document["vulnerabilities"].append({"notes": []})  # two vulnerabilities, the second without a CVE
    items = list(parse_vex(from_json(document)))
    assert [type(i) for i in items] == [Rejected, Rejected]
    assert "malformed CVSS vector" in items[0].reason


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"[]", b'{"document": 1}', json.dumps({"document": {"category": "csaf_base"}}).encode(), b"\xff" * 10,
     b"[" * 100000 + b"]" * 100000],
)  # fmt: skip
def test_unreadable_documents_fail(data):
    with pytest.raises(DocumentError):
        list(parse_vex(Document("cve-2099-0001.json", lambda: io.BytesIO(data))))


def test_accepts_vex_files_only():
    importer = RedHatCsafImporter()
    assert importer.accepts("2023/cve-2023-38545.json")
    assert importer.accepts("cve-2024-24786-simple.json")
    assert not importer.accepts("index.txt")
    assert not importer.accepts("rhsa-2024_6163.json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
PATHS = [
    ("product_tree",), ("product_tree", "branches"), ("product_tree", "relationships"), ("vulnerabilities",),
    ("document", "tracking"), ("document", "aggregate_severity"),
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATHS), json_values, st.binary(max_size=512))
def test_hostile_documents_give_rejections_or_a_document_error_never_a_crash(path, value, garbage):
    document = vex(
        status={"fixed": ["AppStream-9.4.0.Z.MAIN:tar-2:1.34-6.el9_4.1.x86_64"], "known_affected": [1, None]},
        relationships=[rel("AppStream-9.4.0.Z.MAIN", "tar-2:1.34-6.el9_4.1.x86_64"), {"bad": True}],
    )
    hostile = copy.deepcopy(document)
    target = hostile
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    for data in (json.dumps(hostile).encode(), garbage):
        try:
            for item in parse_vex(Document("cve-2099-0001.json", lambda data=data: io.BytesIO(data))):
                assert isinstance(item, AdvisoryRecord | Rejected)
        except DocumentError:
            pass
