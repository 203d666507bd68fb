"""FIRST EPSS daily scores: CSV, gzip-compressed as published or plain, streamed row by row.

The file starts with a comment line that dates the scores and names the
model, then a header:

    #model_version:v2023.03.01,score_date:2025-02-20T00:00:00+0000
    cve,epss,percentile
    CVE-1999-0001,0.00383,0.73075

Without the comment line (or the header) the scores have no date, so the
file gives one Rejected and no scores rather than scores dated by guess; the
stored scores stay. A bad row is a Rejected. A stream that breaks part-way
(truncated gzip, bytes that are not UTF-8) raises DocumentError, so that a
partial day never replaces a whole one. Scores are keyed by CVE and kept
apart from advisories.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import zlib
from collections.abc import Iterable, Iterator
from datetime import date, datetime

from advisories.importers.base import Document, DocumentError, EpssScore, Item, RecordError, Rejected

SOURCE = "epss"
DEFAULT_URL = "https://epss.cyentia.com/epss_scores-current.csv.gz"
HEADER = ["cve", "epss", "percentile"]
GZIP_MAGIC = b"\x1f\x8b"
# a truncated or corrupt gzip stream, or bytes that are not UTF-8
_STREAM_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error)


class EpssImporter:
    source = SOURCE
    default_url = DEFAULT_URL

    def accepts(self, name: str) -> bool:
        return name.lower().endswith((".csv", ".csv.gz"))

    def parse(self, document: Document) -> Iterator[Item]:
        try:
            with document.open() as probe:
                compressed = probe.read(2) == GZIP_MAGIC
            with document.open() as raw:
                stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
                text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
                try:
                    yield from parse_epss(text, document.name)
                finally:
                    text.detach()  # the document owns the stream
        except _STREAM_ERRORS as exc:
            raise DocumentError(f"{document.name}: cannot read it ({exc})") from None


def parse_epss(lines: Iterable[str], name: str) -> Iterator[EpssScore | Rejected]:
    """Every score of an EPSS CSV, given as text lines; a bad row is a Rejected, and so is a file without the
    comment line or the header. DocumentError when the stream breaks part-way."""
    rows = iter(lines)
    try:
        model_version, score_date = parse_model_line(next(rows, ""))
    except RecordError as exc:
        yield Rejected(name, str(exc))
        return
    reader = csv.reader(rows)
    header = next(reader, None)
    if [field.strip().lower() for field in header or ()] != HEADER:
        yield Rejected(name, f"the second line is {header!r}, not the header cve,epss,percentile")
        return
    try:
        for row in reader:
            if not any(field.strip() for field in row):
                continue  # a blank line is not a record
            # the comment line was read before the csv reader started: file line = reader line + 1
            yield _score_or_rejected(row, score_date, model_version, f"{name}:{reader.line_num + 1}")
    except _STREAM_ERRORS as exc:
        raise DocumentError(f"{name}: unreadable after line {reader.line_num + 1} ({exc})") from None


def parse_model_line(line: str) -> tuple[str, date]:
    """(model_version, score_date) from `#model_version:v2023.03.01,score_date:2025-02-20T00:00:00+0000`."""
    line = line.removeprefix("\ufeff")
    if not line.startswith("#"):
        raise RecordError(f"no '#model_version:…,score_date:…' line first, so the scores have no date (got {line!r})")
    fields = dict(part.split(":", 1) for part in line[1:].strip().split(",") if ":" in part)
    model_version = fields.get("model_version", "").strip()
    when = fields.get("score_date", "").strip()
    try:
        score_date = datetime.strptime(when, "%Y-%m-%dT%H:%M:%S%z").date() if "T" in when else date.fromisoformat(when)
    except ValueError:
        raise RecordError(f"score_date {when!r} in the comment line is not a date") from None
    return model_version, score_date


def _score_or_rejected(row: list[str], score_date: date, model_version: str, where: str) -> EpssScore | Rejected:
    cve_id = row[0].strip() if row else ""
    try:
        if len(row) != len(HEADER):
            raise RecordError(f"{len(row)} fields, not {len(HEADER)}")
        return EpssScore(cve_id, _probability(row[1], "epss"), _probability(row[2], "percentile"), score_date,
                         model_version)  # fmt: skip
    except RecordError as exc:
        return Rejected(cve_id or where, str(exc))


def _probability(text: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RecordError(f"{column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RecordError(f"{column} {text!r} is not a finite number")
    return value  # EpssScore checks the 0-1 range
