"""The CISA KEV importer on the real catalog in ../shared/feeds/kev (JSON and CSV), and on broken catalogs.

The catalog is checked against its own published JSON schema, and its size is
counted with json and csv, independently of the importer.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisories.importers.base import Document, DocumentError, KevEntry, Rejected
from advisories.importers.documents import iter_documents
from advisories.importers.kev import KevImporter, kev_entry

REPO = Path(__file__).resolve().parents[2]
KEV = REPO.parent / "shared" / "feeds" / "kev"
CATALOG_SIZE = 1404  # kev/README.md: catalogVersion 2025.08.25


def kev_file(name: str) -> Path:
    path = KEV / name
    if not path.exists():
        pytest.skip(f"{path} is missing: the shared feeds must sit beside the repository (../shared/feeds)")
    return path


def parse(data: bytes, name: str = "known_exploited_vulnerabilities.json") -> list[KevEntry | Rejected]:
    return list(KevImporter().parse(Document(name, lambda: io.BytesIO(data))))


def parse_file(name: str) -> list[KevEntry | Rejected]:
    path = kev_file(name)
    return list(KevImporter().parse(Document(name, lambda: path.open("rb"))))


def catalog(*entries: object, count: int | None = None) -> bytes:
    size = len(entries) if count is None else count
    head = {"title": "t", "catalogVersion": "1", "dateReleased": "2025-01-01T00:00:00Z", "count": size}
    return json.dumps({**head, "vulnerabilities": list(entries)}).encode()


def entry(cve_id: str = "CVE-2024-1234", **changes: object) -> dict[str, object]:
    item: dict[str, object] = {
        "cveID": cve_id, "vendorProject": "Acme", "product": "Widget", "vulnerabilityName": "Acme Widget RCE",
        "dateAdded": "2024-05-01", "shortDescription": "d", "requiredAction": "Patch.", "dueDate": "2024-05-22",
        "knownRansomwareCampaignUse": "Known", "notes": "", "cwes": ["CWE-78"],
    }  # fmt: skip
    item.update(changes)
    return item


def test_the_catalog_matches_its_published_schema_and_size():
    document = json.loads(kev_file("known_exploited_vulnerabilities.json").read_bytes())
    schema = json.loads(kev_file("known_exploited_vulnerabilities_schema.json").read_bytes())
    jsonschema.validate(document, schema, format_checker=jsonschema.FormatChecker())
    assert document["count"] == len(document["vulnerabilities"]) == CATALOG_SIZE
    with kev_file("known_exploited_vulnerabilities.csv").open(newline="", encoding="utf-8") as f:
        assert sum(1 for _ in csv.DictReader(f)) == CATALOG_SIZE


def test_json_catalog():
    raw = json.loads(kev_file("known_exploited_vulnerabilities.json").read_bytes())["vulnerabilities"]
    entries = parse_file("known_exploited_vulnerabilities.json")
    assert all(isinstance(e, KevEntry) for e in entries), [e for e in entries if isinstance(e, Rejected)]
    assert [e.cve_id for e in entries] == [r["cveID"] for r in raw]
    assert sum(e.known_ransomware for e in entries) == sum(r["knownRansomwareCampaignUse"] == "Known" for r in raw)
    first = entries[0]
    assert first == KevEntry(
        cve_id="CVE-2025-48384",
        vendor="Git",
        product="Git",
        name="Git Link Following Vulnerability",
        date_added=date(2025, 8, 25),
        due_date=date(2025, 9, 15),
        known_ransomware=False,
        required_action=raw[0]["requiredAction"],
        notes=raw[0]["notes"],
    )


def test_csv_catalog_gives_the_same_entries_as_the_json():
    assert parse_file("known_exploited_vulnerabilities.csv") == parse_file("known_exploited_vulnerabilities.json")


def test_the_feed_folder_holds_two_copies_and_no_schema():
    importer = KevImporter()
    accepted = sorted(d.name for d in iter_documents(kev_file("")) if importer.accepts(d.name))
    assert accepted == ["known_exploited_vulnerabilities.csv", "known_exploited_vulnerabilities.json"]
    assert importer.source == "kev"
    assert importer.default_url.endswith("known_exploited_vulnerabilities.json")


def test_bad_entries_are_rejected_with_their_id_and_the_rest_kept():
    items = parse(catalog(
        entry("CVE-2024-0001"),
        entry("CVE-24-1"),
        entry("CVE-2024-0003", dateAdded="05/01/2024"),
        entry("CVE-2024-0004", dueDate=None),
        entry("CVE-2024-0005", knownRansomwareCampaignUse="Maybe"),
        entry("CVE-2024-0006", product=7),
        "not an object",
        entry("CVE-2024-0008", knownRansomwareCampaignUse="Unknown"),
    ))  # fmt: skip
    assert [type(i).__name__ for i in items] == ["KevEntry"] + ["Rejected"] * 6 + ["KevEntry"]
    rejected = {i.id: i.reason for i in items if isinstance(i, Rejected)}
    assert set(rejected) == {"CVE-24-1", "CVE-2024-0003", "CVE-2024-0004", "CVE-2024-0005", "CVE-2024-0006",
                             "known_exploited_vulnerabilities.json[6]"}  # fmt: skip
    assert "bad CVE id" in rejected["CVE-24-1"]
    assert "YYYY-MM-DD" in rejected["CVE-2024-0003"]
    assert items[0].known_ransomware
    assert not items[-1].known_ransomware


def test_csv_blank_lines_are_skipped_and_bad_rows_rejected():
    header = "cveID,vendorProject,product,vulnerabilityName,dateAdded,shortDescription,requiredAction,dueDate,"
    header += "knownRansomwareCampaignUse,notes,cwes\r\n"
    good = "CVE-2024-0001,Acme,Widget,Name,2024-05-01,d,Patch.,2024-05-22,Known,,CWE-78\r\n"
    bad = "CVE-2024-0002,Acme,Widget,Name,2024-13-01,d,Patch.,2024-05-22,Known,,\r\n"
    items = parse((header + good + "\r\n" + bad).encode(), "kev.csv")
    assert [type(i).__name__ for i in items] == ["KevEntry", "Rejected"]
    assert items[1].id == "CVE-2024-0002"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (catalog(entry(), count=2), "says count 2 but holds 1"),
        (b'{"title": "not a catalog"}', "no 'vulnerabilities' array"),
        (b'{"vulnerabilities": {"cveID": "CVE-2024-0001"}}', "no 'vulnerabilities' array"),
        (catalog(entry(), entry("CVE-2024-0002"))[:-40], "not valid JSON after 1 entries"),
        (b"", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[]", "not valid JSON"),
    ],
)
def test_a_broken_catalog_is_a_document_error(data, message):
    with pytest.raises(DocumentError, match=message):
        parse(data)


def test_a_truncated_real_catalog_is_a_document_error():
    data = kev_file("known_exploited_vulnerabilities.json").read_bytes()
    with pytest.raises(DocumentError, match="not valid JSON"):
        parse(data[: len(data) // 3])


@pytest.mark.parametrize(("data", "message"), [(b"a,b\r\n1,2\r\n", "no cveID"), (b"\xff\xfe,\x00", "unreadable CSV")])
def test_a_csv_that_is_not_the_catalog_is_a_document_error(data, message):
    with pytest.raises(DocumentError, match=message):
        parse(data, "kev.csv")


def test_kev_entry_takes_csv_rows_and_json_objects_alike():
    row = {k: v if isinstance(v, str) else "" for k, v in entry().items()}
    assert kev_entry(row) == kev_entry(entry())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8,
)
CSV_HEADER = ",".join(k for k in entry()) + "\r\n"
entry_like = st.fixed_dictionaries(
    {key: st.one_of(st.just(value), json_values) for key, value in entry().items() if key != "cwes"}
)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.lists(entry_like, max_size=4).map(lambda e: catalog(*e))))
def test_untrusted_json_gives_entries_rejections_or_a_document_error(data):
    try:
        items = parse(data)
    except DocumentError:
        return
    assert all(isinstance(i, KevEntry | Rejected) for i in items)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: (CSV_HEADER + t).encode()))
def test_untrusted_csv_gives_entries_rejections_or_a_document_error(data):
    try:
        items = parse(data, "kev.csv")
    except DocumentError:
        return
    assert all(isinstance(i, KevEntry | Rejected) for i in items)
