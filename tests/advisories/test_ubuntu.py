"""The Ubuntu importer against the Ubuntu OSV samples in ../shared/feeds/samples/ubuntu-osv (esm/ included)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from advisories.importers.base import AdvisoryRecord, Rejected, Status
from advisories.importers.documents import iter_documents
from advisories.importers.osv import parse_record
from advisories.importers.ubuntu import UbuntuImporter

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO.parent / "shared" / "feeds" / "samples" / "ubuntu-osv"


@pytest.fixture(scope="module")
def samples() -> Path:
    if not SAMPLES.exists():
        pytest.skip(f"{SAMPLES} is missing: the shared feeds must sit beside the repository (../shared/feeds)")
    return SAMPLES


def import_path(path: Path) -> tuple[dict[str, AdvisoryRecord], list[Rejected]]:
    importer = UbuntuImporter()
    records: dict[str, AdvisoryRecord] = {}
    rejected: list[Rejected] = []
    for document in iter_documents(path):
        if importer.accepts(document.name):
            for item in importer.parse(document):
                if isinstance(item, Rejected):
                    rejected.append(item)
                else:
                    assert isinstance(item, AdvisoryRecord)
                    records[item.id] = item
    return records, rejected


def raw(samples: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((samples / name).read_text())
    return data


def test_every_sample_parses(samples: Path) -> None:
    files = sorted(samples.rglob("*.json"))
    records, rejected = import_path(samples)

    assert rejected == []
    assert len(records) == len(files) == 9
    assert set(records) == {json.loads(f.read_text())["id"] for f in files}
    assert {r.source for r in records.values()} == {"ubuntu"}
    withdrawn = {d["id"] for d in (json.loads(f.read_text()) for f in files) if "withdrawn" in d}
    assert {r.id for r in records.values() if r.withdrawn} == withdrawn
    assert withdrawn == {"UBUNTU-CVE-2013-2208", "UBUNTU-CVE-2020-36325", "UBUNTU-CVE-2014-2901"}


def test_canonical_tarball_layout(samples: Path, tmp_path: Path) -> None:
    """osv-all.tar.xz as security-metadata.canonical.com serves it; other files in it are not records."""
    bundle = tmp_path / "osv-all.tar.xz"
    with tarfile.open(bundle, "w:xz") as archive:
        for file in samples.rglob("*.json"):
            folder = "usn" if file.name.startswith("USN-") else "cve/20xx"
            archive.add(file, f"osv/{folder}/{file.name}")
        archive.add(samples / "USN-5614-1.json", "vex/cve/2022/CVE-2021-3782.json")
    records, rejected = import_path(bundle)
    assert (len(records), rejected) == (9, [])


def test_accepts() -> None:
    importer = UbuntuImporter()
    assert importer.accepts("osv/usn/USN-5614-1.json")
    assert importer.accepts("osv/cve/2021/UBUNTU-CVE-2021-3782.json")
    assert not importer.accepts("osv/lsn/LSN-0112-1.json")  # livepatch: kernels are not in images
    assert not importer.accepts("vex/cve/2023/CVE-2023-38545.json")
    assert not importer.accepts("osv/usn/USN-5614-1.json.sig")


def test_usn_has_one_row_per_release(samples: Path) -> None:
    records, _ = import_path(samples)
    usn = records["USN-5614-1"]
    source = raw(samples, "USN-5614-1.json")

    assert usn.upstream == ("UBUNTU-CVE-2021-3782",)
    assert usn.aliases == ()
    assert [(a.distro, a.release, a.name) for a in usn.affected] == [
        ("ubuntu", "18.04", "wayland"),
        ("ubuntu", "20.04", "wayland"),
        ("ubuntu", "22.04", "wayland"),
    ]
    for affected, entry in zip(usn.affected, source["affected"], strict=True):
        assert affected.fixed_versions == (entry["ranges"][0]["events"][1]["fixed"],)
        assert affected.versions == tuple(entry["versions"])
        assert affected.status == Status.FIXED
        assert affected.severity == "medium"  # from cves_map: the notice's CVE is rated medium
        assert affected.purl == entry["package"]["purl"].replace(f"@{affected.fixed_versions[0]}", "")
    assert usn.severities == ()  # Ubuntu rates CVEs, not notices


def test_esm_releases_keep_the_release_and_the_esm_pocket(samples: Path) -> None:
    records, _ = import_path(samples)
    netty = records["UBUNTU-CVE-2022-24823"]
    ecosystems = [e["package"]["ecosystem"] for e in raw(samples, "esm/UBUNTU-CVE-2022-24823.json")["affected"]]

    assert ecosystems[0] == "Ubuntu:Pro:14.04:LTS"
    assert "Ubuntu:25.10" in ecosystems
    assert [a.release for a in netty.affected] == [
        "14.04",
        "16.04",
        "18.04",
        "20.04",
        "22.04",
        "24.04",
        "25.10",
        "26.04",
    ]
    assert len({a.release for a in netty.affected}) == len(netty.affected)
    assert netty.affected[1].purl == "pkg:deb/ubuntu/netty?arch=source&distro=esm-apps/xenial"
    assert netty.affected[1].fixed_versions == ("1:4.0.34-1ubuntu0.1~esm2",)
    assert (netty.affected[0].status, netty.affected[0].fixed_versions) == (Status.AFFECTED, ())
    assert (netty.affected[6].status, netty.affected[6].purl) == (
        Status.AFFECTED,
        "pkg:deb/ubuntu/netty?arch=source&distro=questing",
    )


def test_pro_and_standard_releases_in_one_record(samples: Path) -> None:
    records, _ = import_path(samples)
    unzip = records["UBUNTU-CVE-2014-9913"]
    assert [(a.release, a.purl.rsplit("distro=", 1)[1]) for a in unzip.affected] == [
        ("14.04", "trusty/esm"),
        ("16.04", "xenial"),
    ]
    assert unzip.related == ("USN-4672-1",)


def test_priorities(samples: Path) -> None:
    records, _ = import_path(samples)
    glibc = records["UBUNTU-CVE-2016-20013"]
    vendor = [s for s in glibc.severities if s.type == "vendor"]
    assert [(s.source, s.rating) for s in vendor] == [("ubuntu", "negligible")]
    assert {a.severity for a in glibc.affected} == {"negligible"}
    assert len(glibc.affected) == len(raw(samples, "UBUNTU-CVE-2016-20013.json")["affected"])

    wayland = records["UBUNTU-CVE-2021-3782"]
    cvss = [s for s in wayland.severities if s.type == "CVSS_V3"]
    assert len(cvss) == 1  # listed twice in the record
    assert (cvss[0].score, cvss[0].rating) == (6.6, "MEDIUM")
    assert {a.severity for a in wayland.affected} == {"medium"}

    jansson = records["UBUNTU-CVE-2020-36325"]  # schema 1.6.3: no priority, no purl
    assert [s.type for s in jansson.severities] == ["CVSS_V3"]
    assert jansson.affected[0].severity == ""
    assert jansson.affected[0].purl == "pkg:deb/ubuntu/jansson?distro=ubuntu-14.04"


def test_unfixed_package_lists_its_affected_versions(samples: Path) -> None:
    records, _ = import_path(samples)
    (gitlab,) = records["UBUNTU-CVE-2026-1403"].affected
    assert (gitlab.release, gitlab.status, gitlab.fixed_versions) == ("16.04", Status.AFFECTED, ())
    assert gitlab.versions == ("8.4.3+dfsg-9", "8.4.3+dfsg-12", "8.5.8+dfsg-5")
    assert records["UBUNTU-CVE-2026-1403"].upstream == ("CVE-2026-1403",)


def test_usn_takes_the_highest_priority_of_its_cves() -> None:
    def cve(cve_id: str, priority: str) -> dict[str, Any]:
        return {"id": cve_id, "severity": [{"type": "Ubuntu", "score": priority}]}

    entry = {
        "package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "curl"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "7.81.0-1ubuntu1.15"}]}],
        "database_specific": {"cves_map": {"cves": [cve("CVE-1", "low"), cve("CVE-2", "high"), cve("CVE-3", "x")]}},
    }
    record = parse_record({"id": "USN-9999-1", "affected": [entry]}, source="ubuntu")
    assert isinstance(record, AdvisoryRecord)
    assert record.affected[0].severity == "high"


@pytest.mark.parametrize(
    ("ecosystem", "release"),
    [
        ("Ubuntu:Pro:FIPS:18.04:LTS", "18.04:fips"),
        ("Ubuntu:Pro:FIPS-preview:22.04:LTS", "22.04:fips-preview"),
        ("Ubuntu:Pro:24.04:LTS:Realtime:Kernel", "24.04:realtime-kernel"),
        ("Ubuntu:Pro:20.04:LTS", "20.04"),
        ("Ubuntu:24.10", "24.10"),
    ],
)
def test_pro_streams_with_their_own_builds_get_their_own_release(ecosystem: str, release: str) -> None:
    entry = {"package": {"ecosystem": ecosystem, "name": "openssl"}, "versions": ["1.1.1f-1ubuntu2"]}
    record = parse_record({"id": "UBUNTU-CVE-2024-1", "affected": [entry]}, source="ubuntu")
    assert isinstance(record, AdvisoryRecord)
    assert [(a.distro, a.release, a.status) for a in record.affected] == [("ubuntu", release, Status.AFFECTED)]
