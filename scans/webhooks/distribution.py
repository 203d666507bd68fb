"""CNCF Distribution notification envelopes -> push events.

Registry 2.x sends `application/vnd.docker.distribution.events.v1+json`,
3.x sends `...events.v2+json`; both are `{"events": [...]}` with the
pushed manifest described in each event's `target`. Only pushes of image
manifests and indexes matter here; blob pushes and pulls are dropped.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from scans.engine import manifests
from scans.services.scanning import PushEvent

MEDIA_TYPES = (
    "application/vnd.docker.distribution.events.v1+json",
    "application/vnd.docker.distribution.events.v2+json",
    "application/json",
)
_IMAGE_TYPES = manifests.INDEX_TYPES | manifests.MANIFEST_TYPES
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)


class EnvelopeError(ValueError):
    """The body is not a notification envelope."""


def parse_envelope(doc: Any) -> tuple[list[PushEvent], int]:
    """Push events in the envelope, and how many other events were skipped."""
    events = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(events, list):
        raise EnvelopeError('the body is not a notification envelope ({"events": [...]})')
    pushes: list[PushEvent] = []
    skipped = 0
    for event in events:
        push = _push(event)
        if push is None:
            skipped += 1
        else:
            pushes.append(push)
    return pushes, skipped


def _push(event: Any) -> PushEvent | None:
    if not isinstance(event, dict) or event.get("action") != "push":
        return None
    target = event.get("target")
    media_type = target.get("mediaType") if isinstance(target, dict) else None
    # Checked as a string first: a list or object here is unhashable and must not reach the set lookup.
    if not isinstance(media_type, str) or media_type not in _IMAGE_TYPES:
        return None
    digest, repository, tag = target.get("digest"), target.get("repository"), target.get("tag") or ""
    if not (isinstance(digest, str) and _DIGEST.match(digest)):
        return None
    if not (isinstance(repository, str) and len(repository) <= 255 and _REPOSITORY.match(repository)):
        return None
    if not (isinstance(tag, str) and (not tag or _TAG.match(tag))):
        return None
    return PushEvent(
        repository=repository,
        digest=digest,
        tag=tag,
        media_type=media_type,
        pushed_at=_timestamp(event.get("timestamp")),
    )


def _timestamp(value: Any) -> datetime | None:
    """The event's RFC 3339 time (nanoseconds are cut to microseconds); None when absent or not a time with a zone."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
        # In UTC, so that year-1 or year-9999 times with an offset fail here, not in the database.
        return moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None
