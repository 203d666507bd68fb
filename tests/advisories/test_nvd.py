"""The NVD CVE API 2.0 importer on every sample in ../shared/feeds/samples/nvd-api-2.0, and on its edge cases.

Expected counts and scores are read from the raw JSON with the json module,
independently of the importer's streaming parser.
"""

from __future__ import annotations

import copy
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisories.importers.base import AdvisoryRecord, Document, DocumentError, Rejected, SeverityType
from advisories.importers.documents import iter_documents
from advisories.importers.nvd import NvdImporter, cve_record, parse_nvd

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO.parent / "shared" / "feeds" / "samples" / "nvd-api-2.0"
SAMPLE_FILES = [
    "vuln-list-update-respPage1.json",
    "vuln-list-update-respPage2.json",
    "vuln-list-update-respPageFull.json",
    "vunnel-full-page.json",
    "vunnel-single-entry.json",
    "cve-objects/CVE-2020-0001.json",
    "cve-objects/CVE-2023-0001.json",
    "cve-objects/CVE-2024-5732.json",
]


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} is missing: the shared feeds must sit beside the repository (../shared/feeds)")
    return path


def raw_cves(path: Path) -> list[dict[str, Any]]:
    """The cve objects of a sample, read whole with json: a page's items, or the file's one object."""
    data = json.loads(path.read_bytes())
    return [entry["cve"] for entry in data["vulnerabilities"]] if "vulnerabilities" in data else [data]


def parse_bytes(data: bytes, name: str = "page.json") -> list[AdvisoryRecord | Rejected]:
    return list(NvdImporter().parse(Document(name, lambda: io.BytesIO(data))))


def parse_file(name: str) -> list[AdvisoryRecord | Rejected]:
    path = sample(name)
    return list(NvdImporter().parse(Document(name, lambda: path.open("rb"))))


def by_id(name: str) -> dict[str, AdvisoryRecord]:
    return {r.id: r for r in parse_file(name) if isinstance(r, AdvisoryRecord)}


def page(*cves: Any) -> bytes:
    return json.dumps({"resultsPerPage": len(cves), "startIndex": 0, "totalResults": len(cves), "format": "NVD_CVE",
                       "version": "2.0", "vulnerabilities": [{"cve": c} for c in cves]}).encode()  # fmt: skip


