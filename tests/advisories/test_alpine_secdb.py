"""Alpine, Wolfi and Chainguard secdb: counts checked against the raw files, merging across files, bad input."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from univers.versions import AlpineLinuxVersion, InvalidVersion

from advisories.importers.alpine_secdb import (
    ROLLING,
    AlpineSecdbImporter,
    parse_feed,
    parse_ids,
    parse_secdb,
)
from advisories.importers.base import AdvisoryRecord, Document, DocumentError, Rejected, Status
from advisories.importers.documents import iter_documents

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SECDB = SHARED / "feeds" / "alpine-secdb"

# The table of ../shared/feeds/alpine-secdb/README.md: file -> (package entries, secfix ids).
README_TABLE = {
    "v3.3/main.yaml": (91, 461),
    "v3.3/community.yaml": (0, 0),
    "v3.4/main.yaml": (117, 672),
    "v3.4/community.yaml": (2, 14),
    "v3.5/main.yaml": (131, 826),
    "v3.5/community.yaml": (20, 102),
    "v3.6/main.yaml": (134, 898),
    "v3.6/community.yaml": (31, 219),
    "v3.7/main.yaml": (163, 1078),
    "v3.7/community.yaml": (37, 411),
    "v3.8/main.yaml": (164, 1139),
    "v3.8/community.yaml": (44, 485),
    "v3.9/main.yaml": (161, 1121),
    "v3.9/community.yaml": (58, 601),
    "v3.10/main.yaml": (166, 1182),
    "v3.10/community.yaml": (73, 720),
    "v3.11/main.yaml": (175, 1204),
    "v3.11/community.yaml": (85, 895),
}


def secdb_path(*parts: str) -> Path:
    path = SECDB.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is missing: the shared feeds must sit beside the repository (../shared/feeds)")
    return path


def document(name: str, data: bytes) -> Document:
    return Document(name, lambda: io.BytesIO(data))


def raw_load(path: Path) -> dict:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def raw_entries(data: dict) -> list[tuple[str, str, object]]:
    """(package, version, entry) for every list item under every secfixes version: counted without the parser."""
    found = []
    for item in data.get("packages") or []:
        pkg = item["pkg"]
        for version, entries in (pkg.get("secfixes") or {}).items():
            if isinstance(entries, list):
                found += [(pkg["name"], str(version), entry) for entry in entries]
    return found


def ids_of(entry: object) -> list[str]:
    """The advisory ids an entry names, read token by token (a second reading, not the parser's regex)."""
    if not isinstance(entry, str):
        return []
    tokens = re.sub(r"CVE[_ ](\d)", r"CVE-\1", entry).replace("(", " ").replace(")", " ").split()
    cves, others = [], []
    for token in tokens:
        parts = token.split("-")
        if parts[0] == "CVE" and len(parts) >= 3 and parts[1].isdigit():
            cves.append("CVE-" + parts[1] + "-" + re.match(r"\d*", parts[2]).group())
        elif len(parts) >= 2 and parts[0] not in ("CVE",) and any(c.isdigit() for c in token) and token[0].isalpha():
            others.append(token)
    return cves or others[:1]


def apk_version_ok(version: str) -> bool:
    try:
        AlpineLinuxVersion(version)
    except InvalidVersion:
        return False
    return True


# Real files: every package entry and every secfix id is accounted for.


@pytest.mark.parametrize(("name", "expected"), sorted(README_TABLE.items()))
def test_each_yaml_file_matches_the_readme_table(name, expected):
    path = secdb_path("yaml", name)
    raw = raw_load(path)
    entries = raw_entries(raw)
    assert (len(raw.get("packages") or []), len(entries)) == expected

    parsed = parse_secdb(Document(name, lambda: path.open("rb")))
    assert len(parsed.packages) == expected[0]
    # Every entry becomes one SecFix or one Rejected, never both, never neither.
    assert sum(len(p.fixes) for p in parsed.packages) + len(parsed.rejected) == expected[1]
    assert parsed.distro == "alpine"
    assert parsed.release == raw["distroversion"].removeprefix("v")


def test_the_yaml_feed_gives_one_advisory_per_distinct_id():
    root = secdb_path("yaml")
    expected_ids: set[str] = set()
    rejected_entries = 0
    rows: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in sorted(root.rglob("*.yaml")):
        raw = raw_load(path)
        release = raw["distroversion"].removeprefix("v")
        for package, version, entry in raw_entries(raw):
            ids = ids_of(entry)
            if not ids or not apk_version_ok(version):
                rejected_entries += 1
                continue
            expected_ids.update(ids)
            for vuln_id in ids:
                rows[vuln_id].add((release, package))

    items = list(parse_feed(iter_documents(root)))
    records = {i.id: i for i in items if isinstance(i, AdvisoryRecord)}
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert set(records) == expected_ids
    assert len(rejected) == rejected_entries
    assert sum(README_TABLE[n][1] for n in README_TABLE) == 12028
    # Each advisory has one row per (release, package) that names it: releases are never merged.
    for vuln_id, record in records.items():
        assert {(a.release, a.name) for a in record.affected} == rows[vuln_id], vuln_id
        assert all(a.ecosystem == "Alpine" and a.distro == "alpine" for a in record.affected)


def test_one_id_across_releases_is_one_advisory_with_a_row_per_release():
    items = list(parse_feed(iter_documents(secdb_path("yaml"))))
    record = next(i for i in items if isinstance(i, AdvisoryRecord) and i.id == "CVE-2017-16544")
    busybox = {a.release: a for a in record.affected if a.name == "busybox"}
    assert sorted(busybox, key=lambda r: tuple(map(int, r.split(".")))) == [f"3.{n}" for n in range(3, 12)]
    for row in busybox.values():
        assert row.status == Status.FIXED
        assert row.ranges[0].events[0] == ("introduced", "0")
    assert {e["file"] for e in record.raw["secfixes"]} >= {f"v{r}/main.yaml" for r in busybox}


def test_free_text_entries_give_ids_and_aliases():
    items = list(parse_feed(iter_documents(secdb_path("yaml", "v3.10"))))
    records = {i.id: i for i in items if isinstance(i, AdvisoryRecord)}
    assert records["CVE-2016-6258"].aliases == ("XSA-182",)  # "CVE-2016-6258 XSA-182"
    assert "XSA-207" in records  # an entry that names no CVE
    assert "CVE-2018-16301" in records  # "CVE-2018-16301 (was fixed in libpcap)"
    assert "CVE-2019-2426" in records  # "CVE_2019-2426"
    assert "CVE-2017-17434" in records  # "CVE-2017-17434-1" and "-2"


def test_json_samples():
    by_name = {d.name: d for d in iter_documents(secdb_path("json-samples"))}
    edge = parse_secdb(by_name["alpine-edge-main.json"])
    assert (edge.distro, edge.release, edge.repo) == ("alpine", "edge", "main")

    # Hand-edited by its authors: one secfixes value is {} instead of a list.
    v312 = parse_secdb(by_name["alpine-v3.12-main.json"])
    assert [r.reason for r in v312.rejected] == ["secfix ids are not a list"]
    assert [f.ids for p in v312.packages for f in p.fixes] == [("CVE-2018-16876",)]

    items = list(parse_feed([by_name["alpine-v3.15-main.json"]]))
    records = {i.id: i for i in items if isinstance(i, AdvisoryRecord)}
    busybox = next(a for a in records["CVE-2021-42373"].affected if a.name == "busybox")
    assert (busybox.status, busybox.ranges, busybox.release) == (Status.NOT_AFFECTED, (), "3.15")


@pytest.mark.parametrize(
    ("folder", "distro", "ecosystem"), [("wolfi", "wolfi", "Wolfi"), ("chainguard", "chainguard", "Chainguard")]
)
def test_wolfi_and_chainguard_share_the_parser(folder, distro, ecosystem):
    for path in sorted(secdb_path(folder).glob("*.json")):
        raw = raw_load(path)
        expected_ids = {i for _, v, e in raw_entries(raw) for i in ids_of(e)}
        parsed = parse_secdb(Document(path.name, lambda path=path: path.open("rb")))
        assert (parsed.distro, parsed.release) == (distro, ROLLING)
        assert len(parsed.packages) == len(raw["packages"])
        assert sum(len(p.fixes) for p in parsed.packages) + len(parsed.rejected) == len(raw_entries(raw))

        records = [i for i in parse_feed([Document(path.name, lambda path=path: path.open("rb"))])]
        assert {r.id for r in records if isinstance(r, AdvisoryRecord)} == expected_ids
        rows = [a for r in records if isinstance(r, AdvisoryRecord) for a in r.affected]
        assert {(a.ecosystem, a.distro, a.release) for a in rows} == {(ecosystem, distro, ROLLING)}


def test_wolfi_ghsa_with_version_zero_is_not_affected():
    path = secdb_path("wolfi", "security.json")
    records = {i.id: i for i in parse_feed([Document(path.name, lambda: path.open("rb"))])}
    (row,) = records["GHSA-jq35-85cj-fj4p"].affected
    assert (row.name, row.status) == ("apko", Status.NOT_AFFECTED)


def test_importer_protocol_on_the_whole_folder():
    importer = AlpineSecdbImporter()
    assert importer.source == "alpine-secdb"
    assert importer.accepts("v3.11/main.yaml")
    assert importer.accepts("security.json")
    assert not importer.accepts("README.md")
    assert not importer.accepts("samples-MANIFEST.tsv")
    items = list(importer.parse_feed(iter_documents(secdb_path())))
    assert sum(isinstance(i, AdvisoryRecord) for i in items) > 2500
    assert len({i.id for i in items if isinstance(i, AdvisoryRecord)}) == sum(
        isinstance(i, AdvisoryRecord) for i in items
    )


# Edge cases of our own making.

HEADER = "distroversion: v3.18\nreponame: main\nurlprefix: https://dl-cdn.alpinelinux.org/alpine\npackages:\n"


def records_of(*files: tuple[str, str]) -> tuple[dict[str, AdvisoryRecord], list[Rejected]]:
    items = list(parse_feed(document(name, text.encode()) for name, text in files))
    return {i.id: i for i in items if isinstance(i, AdvisoryRecord)}, [i for i in items if isinstance(i, Rejected)]


def test_version_zero_and_a_fix_for_one_row_the_fix_wins():
    text = (
        HEADER
        + "  - pkg:\n      name: a\n      secfixes:\n        '0': [CVE-2024-0001]\n        1.2-r1: [CVE-2024-0001]\n"
    )
    records, rejected = records_of(("v3.18/main.yaml", text))
    (row,) = records["CVE-2024-0001"].affected
    assert (row.status, row.fixed_versions, rejected) == (Status.FIXED, ("1.2-r1",), [])


def test_two_fixed_versions_of_one_row_are_two_ranges():
    text = (
        HEADER
        + "  - pkg:\n      name: a\n      secfixes:\n"
        + "        2.4.2-r0: [CVE-2024-0002]\n        2.2.10-r0: [CVE-2024-0002]\n"
    )
    records, _ = records_of(("v3.18/main.yaml", text))
    (row,) = records["CVE-2024-0002"].affected
    assert row.fixed_versions == ("2.2.10-r0", "2.4.2-r0")
    assert all(r.events[0] == ("introduced", "0") for r in row.ranges)


def test_duplicate_ids_across_files_merge_and_keep_their_rows_apart():
    main = HEADER + "  - pkg:\n      name: a\n      secfixes:\n        1.0-r1: [CVE-2024-0003]\n"
    community = main.replace("main", "community").replace("name: a", "name: b")
    older = main.replace("v3.18", "v3.17")
    records, _ = records_of(("v3.18/main.yaml", main), ("v3.18/community.yaml", community), ("v3.17/main.yaml", older))
    assert len(records) == 1
    assert [(a.release, a.name) for a in records["CVE-2024-0003"].affected] == [
        ("3.17", "a"),
        ("3.18", "a"),
        ("3.18", "b"),
    ]
    assert len(records["CVE-2024-0003"].raw["secfixes"]) == 3


def test_a_package_without_secfixes_is_fine_and_an_entry_without_an_id_is_rejected():
    text = HEADER + (
        "  - pkg:\n      name: quiet\n"
        "  - pkg:\n      name: b\n      secfixes:\n        1.0-r0: ['fixed a crash', 7, CVE-2024-0004]\n"
    )
    records, rejected = records_of(("v3.18/main.yaml", text))
    assert list(records) == ["CVE-2024-0004"]
    assert len(rejected) == 2
    assert all("names no vulnerability id" in r.reason for r in rejected)


def test_bad_package_entries_are_rejected_one_by_one():
    text = HEADER + "  - 42\n  - pkg: {secfixes: {}}\n  - pkg:\n      name: c\n      secfixes: [oops]\n"
    records, rejected = records_of(("v3.18/main.yaml", text))
    assert records == {}
    assert [r.reason for r in rejected] == [
        "package entry has no pkg.name",
        "package entry has no pkg.name",
        "secfixes is not a mapping of version to ids",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "packages: [unclosed",  # malformed YAML
        "- just\n- a list\n",
        "reponame: main\npackages: []\n",  # no telling which distro
        "distroversion: 3.18\npackages: []\n",  # a float, not vX.Y
        HEADER.replace("packages:\n", "packages: {a: 1}\n"),
    ],
)
def test_unreadable_files_fail_the_document(text):
    with pytest.raises(DocumentError):
        list(parse_feed([document("v3.18/main.yaml", text.encode())]))


