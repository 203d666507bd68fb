"""The Scanner Adapter API's logic: what Vigil tells Harbor, accepting its scan requests, finding their reports.

Functions take primitives and return documents or jobs, never requests. A
scan request id is the id of the ScanJob that answers it: a new job, or the
job that already analyses (or analysed) the same digest, as for any push.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from advisories.findings import database_state
from advisories.models import FeedSync, SyncState
from scans.choices import ACTIVE_STATES, ScanState
from scans.engine.manifests import DOCKER_MANIFEST, INDEX_TYPES, MANIFEST_TYPES, OCI_MANIFEST
from scans.harbor import reports
from scans.models import Image, Registry, ScanJob, Tag
from scans.services.findings import latest_scan, match_scan, report_from_scan
from scans.services.inventory import analysis_from_image
from scans.services.scanning import PushEvent, queue_scan, record_push, registry_for_host

GENERIC_REPORT = "application/vnd.security.vulnerability.report; version=1.1"
NATIVE_REPORT = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
SBOM_REPORT = "application/vnd.security.sbom.report+json; version=1.0"
REPORT_TYPES = (NATIVE_REPORT, GENERIC_REPORT, SBOM_REPORT)
# Harbor's Validate() wants the Docker v2 manifest type in every capability.
CONSUMES = [OCI_MANIFEST, DOCKER_MANIFEST]
# What a scan request may name: the capabilities' types, indexes (one platform's manifest is scanned) and
# nothing (taken as a manifest, the media type read from the registry).
ARTIFACT_TYPES = frozenset({"", *MANIFEST_TYPES, *INDEX_TYPES})
PROPERTY_SCANNER_TYPE = "harbor.scanner-adapter/scanner-type"
PROPERTY_DATABASE_UPDATED_AT = "harbor.scanner-adapter/vulnerability-database-updated-at"
PROPERTY_REGISTRY_AUTHORIZATION = "harbor.scanner-adapter/registry-authorization-type"
# Seconds Harbor waits before asking for a report again. Harbor parses it as an int8: at most 127.
REFRESH_AFTER = 10
_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


class AdapterError(Exception):
    """A request the adapter answers with an error body; `message` is for Harbor's user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def metadata() -> dict[str, Any]:
    """The scanner, its capabilities, and when its advisory data was last synced."""
    properties = {
        PROPERTY_SCANNER_TYPE: "os-package-vulnerability",
        # Harbor then sends a robot account's `Basic` credentials, which work with every registry auth scheme.
        PROPERTY_REGISTRY_AUTHORIZATION: "Basic",
    }
    last_sync = database_state()[0].last_sync
    if last_sync:  # Harbor refuses a property with an empty value
        properties[PROPERTY_DATABASE_UPDATED_AT] = reports.timestamp(datetime.fromisoformat(last_sync))
    return {
        "scanner": reports.SCANNER,
        "capabilities": [
            {
                "type": "vulnerability",
                "consumes_mime_types": CONSUMES,
                "produces_mime_types": [GENERIC_REPORT, NATIVE_REPORT],
            },
            {
                "type": "sbom",
                "consumes_mime_types": CONSUMES,
                "produces_mime_types": [SBOM_REPORT],
                "additional_attributes": {"sbom_media_types": list(reports.SBOM_MEDIA_TYPES)},
            },
        ],
        "properties": properties,
    }


