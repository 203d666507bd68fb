"""The OSV importer against the real feeds in ../shared/feeds, plus malformed records of our own making.

Record counts are taken by listing the archives with zipfile/tarfile and
withdrawn counts by reading the raw files with plain json/yaml, independently
of the importer; the README numbers are checked against both.
"""

from __future__ import annotations

import functools
import io
import json
import re
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisories.importers import osv
from advisories.importers.base import AdvisoryRecord, Document, DocumentError, Rejected, Status
from advisories.importers.documents import iter_documents
from advisories.importers.osv import OsvImporter, Platform, parse_ecosystem, parse_record, parse_timestamp

REPO = Path(__file__).resolve().parents[2]
FEEDS = REPO.parent / "shared" / "feeds"


def feed(relative: str) -> Path:
    path = FEEDS / relative
    if not path.exists():
        pytest.skip(f"{path} is missing: the shared feeds must sit beside the repository (../shared/feeds)")
    return path


# -- independent views of the raw feeds ------------------------------------------------------------------------


def raw_records(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every OSV record file, by plain zipfile/tarfile/glob and file names alone."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".json"):
                    yield name, archive.read(name)
    elif path.name.endswith(".tar.gz"):
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                if member.isfile() and re.search(r"/(PYSEC|GHSA)-[^/]+\.(yaml|json)$", member.name):
                    yield member.name, archive.extractfile(member).read()  # type: ignore[union-attr]
    else:
        for file in sorted(path.glob("*.json")):
            yield file.name, file.read_bytes()


def raw_load(name: str, data: bytes) -> dict[str, Any]:
    return yaml.load(data, Loader=yaml.CSafeLoader) if name.endswith(".yaml") else json.loads(data)  # noqa: S506


@functools.cache
def import_feed(path: Path) -> tuple[list[AdvisoryRecord], list[Rejected]]:
    """Every item of the feed at `path` (parsed once per test session: the big feeds take seconds)."""
    importer = OsvImporter()
    records: list[AdvisoryRecord] = []
    rejected: list[Rejected] = []
    for document in iter_documents(path):
        if importer.accepts(document.name):
            for item in importer.parse(document):
                if isinstance(item, Rejected):
                    rejected.append(item)
                else:
                    assert isinstance(item, AdvisoryRecord)
                    records.append(item)
    return records, rejected


# Numbers the feeds' READMEs state: (records, withdrawn).
FEEDS_README = {
    "osv-pypi/pypa-advisory-database-vulns.tar.gz": (2661, 10),
    "osv-go/all.zip": (4291, 17),
    "osv-ghsa/ghsa-advisories.tar.gz": (358, 4),
    "k8s-cves/vulns": (47, None),
}
SAMPLES = ["osv-debian", "osv-alpine", "osv-almalinux", "osv-rocky", "osv-chainguard"]


@pytest.mark.parametrize("relative", list(FEEDS_README) + [f"samples/{s}" for s in SAMPLES])
def test_every_record_of_the_feed_parses(relative: str) -> None:
    path = feed(relative)
    raw = [raw_load(name, data) for name, data in raw_records(path)]
    records, rejected = import_feed(path)

    assert rejected == []
    assert len(records) + len(rejected) == len(raw)
    assert sorted(r.id for r in records) == sorted(doc["id"] for doc in raw)
    withdrawn = sum("withdrawn" in doc for doc in raw)
    assert sum(r.withdrawn is not None for r in records) == withdrawn
    stated_records, stated_withdrawn = FEEDS_README.get(relative, (None, None))
    if stated_records is not None:
        assert len(raw) == stated_records
    if stated_withdrawn is not None:
        assert withdrawn == stated_withdrawn


@pytest.mark.parametrize(
    ("folder", "pattern"),
    [
        ("osv-pypi", r"2661 YAML files in 664 package directories; 10 carry a `withdrawn` field"),
        ("osv-go", r"4291 `GO-\*\.json` files; 17 carry a `withdrawn` field; 200 affect the `stdlib` or `toolchain`"),
        ("osv-ghsa", r"\*\*358\*\* advisories \(4 of them withdrawn\)"),
    ],
)
def test_readme_states_the_numbers_checked_here(folder: str, pattern: str) -> None:
    assert re.search(pattern, (feed(folder) / "README.md").read_text())


def test_osv_all_zip_samples() -> None:
    zips = sorted(feed("samples/osv-all-zip").glob("*.zip"))
    for path in zips:
        records, rejected = import_feed(path)
        assert rejected == []
        assert len(records) == len(zipfile.ZipFile(path).namelist())
    assert {p.name for p in zips} == {"go-all.zip", "pypi-all.zip"}


def test_ghsa_ids_are_those_of_the_index() -> None:
    index = (feed("osv-ghsa") / "INDEX.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in index[1:]]
    records, _ = import_feed(feed("osv-ghsa/ghsa-advisories.tar.gz"))
    assert {r.id for r in records} == {row[0] for row in rows}
    assert {r.id for r in records if r.withdrawn} == {row[0] for row in rows if row[5]}


def test_go_standard_library_keeps_its_module_names() -> None:
    records, _ = import_feed(feed("osv-go/all.zip"))
    entries = Counter(a.name for r in records for a in r.affected if a.name in ("stdlib", "toolchain"))
    # The README's "200 affect the stdlib or toolchain modules" counts affected entries: one record lists both.
    assert entries == {"stdlib": 168, "toolchain": 32}
    assert sum(any(a.name in entries for a in r.affected) for r in records) == 199


def test_pypa_yaml_keeps_timestamps_as_text_and_raw_as_json() -> None:
    records, _ = import_feed(feed("osv-pypi/pypa-advisory-database-vulns.tar.gz"))
    for record in records:
        json.dumps(record.raw, allow_nan=False)  # storable as JSON: no datetime objects from YAML
    aiohttp = next(r for r in records if r.id == "PYSEC-2023-120")  # its YAML timestamps are unquoted
    assert aiohttp.published == datetime(2023, 7, 20, 14, 52, tzinfo=UTC)
    assert aiohttp.raw["published"] == "2023-07-20T14:52:00Z"


# -- spot checks against the raw records -------------------------------------------------------------------------


def raw_member(path: Path, suffix: str) -> dict[str, Any]:
    return next(raw_load(n, d) for n, d in raw_records(path) if n.endswith(suffix))


def record_of(path: Path, suffix: str) -> AdvisoryRecord:
    raw = raw_member(path, suffix)
    record = parse_record(raw)
    assert isinstance(record, AdvisoryRecord), record
    return record


def events(raw_range: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(next(iter(e.items())) for e in raw_range["events"])


def test_pysec_with_git_and_ecosystem_ranges_and_versions() -> None:
    path = feed("osv-pypi/pypa-advisory-database-vulns.tar.gz")
    raw = raw_member(path, "/PYSEC-2021-335.yaml")
    record = record_of(path, "/PYSEC-2021-335.yaml")

    assert record.aliases == ("CVE-2021-32807", "GHSA-qcx9-j53g-ccgf") == tuple(raw["aliases"])
    (affected,) = record.affected
    assert (affected.ecosystem, affected.name, affected.distro, affected.status) == ("PyPI", "accesscontrol", "", "")
    assert affected.purl == "pkg:pypi/accesscontrol"
    assert [r.type for r in affected.ranges] == ["GIT", "ECOSYSTEM"]
    assert [r.events for r in affected.ranges] == [events(r) for r in raw["affected"][0]["ranges"]]
    assert affected.ranges[1].events == (
        ("introduced", "4.0"),
        ("fixed", "4.3"),
        ("introduced", "5.0"),
        ("fixed", "5.2"),
    )
    assert affected.versions == ("4.0", "4.1", "4.2", "5.0", "5.1")
    assert record.references == tuple(ref["url"] for ref in raw["references"])
    assert record.published == datetime(2021, 7, 30, 22, 15, tzinfo=UTC)


def test_pypi_names_are_pep503_normalised() -> None:
    record = parse_record(make_record(affected=[make_affected("PyPI", "Zope_Interface.Foo")]))
    assert isinstance(record, AdvisoryRecord)
    assert record.affected[0].name == "zope-interface-foo"


def test_go_stdlib_record() -> None:
    path = feed("osv-go/all.zip")
    raw = raw_member(path, "GO-2022-0969.json")
    record = record_of(path, "GO-2022-0969.json")

    assert record.aliases == ("CVE-2022-27664", "GHSA-69cg-p879-7622")
    assert record.published == datetime(2022, 9, 12, 20, 23, 6, tzinfo=UTC)
    assert raw["modified"] == "0001-01-01T00:00:00Z"
    assert record.modified is None
    stdlib = record.affected[0]
    assert (stdlib.ecosystem, stdlib.name, stdlib.purl) == ("Go", "stdlib", "pkg:golang/stdlib")
    assert stdlib.ranges[0].type == "SEMVER"
    assert stdlib.ranges[0].events == events(raw["affected"][0]["ranges"][0])
    assert stdlib.ranges[0].events == (
        ("introduced", "0"),
        ("fixed", "1.18.6"),
        ("introduced", "1.19.0-0"),
        ("fixed", "1.19.1"),
    )
    assert record.affected[1].name == "golang.org/x/net"
    assert record.affected[1].purl == "pkg:golang/golang.org/x/net"


def test_ghsa_maven_record() -> None:
    path = feed("osv-ghsa/ghsa-advisories.tar.gz")
    raw = raw_member(path, "/GHSA-27xj-rqx5-2255.json")
    record = record_of(path, "/GHSA-27xj-rqx5-2255.json")

    (affected,) = record.affected
    assert affected.name == raw["affected"][0]["package"]["name"] == "com.fasterxml.jackson.core:jackson-databind"
    assert affected.purl == "pkg:maven/com.fasterxml.jackson.core/jackson-databind"
    assert affected.ranges[0].events == (("introduced", "2.9.0"), ("fixed", "2.9.10.4"))
    assert record.cwes == tuple(raw["database_specific"]["cwe_ids"])
    cvss = next(s for s in record.severities if s.type == "CVSS_V3")
    assert (cvss.source, cvss.vector, cvss.score, cvss.rating) == ("ghsa", raw["severity"][0]["score"], 8.1, "HIGH")
    vendor = next(s for s in record.severities if s.type == "vendor")
    assert (vendor.source, vendor.rating) == ("ghsa", raw["database_specific"]["severity"])


def test_ghsa_multi_ecosystem_and_swift_records() -> None:
    path = feed("osv-ghsa/ghsa-advisories.tar.gz")
    record = record_of(path, "/GHSA-45x7-px36-x8w8.json")
    assert {(a.ecosystem, a.name) for a in record.affected} == {
        ("crates.io", "russh"),
        ("Go", "golang.org/x/crypto"),
        ("PyPI", "paramiko"),
    }
    swift = record_of(path, "/GHSA-qppj-fm5r-hxr3.json").affected[0]
    assert (swift.ecosystem, swift.name) == ("SwiftURL", "https://github.com/apple/swift-nio-http2")
    assert swift.purl == "pkg:swift/github.com/apple/swift-nio-http2"


def test_debian_record_keeps_its_release() -> None:
    path = feed("samples/osv-debian")
    record = record_of(path, "DLA-3008-1.json")
    assert record.aliases == ()
    assert record.upstream == ("CVE-2022-1292", "DEBIAN-CVE-2022-1292")
    (affected,) = record.affected
    assert (affected.ecosystem, affected.distro, affected.release, affected.name) == (
        "Debian",
        "debian",
        "9",
        "openssl",
    )
    assert affected.status == Status.FIXED
    assert affected.fixed_versions == ("1.1.0l-1~deb9u6",)
    assert len(affected.versions) == 19
    assert affected.purl == "pkg:deb/debian/openssl?arch=source"


def test_alpine_record_has_one_row_per_release() -> None:
    raw = raw_member(feed("samples/osv-alpine"), "ALPINE-CVE-2025-26519.json")
    record = record_of(feed("samples/osv-alpine"), "ALPINE-CVE-2025-26519.json")
    assert [(a.distro, a.release) for a in record.affected] == [
        ("alpine", e["package"]["ecosystem"].removeprefix("Alpine:v")) for e in raw["affected"]
    ]
    assert record.affected[4].release == "3.20"
    assert {a.name for a in record.affected} == {"musl"}
    assert record.published == datetime(2025, 2, 14, 4, 15, 9, 50000, tzinfo=UTC)
    assert record.modified == datetime(2026, 7, 8, 4, 32, 24, 548042, tzinfo=UTC)  # nanoseconds truncated


def test_almalinux_and_rocky_records() -> None:
    alma = record_of(feed("samples/osv-almalinux"), "ALSA-2023:4520.json")
    assert alma.related == ("CVE-2023-32681",)
    assert alma.aliases == ()
    (affected,) = alma.affected
    assert (affected.distro, affected.release, affected.name) == ("almalinux", "8", "python3-requests")
    assert affected.severity == "Moderate"  # the errata's impact, from "Moderate: python-requests security update"
    assert affected.purl == "pkg:rpm/almalinux/python3-requests?distro=almalinux-8"

    rocky = record_of(feed("samples/osv-rocky"), "RLSA-2024_3671.json")
    assert {(a.distro, a.release) for a in rocky.affected} == {("rocky", "9")}
    assert rocky.affected[0].fixed_versions == ("0:3.3.1-2.module+el9.4.0+20787+4c237fd3",)
    assert rocky.affected[0].purl == "pkg:rpm/rocky-linux/ruby?distro=rocky-linux-9&epoch=0"


def test_chainguard_record_covers_chainguard_and_wolfi() -> None:
    record = record_of(feed("samples/osv-chainguard"), "CGA-224q-ccj5-2p53.json")
    assert {(a.ecosystem, a.distro, a.release) for a in record.affected} == {
        ("Chainguard", "chainguard", "rolling"),
        ("Wolfi", "wolfi", "rolling"),
    }
    assert record.upstream == ("CVE-2025-32464", "GHSA-frg5-h47x-75j9")


def test_kubernetes_records() -> None:
    record = record_of(feed("k8s-cves/vulns"), "CVE-2023-2727.json")
    assert {a.ecosystem for a in record.affected} == {"Kubernetes"}  # published as "kubernetes"
    assert any(s.type == "CVSS_V3" for s in record.severities)  # given per affected package


# -- ecosystems --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ecosystem", "expected"),
    [
        ("PyPI", Platform("PyPI")),
        ("Go", Platform("Go")),
        ("npm", Platform("npm")),
        ("Maven", Platform("Maven")),
        ("Maven:https://maven.google.com", Platform("Maven")),
        ("crates.io", Platform("crates.io")),
        ("kubernetes", Platform("Kubernetes")),
        ("purl-type:swift", Platform("SwiftURL")),
        ("Debian:12", Platform("Debian", "debian", "12")),
        ("Debian:9", Platform("Debian", "debian", "9")),
        ("Alpine:v3.20", Platform("Alpine", "alpine", "3.20")),
        ("Alpine:v3.9", Platform("Alpine", "alpine", "3.9")),
        ("Ubuntu:22.04:LTS", Platform("Ubuntu", "ubuntu", "22.04")),
        ("Ubuntu:25.10", Platform("Ubuntu", "ubuntu", "25.10")),
        ("Ubuntu:Pro:18.04:LTS", Platform("Ubuntu", "ubuntu", "18.04")),
        ("Ubuntu:Pro:FIPS:16.04:LTS", Platform("Ubuntu", "ubuntu", "16.04:fips")),
        ("Ubuntu:Pro:FIPS-updates:20.04:LTS", Platform("Ubuntu", "ubuntu", "20.04:fips-updates")),
        ("Ubuntu:Pro:22.04:LTS:Realtime:Kernel", Platform("Ubuntu", "ubuntu", "22.04:realtime-kernel")),
        ("AlmaLinux:8", Platform("AlmaLinux", "almalinux", "8")),
        ("Rocky Linux:9", Platform("Rocky Linux", "rocky", "9")),
        ("Red Hat:enterprise_linux:9::appstream", Platform("Red Hat", "rhel", "9")),
        ("Red Hat:rhel_eus:8.6::baseos", Platform("Red Hat", "rhel", "8.6:eus")),
        ("Amazon Linux:2023", Platform("Amazon Linux", "amzn", "2023")),
        ("SUSE:Linux Enterprise Server 15 SP5", Platform("SUSE", "sles", "15.5")),
        ("openSUSE:Leap 15.6", Platform("openSUSE", "opensuse-leap", "15.6")),
        ("Wolfi", Platform("Wolfi", "wolfi", "rolling")),
        ("Chainguard", Platform("Chainguard", "chainguard", "rolling")),
        ("Android", None),
        ("OSS-Fuzz", None),
        ("Debian", None),  # a distro ecosystem without its release cannot be matched
        ("Ubuntu:Pro", None),
        ("Alpine:3.x", None),
        ("Red Hat:openshift:4.12", None),
        ("", None),
    ],
)
def test_parse_ecosystem(ecosystem: str, expected: Platform | None) -> None:
    assert parse_ecosystem(ecosystem) == expected


def test_accepts_records_only() -> None:
    importer = OsvImporter()
    assert importer.accepts("advisory-database/vulns/aiohttp/PYSEC-2023-120.yaml")
    assert importer.accepts("GO-2020-0001.json")
    assert importer.accepts("x/CVE-2020-1.YML")
    assert not importer.accepts("advisory-database/LICENSE")
    assert not importer.accepts("advisory-database/vulns/.id-allocator")
    assert not importer.accepts("README.md")


# -- edge cases of our own -------------------------------------------------------------------------------------


def make_affected(ecosystem: str = "PyPI", name: str = "example", **fields: Any) -> dict[str, Any]:
    return {
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0"}]}],
    } | fields


def make_record(record_id: str = "TEST-2024-1", **fields: Any) -> dict[str, Any]:
    return {"id": record_id, "modified": "2024-01-02T03:04:05Z", "affected": [make_affected()]} | fields


def parsed(doc: dict[str, Any]) -> AdvisoryRecord:
    record = parse_record(doc)
    assert isinstance(record, AdvisoryRecord), record
    return record


def rejected(doc: object) -> Rejected:
    item = parse_record(doc)
    assert isinstance(item, Rejected), item
    return item


def test_withdrawn_record_is_kept_with_its_date() -> None:
    record = parsed(make_record(withdrawn="2024-02-01T00:00:00Z"))
    assert record.withdrawn == datetime(2024, 2, 1, tzinfo=UTC)


def test_record_without_affected_is_kept() -> None:
    assert parsed(make_record(affected=[])).affected == ()
    record = make_record()
    del record["affected"]
    assert parsed(record).affected == ()


def test_unknown_ecosystem_is_skipped_and_the_record_kept() -> None:
    record = parsed(make_record(affected=[make_affected("Android", "x"), make_affected("npm", "left-pad")]))
    assert [(a.ecosystem, a.name) for a in record.affected] == [("npm", "left-pad")]
    assert parsed(make_record(affected=[make_affected("Android", "x")])).affected == ()


def test_commit_only_affected_entry_is_skipped() -> None:
    entry = {"ranges": [{"type": "GIT", "repo": "https://x", "events": [{"introduced": "abc"}]}]}
    assert parsed(make_record(affected=[entry])).affected == ()


def test_duplicate_and_self_aliases_are_dropped() -> None:
    record = parsed(make_record(aliases=["CVE-2024-1", "TEST-2024-1", "CVE-2024-1", "GHSA-aaaa-bbbb-cccc"]))
    assert record.aliases == ("CVE-2024-1", "GHSA-aaaa-bbbb-cccc")


def test_upstream_and_related_are_not_aliases() -> None:
    record = parsed(make_record(upstream=["CVE-2024-1"], related=["CVE-2024-2"]))
    assert (record.aliases, record.upstream, record.related) == ((), ("CVE-2024-1",), ("CVE-2024-2",))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.123456789Z", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2024-01-02T03:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))),
        ("2024-01-02 03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),  # OSV times are UTC
        ("0001-01-01T00:00:00Z", None),  # Go's zero time
        (None, None),
    ],
)
def test_timestamps(value: str | None, expected: datetime | None) -> None:
    assert parse_timestamp(value, "published") == expected


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00Z", "2024-01-02", 20240102, ["2024"]])
def test_malformed_date_rejects_the_record(value: object) -> None:
    item = rejected(make_record(published=value))
    assert item.id == "TEST-2024-1"
    assert "published" in item.reason


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        ([{"introduced": "0", "fixed": "1"}], "exactly one kind"),
        ([{"introduced": "0"}, {"broken": "1"}], "'broken'"),
        ([{"fixed": "1"}], "no 'introduced'"),
        ([{"introduced": "0"}, {"fixed": 1.1}], "is not a string"),  # unquoted YAML numbers lose digits
        ([], "no events"),
        ("introduced 0", "not a list"),
    ],
)
def test_bad_range_event_rejects_the_record(events: object, reason: str) -> None:
    entry = make_affected("npm", "left-pad", ranges=[{"type": "SEMVER", "events": events}])
    item = rejected(make_record(affected=[make_affected(), entry]))
    assert item.id == "TEST-2024-1"
    assert item.reason.startswith("affected[1] npm/left-pad: ")
    assert reason in item.reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"id": None}, "no id"),
        ({"id": "TWO WORDS"}, "bad advisory id"),
        ({"aliases": "CVE-2024-1"}, "aliases"),
        ({"summary": ["x"]}, "summary"),
        ({"affected": {"package": {}}}, "affected"),
        ({"references": [{"url": 3}]}, "references"),
        ({"affected": [make_affected("PyPI", "")]}, "no name"),
        ({"affected": [make_affected("Debian:12", "curl", ranges=[{"type": "XYZ", "events": []}])]}, "XYZ"),
    ],
)
def test_malformed_records_are_rejected_with_a_reason(fields: dict[str, Any], reason: str) -> None:
    assert reason in rejected(make_record() | fields).reason


