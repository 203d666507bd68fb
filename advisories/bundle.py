"""The whole advisory database as one file, for air-gapped sites.

The file is a tar holding `manifest.json` (format, creation time, feeds
with their last sync, row counts, and the SHA-256 of every other member)
and gzip-compressed JSON Lines: advisories with their aliases, affected
packages and severities, KEV entries, EPSS scores and feed states. Import
verifies every digest before it changes anything, then replaces the
database's advisory data in one transaction.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from advisories.models import Advisory, Affected, Alias, Epss, FeedSync, Kev, Severity, SyncState

FORMAT = "vigil-advisories/1"
MEMBERS = ("advisories.jsonl.gz", "kev.jsonl.gz", "epss.jsonl.gz", "feeds.jsonl.gz")
_BATCH = 1000
_ADVISORY_FIELDS = ("feed", "source", "advisory_id", "summary", "details", "references", "cwes", "raw", "content_hash")
_AFFECTED_FIELDS = ("ecosystem", "distro", "release", "package", "purl", "ranges", "versions", "status", "severity",
                    "module")  # fmt: skip
_SEVERITY_FIELDS = ("type", "source", "vector", "score", "rating")
_KEV_FIELDS = ("cve_id", "vendor", "product", "name", "date_added", "due_date", "known_ransomware",
               "required_action", "notes")  # fmt: skip
_EPSS_FIELDS = ("cve_id", "score", "percentile", "date", "model_version")
_FEED_FIELDS = ("feed", "source", "location", "etag", "last_modified", "content_hash", "started_at", "finished_at")


class BundleError(ValueError):
    """The file is not a valid advisory bundle, or does not match its digests."""


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _row(obj: Any, fields: Iterable[str]) -> dict[str, Any]:
    return {f: _iso(getattr(obj, f)) for f in fields}


def _advisories() -> Iterator[dict[str, Any]]:
    queryset = Advisory.objects.order_by("feed", "advisory_id").prefetch_related("alias_set", "affected", "severities")
    for advisory in queryset.iterator(chunk_size=_BATCH):
        row = _row(advisory, (*_ADVISORY_FIELDS, "published", "modified", "withdrawn"))
        row["aliases"] = sorted([a.alias, a.kind] for a in advisory.alias_set.all())
        row["affected"] = [_row(a, _AFFECTED_FIELDS) for a in sorted(advisory.affected.all(), key=lambda a: a.pk)]
        row["severities"] = [_row(s, _SEVERITY_FIELDS) for s in sorted(advisory.severities.all(), key=lambda s: s.pk)]
        yield row


def _feeds() -> Iterator[dict[str, Any]]:
    seen = set()
    for run in FeedSync.objects.filter(state__in=(SyncState.SUCCEEDED, SyncState.UNCHANGED)):
        if run.feed not in seen:  # newest first: the last good sync of each feed
            seen.add(run.feed)
            yield _row(run, _FEED_FIELDS)


def _write_jsonl_gz(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with gzip.open(path, "wb", compresslevel=6) as out:
        for row in rows:
            out.write(json.dumps(row, sort_keys=True, ensure_ascii=False).encode() + b"\n")
            count += 1
    return count


def _sha256_file(f: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := f.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return _sha256_file(f)


def export_bundle(path: Path) -> dict[str, Any]:
    """Write the bundle to `path`, one member at a time through a scratch dir; returns its manifest."""
    sources = {
        "advisories.jsonl.gz": _advisories(),
        "kev.jsonl.gz": (_row(k, _KEV_FIELDS) for k in Kev.objects.order_by("cve_id").iterator()),
        "epss.jsonl.gz": (_row(e, _EPSS_FIELDS) for e in Epss.objects.order_by("cve_id").iterator()),
        "feeds.jsonl.gz": _feeds(),
    }
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        counts, digests = {}, {}
        for name, rows in sources.items():
            member = Path(tmp) / name
            counts[name.split(".")[0]] = _write_jsonl_gz(member, rows)
            with member.open("rb") as f:
                digests[name] = _sha256_file(f)
        with Path(tmp, "feeds.jsonl.gz").open("rb") as f:
            feeds = list(_lines(f))
        manifest = {
            "format": FORMAT,
            "created": timezone.now().isoformat(),
            "feeds": feeds,
            "counts": counts,
            "sha256": digests,
        }
        Path(tmp, "manifest.json").write_text(json.dumps(manifest, indent=2))
        with tarfile.open(path, "w") as tar:
            for name in ("manifest.json", *MEMBERS):
                tar.add(Path(tmp) / name, arcname=name)
    return manifest


def _open_checked(tar: tarfile.TarFile, path: Path) -> tuple[dict[str, Any], dict[str, tarfile.TarInfo]]:
    files = {m.name: m for m in tar.getmembers() if m.isreg()}
    if "manifest.json" not in files or not set(MEMBERS) <= set(files):
        raise BundleError(f"{path} is not an advisory bundle (members missing)")
    try:
        manifest = json.load(tar.extractfile(files["manifest.json"]))  # type: ignore[arg-type]
    except ValueError:
        raise BundleError(f"{path}: manifest.json is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: unknown bundle format")
    for name in MEMBERS:
        if _sha256_file(tar.extractfile(files[name])) != manifest.get("sha256", {}).get(name):  # type: ignore[arg-type]
            raise BundleError(f"{path}: {name} does not match its SHA-256 in the manifest (corrupt or altered)")
    return manifest, files


def _lines(f: IO[bytes]) -> Iterator[dict[str, Any]]:
    with gzip.GzipFile(fileobj=f) as lines:
        for line in lines:
            yield json.loads(line)


def _dt(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


def _d(value: str | None) -> date | None:
    return parse_date(value) if value else None


def import_bundle(path: Path) -> dict[str, Any]:
    """Replace the advisory data with the bundle's, after checking every digest."""
    try:
        with tarfile.open(path, "r:") as tar:
            manifest, files = _open_checked(tar, path)
            with transaction.atomic():
                _replace(tar, files, path)
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{path} cannot be read ({exc})") from None
    return manifest