def good_cve(cve_id: str = "CVE-2024-0001", **changes: Any) -> dict[str, Any]:
    cve: dict[str, Any] = {
        "id": cve_id,
        "sourceIdentifier": "cve@mitre.org",
        "published": "2024-01-02T03:04:05.678",
        "lastModified": "2024-02-03T04:05:06.789",
        "vulnStatus": "Analyzed",
        "descriptions": [{"lang": "en", "value": "A flaw. More words."}],
        "metrics": {"cvssMetricV31": [{"source": "nvd@nist.gov", "type": "Primary", "cvssData": {
            "version": "3.1", "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "baseScore": 9.8}}]},
        "references": [{"url": "https://example.org/a"}],
    }  # fmt: skip
    cve.update(changes)
    return cve


# --- every sample ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_every_sample_gives_one_record_per_cve(name):
    expected = [c["id"] for c in raw_cves(sample(name))]
    items = parse_file(name)
    assert [i.id for i in items] == expected
    assert all(isinstance(i, AdvisoryRecord) for i in items), [i for i in items if isinstance(i, Rejected)]
    for record in items:
        assert record.source == "nvd"
        assert record.affected == (), "NVD never creates affected packages"
        assert record.published is not None
        assert record.published.tzinfo is not None
        assert record.details
        assert "\n" not in record.summary
        assert len(record.summary) <= 200


def test_sample_counts():
    counts = {name: len(raw_cves(sample(name))) for name in SAMPLE_FILES}
    assert counts == {
        "vuln-list-update-respPage1.json": 2,
        "vuln-list-update-respPage2.json": 1,
        "vuln-list-update-respPageFull.json": 3,
        "vunnel-full-page.json": 38,
        "vunnel-single-entry.json": 1,
        "cve-objects/CVE-2020-0001.json": 1,
        "cve-objects/CVE-2023-0001.json": 1,
        "cve-objects/CVE-2024-5732.json": 1,
    }
    documents = [d for d in iter_documents(SAMPLES) if NvdImporter().accepts(d.name)]
    assert sum(1 for d in documents for _ in NvdImporter().parse(d)) == sum(counts.values()) == 48


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_scores_are_computed_and_agree_with_the_feed(name, caplog):
    """Every metric of the raw JSON becomes a severity whose computed score equals the feed's baseScore."""
    caplog.set_level(logging.WARNING, logger="advisories.importers.nvd")
    records = by_id(name)
    for cve in raw_cves(sample(name)):
        expected = {(m["cvssData"]["vectorString"], m["cvssData"]["baseScore"])
                    for metrics in cve.get("metrics", {}).values() for m in metrics}  # fmt: skip
        got = {(s.vector, s.score) for s in records[cve["id"]].severities}
        assert got == expected, cve["id"]
    assert caplog.records == [], "no sample disagrees with its own base scores"


def test_cwes_and_references():
    record = by_id("vunnel-full-page.json")["CVE-2023-27314"]
    assert record.cwes == ("CWE-400",), "NVD-CWE-noinfo is a placeholder, not a weakness"
    assert record.references == ("https://security.netapp.com/advisory/ntap-20231009-0001/",)
    assert record.details.startswith("ONTAP 9 versions prior to 9.8P19")
    assert "\n" in record.details
    assert "\n" not in record.summary


def test_published_and_modified_are_utc():
    record = by_id("cve-objects/CVE-2024-5732.json")["CVE-2024-5732"]
    assert record.published.isoformat() == "2024-06-07T10:15:12.293000+00:00"
    assert record.modified.isoformat() == "2024-06-11T17:57:13.767000+00:00"
    assert record.withdrawn is None


def test_v4_metrics_and_primary_scores_first():
    """vuln-list-nvd's copy of CVE-2024-5732 has NVD's own v4.0 and v3.1 scores and VulDB's v3.1 and v2."""
    record = by_id("cve-objects/CVE-2024-5732.json")["CVE-2024-5732"]
    assert [(s.type, s.source, s.score, s.rating) for s in record.severities] == [
        (SeverityType.CVSS_V4, "nvd", 6.9, "MEDIUM"),
        (SeverityType.CVSS_V3, "nvd", 9.8, "CRITICAL"),
        (SeverityType.CVSS_V3, "cna@vuldb.com", 7.3, "HIGH"),
        (SeverityType.CVSS_V2, "cna@vuldb.com", 7.5, "HIGH"),
    ]
    # the older API page of the same CVE has v4.0 from VulDB only (Secondary): NVD's v3.1 still comes first
    older = by_id("vuln-list-update-respPage2.json")["CVE-2024-5732"]
    assert [(s.type, s.source) for s in older.severities][:2] == [(SeverityType.CVSS_V3, "nvd"),
                                                                  (SeverityType.CVSS_V4, "cna@vuldb.com")]  # fmt: skip


def test_multiple_metrics_from_several_sources():
    record = by_id("vuln-list-update-respPageFull.json")["CVE-2021-3881"]
    assert [(s.type, s.source, s.score) for s in record.severities] == [
        (SeverityType.CVSS_V3, "nvd", 9.8),
        (SeverityType.CVSS_V2, "nvd", 7.5),
        (SeverityType.CVSS_V3, "security@huntr.dev", 7.1),
    ]


def test_cves_awaiting_analysis_without_metrics():
    records = by_id("vunnel-full-page.json")
    without = [cve_id for cve_id, r in records.items() if not r.severities]
    assert without == ["CVE-2023-43250", "CVE-2023-45383", "CVE-2023-46009"]
    assert records["CVE-2023-43250"].cwes == ()
    # only the CNA scored these: their scores are kept under the CNA's name
    assert {s.source for s in records["CVE-2023-30781"].severities} == {"audit@patchstack.com"}


# --- edge cases the samples lack: made here --------------------------------------------------------------------------


def test_rejected_cve_is_withdrawn():
    reason = "Rejected reason: This CVE ID was unused by the CNA."
    rejected = good_cve(
        "CVE-2023-99999", vulnStatus="Rejected", metrics={}, descriptions=[{"lang": "en", "value": reason}]
    )
    (record,) = parse_bytes(page(rejected))
    assert isinstance(record, AdvisoryRecord)
    assert record.withdrawn == record.modified is not None
    assert record.summary == "Rejected reason: This CVE ID was unused by the CNA."
    assert record.severities == ()


def test_malformed_records_are_rejected_with_their_id_and_the_rest_kept():
    bad_vector = good_cve("CVE-2024-0003")
    bad_vector["metrics"]["cvssMetricV31"][0]["cvssData"]["vectorString"] = "CVSS:3.1/AV:X"
    cases = [
        good_cve("CVE-2024-0001"),
        good_cve("CVE-24-1"),  # bad id
        bad_vector,
        good_cve("CVE-2024-0004", published="yesterday"),
        good_cve("CVE-2024-0005", metrics=[1]),
        good_cve("CVE-2024-0006", metrics={"cvssMetricV31": [{"type": "Primary", "cvssData": {}}]}),
        "not an object",
        {"sourceIdentifier": "x"},  # no id
        good_cve("CVE-2024-0009"),
    ]
    items = parse_bytes(page(*cases), "page.json")
    assert [type(i).__name__ for i in items] == ["AdvisoryRecord"] + ["Rejected"] * 7 + ["AdvisoryRecord"]
    rejected = {i.id: i.reason for i in items if isinstance(i, Rejected)}
    assert set(rejected) == {"CVE-24-1", "CVE-2024-0003", "CVE-2024-0004", "CVE-2024-0005", "CVE-2024-0006",
                             "page.json[6]", "page.json[7]"}  # fmt: skip
    assert "malformed CVSS vector" in rejected["CVE-2024-0003"]
    assert "not an ISO 8601 timestamp" in rejected["CVE-2024-0004"]


def test_a_disagreeing_base_score_is_logged_and_the_computed_one_kept(caplog):
    cve = good_cve()
    cve["metrics"]["cvssMetricV31"][0]["cvssData"]["baseScore"] = 5.0
    with caplog.at_level(logging.WARNING, logger="advisories.importers.nvd"):
        record = cve_record(cve)
    assert record.severities[0].score == 9.8
    assert "base score of 5.0" in caplog.text
    assert "9.8" in caplog.text


def test_duplicate_metrics_are_kept_once():
    cve = good_cve()
    cve["metrics"]["cvssMetricV31"].append(copy.deepcopy(cve["metrics"]["cvssMetricV31"][0]))
    assert len(cve_record(cve).severities) == 1


def test_configurations_never_become_affected_packages():
    match = {
        "vulnerable": True,
        "criteria": "cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*",
        "versionEndExcluding": "3.0.7",
    }
    cve = good_cve(configurations=[{"nodes": [{"operator": "OR", "cpeMatch": [match]}]}])
    record = cve_record(cve)
    assert record.affected == ()
    assert record.raw["configurations"], "the raw record keeps them as evidence"


def test_a_truncated_page_raises_document_error_after_the_records_before_the_damage():
    data = sample("vunnel-full-page.json").read_bytes()
    items: list[AdvisoryRecord | Rejected] = []
    parsed = NvdImporter().parse(Document("page.json", lambda: io.BytesIO(data[: len(data) // 2])))
    with pytest.raises(DocumentError, match="not valid JSON after"):
        items.extend(parsed)
    assert 0 < len(items) < 38
    assert all(isinstance(i, AdvisoryRecord) for i in items)


def test_the_page_is_streamed():
    """The first record arrives before the page has been read to the end."""
    data = sample("vunnel-full-page.json").read_bytes()
    stream = io.BytesIO(data)
    items = parse_nvd(stream, "page.json")
    next(items)
    assert stream.tell() < len(data) // 2


@pytest.mark.parametrize("data", [b'{"foo": 1}', b'{"vulnerabilities": 3}', b'{"cve": {"no": "id"}}'])
def test_json_that_is_not_nvd_is_one_rejected(data):
    (item,) = parse_bytes(data, "stray.json")
    assert isinstance(item, Rejected)
    assert item.id == "stray.json"


@pytest.mark.parametrize("data", [b"", b"[1, 2]", b"\xff\xfe{", b"null", b'{"vulnerabilities": [{"cve": '])
def test_garbage_is_a_document_error(data):
    with pytest.raises(DocumentError):
        parse_bytes(data)


def test_accepts_json_documents_only():
    importer = NvdImporter()
    assert importer.source == "nvd"
    assert importer.default_url.startswith("https://services.nvd.nist.gov/")
    assert importer.accepts("api/2024/CVE-2024-5732.json")
    assert importer.accepts("PAGE.JSON")
    assert not importer.accepts("README.md")


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
cve_like = st.fixed_dictionaries(
    {"id": st.sampled_from(["CVE-2024-1234", "CVE-1-1", ""]) | json_values},
    optional={"published": json_values | st.just("2024-01-01T00:00:00"), "descriptions": json_values,
              "metrics": json_values, "weaknesses": json_values, "references": json_values,
              "vulnStatus": st.just("Rejected") | json_values},
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        json_values.map(json.dumps).map(str.encode),
        st.lists(cve_like, max_size=4).map(lambda cves: page(*cves)),
        cve_like.map(json.dumps).map(str.encode),
    )
)
def test_untrusted_bytes_give_records_rejections_or_a_document_error(data):
    try:
        items = parse_bytes(data)
    except DocumentError:
        return
    assert all(isinstance(i, AdvisoryRecord | Rejected) for i in items)