def registry_for_url(url: str) -> Registry:
    """The configured registry a scan request's `registry.url` names; Vigil pulls from no other."""
    text = url.strip()
    parts = urlsplit(text if "://" in text else f"//{text}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise AdapterError(422, f"invalid registry_url {text[:200]!r}: bad port") from None
    host = parts.hostname or ""
    if (
        parts.scheme not in ("", "http", "https")
        or not (_HOSTNAME.fullmatch(host) or host.startswith("["))
        or parts.path.strip("/")
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise AdapterError(
            422, f"invalid registry_url {text[:200]!r}: give the registry's base URL, http(s)://host[:port]"
        )
    registry = registry_for_host(parts.netloc.lower())
    if registry is None:
        raise AdapterError(
            422,
            f"registry {parts.netloc} is not configured in Vigil: add it (with the URL Harbor sends) to let Vigil pull "
            "from it",
        )
    return registry


def accept_scan(
    registry_url: str, repository: str, digest: str, tag: str = "", mime_type: str = ""
) -> tuple[ScanJob, bool]:
    """The job that answers a scan request, and whether it is new (then the caller enqueues it).

    The artifact is recorded like a push: a digest already analysed by the
    current catalogers, or being analysed, is not pulled again.
    """
    if mime_type not in ARTIFACT_TYPES:
        # The spec says 501; Vigil answers requests it cannot serve with a 4xx, never a 5xx (Harbor only ever
        # asks for the types the metadata names, and treats any answer but 202 as a failed request).
        raise AdapterError(422, f"artifact.mime_type: Vigil scans container images, not {mime_type[:200]!r}")
    registry = registry_for_url(registry_url)
    job = record_push(registry, PushEvent(repository, digest, tag, mime_type))
    if job is not None:
        return job, True
    image = Image.objects.get(digest=digest)
    existing = (
        image.scan_jobs.filter(state__in=ACTIVE_STATES).order_by("-id").first()
        or latest_scan(image)
        # A failure the next push would not retry (a poison image): its reason is the answer.
        or image.scan_jobs.order_by("-created_at", "-id").first()
    )
    if existing is not None:
        return existing, False
    # Analysed by the current catalogers, but never through a job (as request_scan does).
    job = queue_scan(image, registry.repository_set.get(name=repository), force=True)
    if job is None:
        raise AdapterError(503, f"{digest} could not be queued; ask again")
    return job, True


def _job(scan_request_id: str) -> ScanJob:
    if not (scan_request_id.isascii() and scan_request_id.isdigit() and len(scan_request_id) <= 18):
        raise AdapterError(404, f"no scan request {scan_request_id[:100]!r}")
    job = ScanJob.objects.select_related("image", "repository").filter(pk=int(scan_request_id)).first()
    if job is None:
        raise AdapterError(404, f"no scan request {scan_request_id}")
    return job


def _artifact(job: ScanJob) -> dict[str, str]:
    artifact = {"repository": job.repository.name if job.repository else "", "digest": job.image.digest}
    if job.repository is not None:
        tag = Tag.objects.filter(repository=job.repository, image=job.image).order_by("-updated_at").first()
        artifact["tag"] = tag.name if tag else ""
    artifact["mime_type"] = job.image.media_type
    return {k: v for k, v in artifact.items() if v}


def _rematched(job: ScanJob) -> ScanJob:
    """The job, its findings matched again if advisory data changed since they were (index once, match on read)."""
    changed = FeedSync.objects.filter(state=SyncState.SUCCEEDED, finished_at__isnull=False).aggregate(
        at=Max("finished_at")
    )["at"]
    if job.matched_at is not None and (changed is None or changed <= job.matched_at):
        return job
    with transaction.atomic():
        # Locked, so that Harbor polling twice does not match twice at once.
        locked = ScanJob.objects.select_for_update(of=("self",)).select_related("image", "repository").get(pk=job.pk)
        if locked.matched_at is None or (changed is not None and changed > locked.matched_at):
            match_scan(locked)
    return locked


def report(scan_request_id: str, mime_type: str, sbom_media_type: str = "") -> dict[str, Any] | None:
    """The report document of a scan request; None while its scan is queued or running.

    Raises AdapterError: 404 for an unknown id, 400 for an SBOM asked without
    a valid `sbom_media_type`, 500 for a failed scan (with its reason) and for
    findings matched against an empty advisory database, which are no report.
    """
    job = _job(scan_request_id)
    if mime_type == SBOM_REPORT and sbom_media_type not in reports.SBOM_MEDIA_TYPES:
        raise AdapterError(400, f"give sbom_media_type, one of {', '.join(reports.SBOM_MEDIA_TYPES)}")
    if job.state in ACTIVE_STATES:
        return None
    if job.state != ScanState.DONE:
        raise AdapterError(500, f"the scan failed: {job.reason or 'no reason recorded'}")
    if mime_type == SBOM_REPORT:
        return reports.sbom_report(
            analysis_from_image(job.image), _artifact(job), job.finished_at or timezone.now(), sbom_media_type
        )
    job = _rematched(job)
    if job.database.get("empty", True):
        raise AdapterError(
            500,
            "the advisory database is empty: no package was checked against advisories. Sync advisories "
            "(manage.py sync_advisories) and ask again.",
        )
    return reports.vulnerability_report(report_from_scan(job), _artifact(job), job.matched_at or timezone.now())
