"""CISA Known Exploited Vulnerabilities: the catalog's JSON (streamed with ijson) or its CSV.

Entries are keyed by CVE and kept apart from advisories: they say a CVE is
exploited in the wild, never which package versions are affected.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from typing import IO, Any

from advisories.importers.base import Document, DocumentError, Item, KevEntry, RecordError, Rejected
from advisories.importers.jsonstream import JSON_ERRORS, TopLevelArray

SOURCE = "kev"
DEFAULT_URL = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"
# the published CSV's columns; the JSON uses the same names
REQUIRED = ("cveID", "vendorProject", "product", "vulnerabilityName", "dateAdded", "requiredAction", "dueDate")


class KevImporter:
    source = SOURCE
    default_url = DEFAULT_URL

    def accepts(self, name: str) -> bool:
        base = name.rsplit("/", 1)[-1].lower()
        return base.endswith((".json", ".csv")) and "schema" not in base  # the catalog ships its JSON schema beside it

    def parse_feed(self, documents: Iterable[Document]) -> Iterator[Item]:
        """CISA publishes the catalog as JSON and as CSV side by side: read the JSON when both are there."""
        accepted = list(documents)
        json_documents = [d for d in accepted if d.name.lower().endswith(".json")]
        for document in json_documents or accepted:
            yield from self.parse(document)

    def parse(self, document: Document) -> Iterator[Item]:
        try:
            with document.open() as stream:
                if document.name.lower().endswith(".csv"):
                    yield from parse_kev_csv(stream, document.name)
                else:
                    yield from parse_kev_json(stream, document.name)
        except OSError as exc:
            raise DocumentError(f"{document.name}: cannot read it ({exc})") from None


def parse_kev_json(stream: IO[bytes], name: str) -> Iterator[KevEntry | Rejected]:
    """Every entry of known_exploited_vulnerabilities.json; a bad entry is a Rejected.

    DocumentError when the catalog as a whole is broken: not JSON (truncated,
    garbled), no `vulnerabilities` array, or a `count` that disagrees with the
    entries. The catalog is published whole and replaces the previous one, so
    a partial one must not be stored.
    """
    catalog = TopLevelArray(stream, "vulnerabilities")
    seen = 0
    try:
        for seen, item in enumerate(catalog, start=1):  # noqa: B007 - seen is reported after the loop
            yield _entry_or_rejected(item, f"{name}[{seen - 1}]")
    except JSON_ERRORS as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DocumentError(f"{name}: not valid JSON after {seen} entries ({reason})") from None
    if not catalog.found:
        raise DocumentError(f"{name}: no 'vulnerabilities' array, so not a KEV catalog")
    count = catalog.members.get("count")
    if isinstance(count, int) and count != seen:
        raise DocumentError(f"{name}: the catalog says count {count} but holds {seen} entries")


def parse_kev_csv(stream: IO[bytes], name: str) -> Iterator[KevEntry | Rejected]:
    """Every row of known_exploited_vulnerabilities.csv (header row first); DocumentError when the file is not
    the catalog's CSV or cannot be decoded."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text)
    try:
        missing = [column for column in REQUIRED if column not in (reader.fieldnames or ())]
        if missing:
            raise DocumentError(f"{name}: no {', '.join(missing)} column, so not the KEV catalog's CSV")
        for row in reader:
            if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
                continue  # a blank line is not an entry
            yield _entry_or_rejected(row, f"{name}:{reader.line_num}")
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DocumentError(f"{name}: unreadable CSV at line {reader.line_num} ({exc})") from None
    finally:
        text.detach()  # the document owns the stream


def _entry_or_rejected(item: Any, where: str) -> KevEntry | Rejected:
    try:
        return kev_entry(item)
    except RecordError as exc:
        cve_id = item.get("cveID") if isinstance(item, Mapping) else None
        return Rejected(cve_id.strip() if isinstance(cve_id, str) and cve_id.strip() else where, str(exc))


def kev_entry(item: Any) -> KevEntry:
    """A KevEntry for one catalog entry (a JSON object or a CSV row); RecordError when it is malformed."""
    if not isinstance(item, Mapping):
        raise RecordError(f"a KEV entry is a {type(item).__name__}, not an object")
    for key in REQUIRED:
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise RecordError(f"no {key}")
    ransomware = _text(item, "knownRansomwareCampaignUse")
    if ransomware not in ("Known", "Unknown", ""):
        raise RecordError(f"knownRansomwareCampaignUse {ransomware!r} is neither Known nor Unknown")
    return KevEntry(
        cve_id=item["cveID"].strip(),
        vendor=_text(item, "vendorProject"),
        product=_text(item, "product"),
        name=_text(item, "vulnerabilityName"),
        date_added=_date(item, "dateAdded"),
        due_date=_date(item, "dueDate"),
        known_ransomware=ransomware == "Known",
        required_action=_text(item, "requiredAction"),
        notes=_text(item, "notes"),
    )


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"{key} is not a string")
    return value.strip()


def _date(item: Mapping[str, Any], key: str) -> date:
    value = _text(item, key)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RecordError(f"{key} {value!r} is not a YYYY-MM-DD date") from None