def test_unparseable_json_fails_the_document():
    with pytest.raises(DocumentError, match="main.json"):
        list(parse_feed([document("v3.18/main.json", b'{"packages": [')]))


def test_distro_detection():
    wolfi = json.dumps({"urlprefix": "https://packages.wolfi.dev", "reponame": "os", "packages": []})
    cg = json.dumps({"urlprefix": "https://packages.cgr.dev", "reponame": "chainguard", "packages": []})
    mirror = json.dumps({"urlprefix": "https://mirror.example/alpine", "distroversion": "v3.19", "packages": []})
    assert parse_secdb(document("security.json", wolfi.encode())).distro == "wolfi"
    assert parse_secdb(document("security.json", cg.encode())).distro == "chainguard"
    assert parse_secdb(document("main.json", mirror.encode())).release == "3.19"


def test_parse_ids():
    assert parse_ids("CVE-2017-5753 CVE-2017-5715 CVE-2017-5754 XSA-254 XPTI") == (
        ("CVE-2017-5753", "CVE-2017-5715", "CVE-2017-5754"),
        ("XSA-254",),
    )
    assert parse_ids("CVE-????-?????  XSA-284") == (("XSA-284",), ())
    assert parse_ids("CVE 2018-16859") == (("CVE-2018-16859",), ())
    assert parse_ids("CVE-2019-19451.patch") == (("CVE-2019-19451",), ())
    assert parse_ids("wnpa-sec-2017-18") == (("wnpa-sec-2017-18",), ())
    assert parse_ids("(SMB - partially fixed)") == ((), ())


