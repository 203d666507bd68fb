"""Debian security tracker JSON: real exports counted independently, the status mapping, broken documents."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisories.importers.base import AdvisoryRecord, Document, DocumentError, Rejected, Status
from advisories.importers.debian_tracker import CODENAMES, DebianTrackerImporter, parse_tracker, release_status

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def feed_file(*parts: str) -> Path:
    path = SHARED.joinpath("feeds", *parts)
    if not path.exists():
        pytest.skip(f"{path} is missing: the shared feeds must sit beside the repository (../shared/feeds)")
    return path


def from_path(path: Path) -> Document:
    return Document(path.name, lambda: path.open("rb"))


def from_json(value: object, name: str = "json") -> Document:
    data = json.dumps(value).encode()
    return Document(name, lambda: io.BytesIO(data))


def parse(document: Document) -> tuple[dict[str, AdvisoryRecord], list[Rejected]]:
    items = list(parse_tracker(document))
    records = {i.id: i for i in items if isinstance(i, AdvisoryRecord)}
    assert len(records) == sum(isinstance(i, AdvisoryRecord) for i in items), "one record per id"
    return records, [i for i in items if isinstance(i, Rejected)]


# Real data.


def test_bookworm_export_derived_from_changelogs():
    path = feed_file("debian-tracker-derived", "bookworm.json")
    raw = json.loads(path.read_text())
    expected = {
        (cve, package, entry["releases"]["bookworm"]["fixed_version"])
        for package, issues in raw.items()
        for cve, entry in issues.items()
    }
    assert len(raw) == 3
    assert len({cve for cve, _, _ in expected}) == 15

    records, rejected = parse(from_path(path))
    assert rejected == []
    assert len(records) == 15
    found = set()
    for record in records.values():
        assert record.source == "debian-tracker"
        for row in record.affected:
            assert (row.ecosystem, row.distro, row.release, row.status) == ("Debian", "debian", "12", Status.FIXED)
            assert row.severity == "not yet assigned"
            found.add((record.id, row.name, row.fixed_versions[0]))
    assert found == expected


def test_vunnel_sample_counts_and_edge_cases():
    path = feed_file("samples", "debian-security-tracker-json", "vunnel-debian.json")
    raw = json.loads(path.read_text())
    ids = {cve for issues in raw.values() for cve in issues}
    release_entries = sum(
        len(entry["releases"]) for issues in raw.values() for entry in issues.values() if entry["releases"]
    )

    records, rejected = parse(from_path(path))
    assert rejected == []
    assert set(records) == ids
    assert sum(len(r.affected) for r in records.values()) == release_entries

    # fixed_version "0": never vulnerable, in every release; urgency "unimportant".
    prototype = records["CVE-2007-2383"]
    assert {(a.release, a.status, a.severity) for a in prototype.affected} == {
        (r, Status.NOT_AFFECTED, "unimportant") for r in ("8", "9", "10", "sid")
    }
    # Open in end-of-life releases, fixed in the others; each release is its own row.
    chromium = {a.release: a for a in records["CVE-2022-0456"].affected}
    assert chromium["9"].status == chromium["10"].status == Status.WILL_NOT_FIX
    assert chromium["11"].fixed_versions == ("98.0.4758.80-1~deb11u1",)
    assert chromium["12"].fixed_versions == ("98.0.4758.80-1",)
    # Four releases of one package, one row each.
    assert sorted(a.release for a in records["CVE-2025-53603"].affected) == ["11", "12", "13", "sid"]
    # "high**" is the urgency high.
    assert {a.severity for a in records["CVE-2008-7220"].affected} == {"high"}
    assert records["CVE-2008-7220"].severities[0].rating == "high"
    assert "https://bugs.debian.org/555217" in records["CVE-2008-7220"].references
    # "releases": [] — the issue is kept, with nothing affected.
    assert records["CVE-2022-0358"].affected == ()
    # The archive's current versions are left out of raw; the tracker's decision is kept.
    raw_release = records["CVE-2022-0456"].raw["packages"]["chromium"]["releases"]["buster"]
    assert raw_release == {"status": "open", "urgency": "end-of-life"}


# The status mapping, on entries of our own making.


def release(status: str, **fields: str) -> dict:
    return {"status": status, "repositories": {"bookworm": "1.0-1"}, **fields}


def test_status_mapping():
    export = {
        "pkg": {
            "CVE-2024-0001": {"releases": {"bookworm": release("open", urgency="unimportant")}},
            "CVE-2024-0002": {"releases": {"bookworm": release("open", urgency="low", nodsa="Minor issue")}},
            "CVE-2024-0003": {
                "releases": {"bookworm": release("open", urgency="low", nodsa="x", nodsa_reason="postponed")}
            },
            "CVE-2024-0004": {
                "releases": {"bookworm": release("open", urgency="low", nodsa="x", nodsa_reason="ignored")}
            },
            "CVE-2024-0005": {"releases": {"bookworm": release("open", urgency="medium")}},
            "CVE-2024-0006": {"releases": {"bookworm": release("undetermined", urgency="not yet assigned")}},
            "CVE-2024-0007": {"releases": {"bookworm": release("resolved", fixed_version="0", urgency="low*")}},
            "CVE-2024-0008": {"releases": {"bookworm": release("resolved", fixed_version="1.0-2", urgency="high")}},
            "TEMP-0000000-A1B2C3": {"releases": {"sid": release("open", urgency="low")}},
        }
    }
    records, rejected = parse(from_json(export))
    assert rejected == []
    status = {vuln_id: record.affected[0].status for vuln_id, record in records.items()}
    assert status == {
        "CVE-2024-0001": Status.WILL_NOT_FIX,
        "CVE-2024-0002": Status.DEFERRED,
        "CVE-2024-0003": Status.DEFERRED,
        "CVE-2024-0004": Status.WILL_NOT_FIX,
        "CVE-2024-0005": Status.AFFECTED,
        "CVE-2024-0006": Status.AFFECTED,
        "CVE-2024-0007": Status.NOT_AFFECTED,
        "CVE-2024-0008": Status.FIXED,
        "TEMP-0000000-A1B2C3": Status.AFFECTED,
    }
    assert records["CVE-2024-0006"].raw["packages"]["pkg"]["releases"]["bookworm"]["status"] == "undetermined"
    assert records["CVE-2024-0007"].affected[0].severity == "low"
    assert records["TEMP-0000000-A1B2C3"].affected[0].release == "sid"


def test_one_cve_in_several_packages_is_one_advisory():
    export = {
        "openssl": {"CVE-2024-1000": {"description": "d", "releases": {"bookworm": release("open", urgency="low")}}},
        "openssl1.1": {
            "CVE-2024-1000": {"releases": {"bullseye": release("resolved", fixed_version="1.1-2", urgency="high")}}
        },
    }
    records, _ = parse(from_json(export))
    (record,) = records.values()
    assert [(a.name, a.release) for a in record.affected] == [("openssl", "12"), ("openssl1.1", "11")]
    assert record.details == "d"
    assert [s.rating for s in record.severities] == ["high"]


def test_malformed_entries_are_rejected_and_the_rest_is_kept():
    export = {
        "good": {"CVE-2024-2000": {"releases": {"bookworm": release("resolved", fixed_version="2")}}},
        "not-an-object": [1, 2],
        "bad": {
            "CVE-2024-2001": "a string",
            "not an id": {"releases": {}},
            "CVE-2024-2002": {"releases": {"bookworm": release("resolved")}},  # no fixed_version
            "CVE-2024-2003": {"releases": {"hamm": release("open"), "bookworm": release("open")}},
            "CVE-2024-2004": {"releases": {"bookworm": release("sideways")}},
            "CVE-2024-2005": {"releases": "bookworm"},
        },
    }
    records, rejected = parse(from_json(export))
    assert sorted(records) == ["CVE-2024-2000", "CVE-2024-2002", "CVE-2024-2003", "CVE-2024-2004"]
    assert [a.release for a in records["CVE-2024-2003"].affected] == ["12"]
    reasons = sorted(r.reason for r in rejected)
    assert reasons == sorted(
        [
            "a package entry is not an object of issues",
            "issue entry is not an object",
            "not a CVE or TEMP id",
            "resolved without a fixed_version",
            "unknown Debian release codename 'hamm'",
            "unknown status 'sideways'",
            "releases is not an object",
        ]
    )


# Broken documents fail the feed instead of leaving part of it.


def test_a_truncated_export_fails_the_document_before_any_item():
    data = feed_file("debian-tracker-derived", "bookworm.json").read_bytes()
    truncated = Document("bookworm.json", lambda: io.BytesIO(data[: len(data) // 2]))
    items = parse_tracker(truncated)
    with pytest.raises(DocumentError, match="bookworm.json: unreadable tracker JSON"):
        next(items)


@pytest.mark.parametrize("data", [b"", b"   ", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"a": {}} trailing', b"null"])
def test_unreadable_documents_fail(data):
    with pytest.raises(DocumentError):
        list(parse_tracker(Document("json", lambda: io.BytesIO(data))))


def test_the_document_is_read_as_a_bounded_stream():
    export = {f"pkg{n}": {} for n in range(1000)}
    with pytest.raises(DocumentError, match="larger than 4096 bytes"):
        list(parse_tracker(from_json(export), limit=4096))
    assert list(parse_tracker(from_json({}))) == []


def test_importer_protocol():
    importer = DebianTrackerImporter()
    assert importer.source == "debian-tracker"
    assert importer.default_url == "https://security-tracker.debian.org/tracker/data/json"
    assert importer.accepts("json.json")
    assert not importer.accepts("README.md")
    assert CODENAMES["bookworm"] == "12"
    assert CODENAMES["sid"] == "sid"
    assert release_status("resolved", "0", "", "", "") == Status.NOT_AFFECTED


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
release_like = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["resolved", "open", "undetermined", "x"]) | json_values,
        "fixed_version": st.sampled_from(["0", "1.0-1", ""]) | json_values,
        "urgency": st.sampled_from(["low**", "unimportant", "end-of-life"]) | json_values,
        "nodsa": json_values,
        "nodsa_reason": st.sampled_from(["ignored", "postponed"]) | json_values,
    },
)
export_like = st.dictionaries(
    st.text(max_size=8),
    st.dictionaries(
        st.sampled_from(["CVE-2024-1", "TEMP-1-A", "x"]) | st.text(max_size=8),
        st.fixed_dictionaries({"releases": st.dictionaries(st.sampled_from([*CODENAMES, "x"]), release_like)})
        | json_values,
    )
    | json_values,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=1024), export_like.map(lambda v: json.dumps(v).encode())))
def test_garbage_gives_rejections_or_a_document_error_never_a_crash(data):
    try:
        for item in parse_tracker(Document("json", lambda: io.BytesIO(data))):
            assert isinstance(item, AdvisoryRecord | Rejected)
    except DocumentError:
        pass


def test_accepts_the_export_as_downloaded():
    importer = DebianTrackerImporter()
    assert importer.accepts("download-json")  # fetched from .../tracker/data/json
    assert importer.accepts("bookworm.json")
