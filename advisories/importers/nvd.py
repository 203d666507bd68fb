"""NVD CVE API 2.0: enrichment only (descriptions, CVSS, CWEs, references, rejection).

Reads API 2.0 response pages (`{"resultsPerPage", ..., "vulnerabilities":
[{"cve": {...}}]}`, streamed with ijson since a page can be large) and single
`cve` objects as aquasecurity/vuln-list-nvd stores them (`api/YYYY/CVE-*.json`).

NVD's `configurations` (CPE match ranges) are ignored on purpose, and no
AffectedPackage is ever created from NVD. The CPE ranges describe upstream
releases ("openssl before 3.0.7"), while distributions backport fixes into
older version numbers: Debian's 3.0.11-1~deb12u2 carries fixes that no
upstream range knows about. Matching distro packages against NVD ranges
would report fixed packages as vulnerable, so affected packages come only
from the ecosystem and distro feeds, and NVD adds what they lack.

Base scores are computed from the vectors with the cvss library, never taken
from the feed; where the feed's baseScore disagrees, the computed score is
kept and the disagreement is logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

from advisories.importers.base import (
    AdvisoryRecord,
    Document,
    DocumentError,
    Item,
    RecordError,
    Rejected,
    SeverityScore,
)
from advisories.importers.jsonstream import JSON_ERRORS, TopLevelArray
from advisories.importers.severity import cvss_severity

logger = logging.getLogger(__name__)

SOURCE = "nvd"
DEFAULT_URL = "https://services.nvd.nist.gov/rest/json/cves/2.0"
NVD_SOURCE = "nvd@nist.gov"  # the `source` NVD gives its own assessments

# metrics keys, newest CVSS version first: the order severities are handed over in
METRIC_KEYS = ("cvssMetricV40", "cvssMetricV31", "cvssMetricV30", "cvssMetricV2")
_CVE_ID = re.compile(r"CVE-\d{4}-\d{4,}")
_CWE_ID = re.compile(r"CWE-\d+")  # NVD's placeholders NVD-CWE-noinfo and NVD-CWE-Other say nothing
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
SUMMARY_LENGTH = 200


class NvdImporter:
    source = SOURCE
    default_url = DEFAULT_URL

    def accepts(self, name: str) -> bool:
        return name.lower().endswith(".json")

    def parse(self, document: Document) -> Iterator[Item]:
        try:
            with document.open() as stream:
                yield from parse_nvd(stream, document.name)
        except OSError as exc:
            raise DocumentError(f"{document.name}: cannot read it ({exc})") from None


def parse_nvd(stream: IO[bytes], name: str) -> Iterator[AdvisoryRecord | Rejected]:
    """Every CVE of an API 2.0 page, or the one CVE of a single `cve` object; a bad record is a Rejected.

    A document that stops being JSON part-way (truncated, garbled) raises
    DocumentError, after the records read before the damage: the sync's
    transaction then keeps the feed's previous data. Valid JSON that is not
    NVD data (a stray file in a bundle) is one Rejected.
    """
    page = TopLevelArray(stream, "vulnerabilities")
    index = -1
    try:
        for index, entry in enumerate(page):  # noqa: B007 - index is reported after the loop
            yield _record_or_rejected(entry.get("cve") if isinstance(entry, dict) else entry, f"{name}[{index}]")
    except JSON_ERRORS as exc:
        raise DocumentError(f"{name}: not valid JSON after {index + 1} records ({_first_line(exc)})") from None
    if page.found:
        return
    single = page.members.get("cve", page.members)  # a cve object, bare or wrapped as in the API's items
    if isinstance(single, dict) and "id" in single:
        yield _record_or_rejected(single, name)
    else:
        yield Rejected(name, "neither an NVD API 2.0 page (no 'vulnerabilities' array) nor a CVE object")


def _record_or_rejected(cve: Any, where: str) -> AdvisoryRecord | Rejected:
    try:
        return cve_record(cve)
    except RecordError as exc:
        cve_id = cve.get("id") if isinstance(cve, dict) else None
        return Rejected(cve_id if isinstance(cve_id, str) and cve_id else where, str(exc))


def cve_record(cve: Any) -> AdvisoryRecord:
    """An AdvisoryRecord for one NVD `cve` object; RecordError when it is malformed."""
    if not isinstance(cve, dict):
        raise RecordError(f"a CVE entry is a {type(cve).__name__}, not an object")
    cve_id = cve.get("id")
    if not isinstance(cve_id, str) or not _CVE_ID.fullmatch(cve_id):
        raise RecordError(f"bad CVE id {cve_id!r}")
    description = _english_description(cve.get("descriptions"))
    modified = _timestamp(cve, "lastModified")
    return AdvisoryRecord(
        id=cve_id,
        source=SOURCE,
        summary=_summary(description),
        details=description,
        published=_timestamp(cve, "published"),
        modified=modified,
        withdrawn=(modified or _timestamp(cve, "published")) if cve.get("vulnStatus") == "Rejected" else None,
        references=_references(cve.get("references")),
        cwes=_cwes(cve.get("weaknesses")),
        severities=severities(cve_id, cve.get("metrics")),
        raw=cve,
    )


def severities(cve_id: str, metrics: Any) -> tuple[SeverityScore, ...]:
    """NVD's own (Primary) scores first, then the other sources' under their source names; newest CVSS first."""
    if metrics is None:
        return ()
    if not isinstance(metrics, dict):
        raise RecordError("metrics is not an object")
    scored: list[tuple[int, SeverityScore]] = []
    for key in METRIC_KEYS:
        entries = metrics.get(key) or []
        if not isinstance(entries, list):
            raise RecordError(f"{key} is not a list")
        for entry in entries:
            rank, score = _metric(cve_id, key, entry)
            if all(score != other for _, other in scored):
                scored.append((rank, score))
    return tuple(score for _, score in sorted(scored, key=lambda pair: pair[0]))  # stable: version order kept


def _metric(cve_id: str, key: str, entry: Any) -> tuple[int, SeverityScore]:
    data = entry.get("cvssData") if isinstance(entry, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("vectorString"), str):
        raise RecordError(f"{key} entry without cvssData.vectorString")
    vector: str = data["vectorString"]
    source = entry.get("source")
    if not isinstance(source, str) or not source:
        raise RecordError(f"{key} entry without a source")
    score = cvss_severity(vector, SOURCE if source == NVD_SOURCE else source)
    published = data.get("baseScore")
    if published is not None and (not isinstance(published, int | float) or float(published) != score.score):
        logger.warning("%s: NVD gives %s a base score of %r; the cvss library computes %s, which is kept",
                       cve_id, vector, published, score.score)  # fmt: skip
    primary = entry.get("type") == "Primary"
    return (0 if primary and source == NVD_SOURCE else 1 if primary else 2), score


def _english_description(descriptions: Any) -> str:
    if not isinstance(descriptions, list):
        return ""
    texts = [d for d in descriptions if isinstance(d, dict) and isinstance(d.get("value"), str)]
    english: list[str] = [d["value"] for d in texts if d.get("lang") == "en"]
    return (english or [str(d["value"]) for d in texts] or [""])[0].strip()


def _summary(description: str) -> str:
    """The first sentence, on one line, cut at a word boundary when it is long."""
    flat = " ".join(description.split())
    first = _SENTENCE_END.split(flat, maxsplit=1)[0]
    if len(first) <= SUMMARY_LENGTH:
        return first
    return first[: SUMMARY_LENGTH - 1].rsplit(" ", 1)[0] + "…"


def _timestamp(cve: dict[str, Any], key: str) -> datetime | None:
    """NVD timestamps are UTC without an offset ("2024-06-07T10:15:12.293")."""
    value = cve.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{key} is not a string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"{key} {value!r} is not an ISO 8601 timestamp") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _references(references: Any) -> tuple[str, ...]:
    if not isinstance(references, list):
        return ()
    urls = (r.get("url") for r in references if isinstance(r, dict))
    return tuple(dict.fromkeys(u.strip() for u in urls if isinstance(u, str) and u.strip()))


def _cwes(weaknesses: Any) -> tuple[str, ...]:
    if not isinstance(weaknesses, list):
        return ()
    values = (
        d.get("value")
        for w in weaknesses
        if isinstance(w, dict) and isinstance(w.get("description"), list)
        for d in w["description"]
        if isinstance(d, dict)
    )
    return tuple(dict.fromkeys(v for v in values if isinstance(v, str) and _CWE_ID.fullmatch(v)))


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