yaml_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
secdb_like = st.fixed_dictionaries(
    {"distroversion": st.sampled_from(["v3.18", "edge", "x"]), "packages": st.lists(yaml_like, max_size=4)},
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=1024),
        secdb_like.map(lambda d: json.dumps(d).encode()),
        yaml_like.map(lambda d: yaml.safe_dump(d).encode()),
    )
)
def test_garbage_gives_rejections_or_a_document_error_never_a_crash(data):
    for name in ("v3.18/main.yaml", "v3.18/main.json"):
        try:
            for item in parse_feed([document(name, data)]):
                assert isinstance(item, AdvisoryRecord | Rejected)
        except DocumentError:
            pass


def test_the_distro_importers_do_not_import_django():
    code = (
        "import sys\n"
        "import advisories.importers.alpine_secdb\n"
        "import advisories.importers.debian_tracker\n"
        "import advisories.importers.redhat_csaf\n"
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if m.startswith('django'))\n"
    )
    repo = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=repo, check=True, env={"PATH": "/usr/bin:/bin"})


def test_parse_reads_the_document_it_is_given_whatever_its_name():
    text = HEADER + "  - pkg:\n      name: a\n      secfixes:\n        1.0-r1: [CVE-2024-0005]\n"
    items = list(AlpineSecdbImporter().parse(document("download-main", text.encode())))
    assert [i.id for i in items] == ["CVE-2024-0005"]


def test_yaml_aliases_cannot_multiply_a_small_file(monkeypatch):
    monkeypatch.setattr("advisories.importers.alpine_secdb.MAX_SECDB_ENTRIES", 1000)
    big = "&a {pkg: {name: a, secfixes: {1.0-r0: [" + ", ".join(f"CVE-2024-{n:04d}" for n in range(100)) + "]}}}"
    text = HEADER.replace("packages:\n", f"packages: [{big}" + ", *a" * 50 + "]\n")
    with pytest.raises(DocumentError, match="more than 1000 secfix entries"):
        list(parse_feed([document("v3.18/main.yaml", text.encode())]))
