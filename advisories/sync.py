"""Syncing a feed: fetch (conditionally), parse, write atomically, record the run.

Anchore's lesson: a feed's state moves only when a sync completes. A failed
or interrupted sync rolls back and is recorded with its reason; the feed's
previous data keeps answering queries.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from advisories.importers import get_importer
from advisories.importers.base import DocumentError, parse_documents
from advisories.importers.documents import FeedFormatError, iter_documents
from advisories.importers.fetch import fetch
from advisories.ingest import Counts, FeedWriter
from advisories.models import FeedSync, SyncState

log = logging.getLogger(__name__)


class EmptyFeedError(FeedFormatError):
    """A feed with no records at all is a mistake (wrong path, wrong source), never an instruction to delete."""


def feed_key(source: str, location: str) -> str:
    return f"{source}:{location}"


def default_locations(source: str) -> list[str]:
    """Where a source is published: OSV has one all.zip per ecosystem, Alpine one file per release."""
    importer = get_importer(source)
    several = getattr(importer, "default_urls", None)
    if several:
        return list(several)
    url = importer.default_url
    if "{ecosystem}" in url:
        return [url.format(ecosystem=e) for e in settings.VIGIL_OSV_ECOSYSTEMS]
    return [url]


def _location(source: str, location: str | None) -> str:
    if location is None:
        return get_importer(source).default_url
    if "://" in location:
        return location
    return str(Path(location).resolve())


def last_good(feed: str) -> FeedSync | None:
    return FeedSync.objects.filter(feed=feed, state__in=(SyncState.SUCCEEDED, SyncState.UNCHANGED)).first()


def sync_feed(
    source: str, location: str | None = None, *, progress: Callable[[Counts], None] | None = None
) -> FeedSync:
    """Sync one feed and return the run's record; never raises for a bad feed."""
    importer = get_importer(source)
    location = _location(source, location)
    feed = feed_key(source, location)
    previous = last_good(feed)
    run = FeedSync.objects.create(feed=feed, source=source, location=location)
    started = time.monotonic()
    work_root = Path(settings.VIGIL_WORK_DIR)
    work_root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="feed-", dir=work_root) as tmp:
            fetched = fetch(
                location,
                Path(tmp),
                etag=previous.etag if previous else "",
                last_modified=previous.last_modified if previous else "",
            )
            run.etag, run.last_modified = fetched.etag, fetched.last_modified
            run.content_hash = fetched.content_hash or (previous.content_hash if previous else "")
            if fetched.not_modified or (previous is not None and previous.content_hash == fetched.content_hash):
                run.state = SyncState.UNCHANGED
            else:
                assert fetched.path is not None  # noqa: S101 - not_modified is the only None case
                counts = _write(feed, importer, fetched.path, progress)
                _record_counts(run, counts)
                run.state = SyncState.SUCCEEDED
    except (FeedFormatError, DocumentError, OSError) as exc:
        run.state, run.error = SyncState.FAILED, str(exc)
    except Exception as exc:  # a parser bug must not lose the run's record either
        log.exception("sync of %s failed", feed)
        run.state, run.error = SyncState.FAILED, f"internal error: {type(exc).__name__}: {exc}"
    run.finished_at = timezone.now()
    run.duration = time.monotonic() - started
    run.save()
    return run


def _write(feed: str, importer: object, path: Path, progress: Callable[[Counts], None] | None) -> Counts:
    with transaction.atomic():
        writer = FeedWriter(feed, progress)
        counts = writer.write(parse_documents(importer, iter_documents(path)))  # type: ignore[arg-type]
        if counts.records == 0 and counts.rejected == 0:
            raise EmptyFeedError(f"no {feed.split(':', 1)[0]} records found in {path}")
        return counts


def _record_counts(run: FeedSync, counts: Counts) -> None:
    run.added, run.updated, run.unchanged = counts.added, counts.updated, counts.unchanged
    run.removed, run.withdrawn, run.rejected = counts.removed, counts.withdrawn, counts.rejected