def _replace(tar: tarfile.TarFile, files: dict[str, tarfile.TarInfo], path: Path) -> None:
    def member(name: str) -> Iterator[dict[str, Any]]:
        return _lines(tar.extractfile(files[name]))  # type: ignore[arg-type]

    Advisory.objects.all().delete()
    Kev.objects.all().delete()
    Epss.objects.all().delete()
    batch: list[dict[str, Any]] = []
    for row in member("advisories.jsonl.gz"):
        batch.append(row)
        if len(batch) >= _BATCH:
            _insert_advisories(batch)
            batch = []
    _insert_advisories(batch)
    Kev.objects.bulk_create(
        (
            Kev(**{**r, "date_added": _d(r["date_added"]), "due_date": _d(r["due_date"])})
            for r in member("kev.jsonl.gz")
        ),
        batch_size=_BATCH,
    )
    Epss.objects.bulk_create(
        (Epss(**{**r, "date": _d(r["date"])}) for r in member("epss.jsonl.gz")), batch_size=_BATCH * 5
    )
    for r in member("feeds.jsonl.gz"):
        run = FeedSync.objects.create(
            **{k: r[k] for k in _FEED_FIELDS if k not in ("started_at", "finished_at")},
            state=SyncState.SUCCEEDED,
            finished_at=_dt(r["finished_at"]),
            error=f"imported from {path.name}",
        )
        FeedSync.objects.filter(pk=run.pk).update(started_at=_dt(r["started_at"]))  # keep the feed's real age


def _insert_advisories(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    created = Advisory.objects.bulk_create(
        Advisory(
            **{f: r[f] for f in _ADVISORY_FIELDS},
            published=_dt(r["published"]),
            modified=_dt(r["modified"]),
            withdrawn=_dt(r["withdrawn"]),
        )
        for r in rows
    )
    Alias.objects.bulk_create(
        Alias(advisory=a, alias=x, kind=kind) for a, r in zip(created, rows, strict=True) for x, kind in r["aliases"]
    )
    Affected.objects.bulk_create(
        Affected(advisory=a, **x) for a, r in zip(created, rows, strict=True) for x in r["affected"]
    )
    Severity.objects.bulk_create(
        Severity(advisory=a, **x) for a, r in zip(created, rows, strict=True) for x in r["severities"]
    )
