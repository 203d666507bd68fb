"""Writing one feed's records: content-hashed, batched, all or nothing.

A record whose content hash is unchanged is not written at all; a changed
one is replaced with its children; records that left the feed are removed.
The caller runs this inside one transaction per feed, so an interrupted or
failed sync leaves the feed's previous data as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import connection, models

from advisories.importers.base import AdvisoryRecord, EpssScore, Item, KevEntry, Rejected
from advisories.models import Advisory, Affected, Alias, AliasKind, Epss, Kev, Severity

log = logging.getLogger(__name__)
M = TypeVar("M", bound=models.Model)
BATCH = 500


@dataclass
class Counts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    withdrawn: int = 0
    rejected: int = 0

    @property
    def records(self) -> int:
        return self.added + self.updated + self.unchanged


def _json_default(value: Any) -> Any:
    """For json.dumps: dataclasses field by field (shallow; json recurses), dates as ISO 8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def record_hash(record: AdvisoryRecord) -> str:
    """A digest of everything stored for the record, its raw form included."""
    payload = json.dumps(record, default=_json_default, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def _ranges(ranges: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"type": r.type, "events": [list(e) for e in r.events]} for r in ranges]


class FeedWriter:
    """Writes one feed's items; use within a transaction."""

    def __init__(self, feed: str, progress: Callable[[Counts], None] | None = None) -> None:
        self.feed = feed
        self.counts = Counts()
        self.progress = progress
        self.existing = dict(Advisory.objects.filter(feed=feed).values_list("advisory_id", "content_hash"))
        self.seen: set[str] = set()
        self.batch: list[tuple[AdvisoryRecord, str]] = []
        self.kev: list[KevEntry] = []
        self.epss: list[EpssScore] = []
        self.replaced_kev = self.replaced_epss = False

    def write(self, items: Iterable[Item]) -> Counts:
        for item in items:
            if isinstance(item, AdvisoryRecord):
                self._advisory(item)
            elif isinstance(item, KevEntry):
                self._enrichment(self.kev, item)
            elif isinstance(item, EpssScore):
                self._enrichment(self.epss, item)
            elif isinstance(item, Rejected):
                self.counts.rejected += 1
                log.info("%s: record %s rejected: %s", self.feed, item.id, item.reason)
            if self.progress is not None and (self.counts.records + self.counts.rejected) % 1000 == 0:
                self.progress(self.counts)
        self._flush()
        gone = set(self.existing) - self.seen
        for chunk in _chunks(sorted(gone)):
            Advisory.objects.filter(feed=self.feed, advisory_id__in=chunk).delete()
        self.counts.removed = len(gone)
        return self.counts

    def _advisory(self, record: AdvisoryRecord) -> None:
        if record.id in self.seen:
            self.counts.rejected += 1
            log.warning("%s: record %s appears twice; the first is kept", self.feed, record.id)
            return
        self.seen.add(record.id)
        if record.withdrawn is not None:
            self.counts.withdrawn += 1
        digest = record_hash(record)
        old = self.existing.get(record.id)
        if old == digest:
            self.counts.unchanged += 1
            return
        if old is None:
            self.counts.added += 1
        else:
            self.counts.updated += 1
        self.batch.append((record, digest))
        if len(self.batch) >= BATCH:
            self._flush()

    def _enrichment(self, rows: list[Any], item: KevEntry | EpssScore) -> None:
        rows.append(item)
        self.counts.added += 1
        if len(rows) >= BATCH * 10:
            self._flush()

    def _flush(self) -> None:
        if self.batch:
            self._write_advisories(self.batch)
            self.batch = []
        if self.kev:
            if not self.replaced_kev:
                Kev.objects.all().delete()  # the catalog is published whole; a sync replaces it
                self.replaced_kev = True
            Kev.objects.bulk_create(Kev(**dataclasses.asdict(k)) for k in self.kev)
            self.kev = []
        if self.epss:
            if not self.replaced_epss:
                Epss.objects.all().delete()
                self.replaced_epss = True
            Epss.objects.bulk_create((Epss(**dataclasses.asdict(e)) for e in self.epss), batch_size=BATCH * 2)
            self.epss = []

    def _write_advisories(self, batch: list[tuple[AdvisoryRecord, str]]) -> None:
        replaced = [record.id for record, _ in batch if record.id in self.existing]
        if replaced:
            Advisory.objects.filter(feed=self.feed, advisory_id__in=replaced).delete()
        rows = _save(
            Advisory,
            [
                Advisory(
                    feed=self.feed,
                    source=record.source,
                    advisory_id=record.id,
                    summary=record.summary,
                    details=record.details,
                    published=record.published,
                    modified=record.modified,
                    withdrawn=record.withdrawn,
                    references=list(record.references),
                    cwes=list(record.cwes),
                    raw=record.raw,  # parsed from JSON or YAML, so already JSON
                    content_hash=digest,
                )
                for record, digest in batch
            ],
        )
        aliases, affected, severities = [], [], []
        for row, (record, _) in zip(rows, batch, strict=True):
            aliases += _aliases(row, record)
            affected += [
                Affected(
                    advisory=row, ecosystem=a.ecosystem, distro=a.distro, release=a.release, package=a.name,
                    purl=a.purl, ranges=_ranges(a.ranges), versions=list(a.versions), status=a.status,
                    severity=a.severity, module=a.module,
                )
                for a in record.affected
            ]  # fmt: skip
            severities += [
                Severity(advisory=row, type=s.type, source=s.source, vector=s.vector, score=s.score, rating=s.rating)
                for s in record.severities
            ]
        _save(Alias, aliases)
        _save(Affected, affected)
        _save(Severity, severities)


def _save(model: type[M], objects: list[M]) -> list[M]:
    """Insert `objects`, filling in their primary keys.

    On PostgreSQL this is COPY with keys drawn from the table's sequence
    first (about four times the speed of INSERT for a feed); elsewhere
    (the embedded SQLite) it is bulk_create.
    """
    if not objects:
        return objects
    if connection.vendor != "postgresql":
        return model.objects.bulk_create(objects, batch_size=BATCH * 4)
    table = model._meta.db_table
    fields = model._meta.concrete_fields
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(objects)]
        )
        for obj, (pk,) in zip(objects, cursor.fetchall(), strict=True):
            obj.pk = pk
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        with cursor.cursor.copy(f"COPY {connection.ops.quote_name(table)} ({columns}) FROM STDIN") as copy:
            for obj in objects:
                copy.write_row([f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields])
    return objects


def _aliases(row: Advisory, record: AdvisoryRecord) -> list[Alias]:
    kinds = {record.id: AliasKind.SELF}
    for ids, kind in ((record.related, AliasKind.RELATED), (record.upstream, AliasKind.UPSTREAM),
                      (record.aliases, AliasKind.ALIAS)):  # fmt: skip
        kinds.update((i, kind) for i in ids if i != record.id)  # later kinds win: alias over upstream over related
    return [Alias(advisory=row, alias=a, kind=k) for a, k in sorted(kinds.items())]


def _chunks(values: list[str], size: int = BATCH) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