def test_non_object_is_rejected() -> None:
    assert rejected(["not", "a", "record"]).reason.startswith("the document is not an OSV record")


def test_malformed_cvss_vector_is_dropped_and_the_record_kept() -> None:
    record = parsed(make_record(severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:X"}]))
    assert record.severities == ()


def test_malformed_purl_is_replaced_by_a_built_one() -> None:
    entry = make_affected("Debian:12", "curl")
    entry["package"]["purl"] = "not a purl"
    (affected,) = parsed(make_record(affected=[entry])).affected
    assert affected.purl == "pkg:deb/debian/curl?distro=debian-12"
    assert affected.status == Status.FIXED


def test_distro_entry_without_fix_is_affected() -> None:
    entry = make_affected("Alpine:v3.20", "musl", ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}])
    (affected,) = parsed(make_record(affected=[entry])).affected
    assert (affected.status, affected.purl) == (Status.AFFECTED, "pkg:apk/alpine/musl?distro=3.20")


def document(name: str, data: bytes) -> Document:
    return Document(name, lambda: io.BytesIO(data))


def parse_one(name: str, data: bytes) -> AdvisoryRecord | Rejected:
    items = list(OsvImporter().parse(document(name, data)))
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, AdvisoryRecord | Rejected)
    return item


def test_truncated_json_is_rejected_naming_the_document() -> None:
    data = json.dumps(make_record()).encode()
    item = parse_one("vulns/TEST-2024-1.json", data[: len(data) // 2])
    assert isinstance(item, Rejected)
    assert item.id == "vulns/TEST-2024-1.json"
    assert item.reason.startswith("not valid JSON")


@pytest.mark.parametrize(
    "data",
    [
        b"id: [unclosed",
        b"id: X-1\nsummary: \x80\x81\n",  # not UTF-8
        b"a: &x [1]\nb: *x\n",  # aliases are refused: they make billion-laughs files
        b"id: X-1\nmodified: !!binary aGVsbG8=\n",
        b"id: X-1\nmodified: .nan\n",
        b"---\nid: X-1\n---\nid: X-2\n",
    ],
)
def test_yaml_garbage_is_rejected(data: bytes) -> None:
    item = parse_one("PYSEC-2024-1.yaml", data)
    assert isinstance(item, Rejected)
    assert item.id == "PYSEC-2024-1.yaml"
    assert item.reason.startswith("not valid YAML")


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"id": "X-1", "x": NaN}', b"", b"null", b"[]"])
def test_json_garbage_is_rejected(data: bytes) -> None:
    assert isinstance(parse_one("X-1.json", data), Rejected)


def test_rejected_record_names_its_id_and_document() -> None:
    item = parse_one("GO-2024-1.json", json.dumps(make_record("GO-2024-1", published="soon")).encode())
    assert isinstance(item, Rejected)
    assert item.id == "GO-2024-1"
    assert item.reason == "published 'soon' is not an RFC 3339 timestamp (in GO-2024-1.json)"


def test_oversized_record_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(osv, "MAX_RECORD_BYTES", 100)
    item = parse_one("X-1.json", json.dumps(make_record(details="x" * 200)).encode())
    assert isinstance(item, Rejected)
    assert "larger than 100 bytes" in item.reason


@pytest.mark.parametrize("error", [zlib.error("bad block"), zipfile.BadZipFile("Bad CRC-32"), EOFError()])
def test_an_unreadable_archive_member_fails_the_feed(error: Exception) -> None:
    def broken() -> io.BytesIO:
        raise error

    with pytest.raises(DocumentError, match="GO-2024-1.json cannot be read"):
        list(OsvImporter().parse(Document("GO-2024-1.json", broken)))


def test_yaml_record_matches_its_json_twin() -> None:
    doc = make_record(published="2024-01-01T00:00:00Z", aliases=["CVE-2024-1"])
    from_json = parse_one("X.json", json.dumps(doc).encode())
    from_yaml = parse_one("X.yaml", yaml.safe_dump(doc).encode())
    assert from_json == from_yaml


# -- properties ------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
ECOSYSTEM_STRINGS = [
    "PyPI",
    "Go",
    "Maven",
    "npm",
    "Debian:12",
    "Ubuntu:Pro:20.04:LTS",
    "Alpine:v3.20",
    "Wolfi",
    "Red Hat",
]
events_st = st.dictionaries(
    st.sampled_from(["introduced", "fixed", "last_affected", "limit", "bogus"]), st.text(max_size=5) | json_values
)
ranges_st = st.fixed_dictionaries(
    {"type": st.sampled_from(["ECOSYSTEM", "SEMVER", "GIT", "X"]), "events": st.lists(events_st, max_size=4)}
)
severity_st = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["CVSS_V2", "CVSS_V3", "CVSS_V4", "Ubuntu", "X"]) | json_values,
        "score": st.sampled_from(["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "AV:N/AC:L/Au:N/C:P/I:P/A:P", "low"])
        | st.text(max_size=10),
    }
)
package_st = st.fixed_dictionaries(
    {"ecosystem": st.sampled_from(ECOSYSTEM_STRINGS) | st.text(max_size=10), "name": st.text(max_size=10)},
    optional={"purl": st.sampled_from(["pkg:pypi/x@1", "pkg:deb/ubuntu/x@1?distro=jammy", "pkg:"]) | st.text()},
)
affected_st = st.fixed_dictionaries(
    {},
    optional={
        "package": package_st | json_values,
        "ranges": st.lists(ranges_st, max_size=3) | json_values,
        "versions": st.lists(st.text(max_size=5), max_size=3) | json_values,
        "severity": st.lists(severity_st, max_size=2),
        "database_specific": st.fixed_dictionaries({"cves_map": st.fixed_dictionaries({"cves": json_values})})
        | json_values,
    },
)
record_st = st.fixed_dictionaries(
    {"id": st.sampled_from(["GHSA-x", "USN-1-1", "ALSA-1", "GO-1"]) | st.text(max_size=10) | json_values},
    optional={
        "aliases": st.lists(st.text(max_size=5), max_size=3) | json_values,
        "published": st.sampled_from(["2024-01-01T00:00:00Z", "0001-01-01T00:00:00Z"]) | st.text() | json_values,
        "withdrawn": st.text(max_size=25) | json_values,
        "summary": st.sampled_from(["Moderate: x", "Low:"]) | json_values,
        "severity": st.lists(severity_st, max_size=3) | json_values,
        "affected": st.lists(affected_st, max_size=3) | json_values,
        "references": st.lists(st.fixed_dictionaries({"url": json_values})) | json_values,
        "database_specific": st.fixed_dictionaries({"severity": json_values, "cwe_ids": json_values}) | json_values,
    },
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(json_values)
def test_parse_record_never_raises_on_any_json(doc: Any) -> None:
    assert isinstance(parse_record(doc), AdvisoryRecord | Rejected)


@SETTINGS
@given(record_st)
def test_parse_record_never_raises_on_osv_shaped_json(doc: dict[str, Any]) -> None:
    assert isinstance(parse_record(doc), AdvisoryRecord | Rejected)


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from(["X.json", "X.yaml"]))
def test_parse_never_raises_on_any_bytes(data: bytes, name: str) -> None:
    parse_one(name, data)


@SETTINGS
@given(record_st)
def test_parse_never_raises_on_serialised_records(doc: dict[str, Any]) -> None:
    parse_one("X.json", json.dumps(doc).encode())
    parse_one("X.yaml", yaml.safe_dump(doc).encode())


def test_no_go_entry_is_skipped() -> None:
    records, _ = import_feed(feed("osv-go/all.zip"))
    raw = [raw_load(n, d) for n, d in raw_records(feed("osv-go/all.zip"))]
    assert Counter(a.ecosystem for r in records for a in r.affected) == Counter(
        e["package"]["ecosystem"] for d in raw for e in d["affected"]
    )
