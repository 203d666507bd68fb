"""Recording pushes, running scans and storing inventories.

Functions here take model instances, ids and primitives; never requests or
serializers. The engine does the analysis; this module decides when to run
it and keeps its results.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from advisories.findings import match_analysis
from scans.choices import ImageKind, ScanState
from scans.engine import manifests
from scans.engine.analyzer import Analyzer
from scans.engine.catalogers import default_catalogers
from scans.engine.errors import AnalysisError, RegistryError
from scans.engine.layers import Limits
from scans.engine.models import Analysis, Platform
from scans.engine.registry.auth import Credentials
from scans.engine.registry.client import RegistryClient
from scans.engine.registry.reference import parse_reference
from scans.engine.targets import pull_from_registry
from scans.models import Image, Registry, Repository, ScanJob, Tag, TagEvent
from scans.services.findings import store_report
from scans.services.inventory import store_analysis

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The scan hit a passing failure (registry down, rate limited); the job is queued again."""


@dataclass(frozen=True)
class PushEvent:
    """A manifest or index pushed to a registry, as a webhook reports it."""

    repository: str
    digest: str
    tag: str = ""
    media_type: str = ""


def current_analyzers() -> dict[str, int]:
    return {c.name: c.version for c in default_catalogers()}


def record_push(registry: Registry, event: PushEvent, *, force: bool = False) -> ScanJob | None:
    """Record the image and tag; queue a scan unless this digest is already analysed or queued."""
    with transaction.atomic():
        repository, _ = Repository.objects.get_or_create(registry=registry, name=event.repository)
        kind = ImageKind.INDEX if event.media_type in manifests.INDEX_TYPES else ImageKind.MANIFEST
        image, _ = Image.objects.get_or_create(
            digest=event.digest, defaults={"kind": kind, "media_type": event.media_type}
        )
        if event.tag:
            move_tag(repository, event.tag, image)
        return queue_scan(image, repository, force=force)


def move_tag(repository: Repository, name: str, image: Image) -> None:
    tag, created = Tag.objects.select_for_update().get_or_create(
        repository=repository, name=name, defaults={"image": image}
    )
    if created or tag.image_id != image.id:
        if not created:
            tag.image = image
            tag.save(update_fields=["image", "updated_at"])
        TagEvent.objects.create(tag=tag, image=image)


def queue_scan(image: Image, repository: Repository | None, *, force: bool = False) -> ScanJob | None:
    """A new queued job, or None when one is queued or running, or the image is analysed already.

    An image analysed by older catalogers is scanned again: their output
    may have changed.
    """
    jobs = image.scan_jobs.all()
    if jobs.filter(state__in=(ScanState.QUEUED, ScanState.RUNNING)).exists():
        return None
    up_to_date = image.analyzed_at is not None and image.analyzers == current_analyzers()
    if up_to_date and not force:
        return None
    reference = f"{repository.name}@{image.digest}" if repository else image.digest
    try:
        with transaction.atomic():
            return ScanJob.objects.create(image=image, repository=repository, reference=reference, force=force)
    except IntegrityError:
        return None  # a concurrent push queued it first (one_active_scan_per_image)


def claim(job_id: int) -> ScanJob | None:
    """Move a queued job to running, atomically; None when another worker has it.

    A job left running past the task time limit belonged to a worker that
    died, and may be claimed again.
    """
    stale = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    claimed = ScanJob.objects.filter(
        Q(state=ScanState.QUEUED) | Q(state=ScanState.RUNNING, started_at__lt=stale), id=job_id
    ).update(state=ScanState.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1)
    if not claimed:
        return None
    return ScanJob.objects.select_related("image", "repository__registry").get(id=job_id)


def run_scan(job_id: int) -> None:
    """Analyse the job's image and store its inventory; fail the job with a reason if it cannot be."""
    job = claim(job_id)
    if job is None:
        log.info("scan job %s is not queued; nothing to do", job_id)
        return
    try:
        analysis = analyze_job(job)
    except RegistryError as exc:
        if exc.retryable:
            ScanJob.objects.filter(id=job.id).update(state=ScanState.QUEUED, reason=str(exc))
            raise RetryLater(str(exc)) from exc
        fail_job(job.id, str(exc))
        return
    except AnalysisError as exc:
        fail_job(job.id, str(exc))
        return
    except Exception:
        log.exception("scan job %s failed unexpectedly", job.id)
        fail_job(job.id, "internal error while analysing the image (details in the worker log)")
        return
    try:
        with transaction.atomic():
            store_analysis(job.image, analysis)
            # Findings come from the inventory just stored and the advisory database as it is now.
            store_report(job, match_analysis(analysis))
            ScanJob.objects.filter(id=job.id).update(state=ScanState.DONE, reason="", finished_at=timezone.now())
    except Exception:
        log.exception("scan job %s: storing or matching failed", job.id)
        fail_job(job.id, "internal error while matching the inventory (details in the worker log)")


def fail_job(job_id: int, reason: str) -> None:
    ScanJob.objects.filter(id=job_id).exclude(state=ScanState.DONE).update(
        state=ScanState.FAILED, reason=reason, finished_at=timezone.now()
    )


def limits() -> Limits:
    return Limits(**settings.VIGIL_LIMITS)


def analyze_job(job: ScanJob) -> Analysis:
    if job.repository is None:
        raise AnalysisError("the job names no repository to fetch the image from")
    registry = job.repository.registry
    try:
        # The password property decrypts: a key changed since it was stored raises ValueError too.
        credentials = Credentials(registry.username, registry.password) if registry.username else None
        client = RegistryClient(registry.url, credentials=credentials, insecure=registry.insecure)
    except ValueError as exc:
        raise AnalysisError(f"registry {registry.name}: {exc}") from None
    platform = Platform.parse(settings.VIGIL_PLATFORM)
    work_root = Path(settings.VIGIL_WORK_DIR)
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"job-{job.id}-", dir=work_root) as tmp:
        work = Path(tmp)
        with pull_from_registry(
            client,
            job.repository.name,
            job.image.digest,
            work,
            platform,
            max_blob_size=settings.VIGIL_MAX_BLOB_BYTES,
            display=f"{client.host}/{job.reference}",
        ) as source:
            return Analyzer(work, limits=limits()).run(source)


class ScanRequestError(Exception):
    """A scan request that cannot be served; the message is for the requester."""


def registry_for_host(host: str) -> Registry | None:
    """The configured registry serving `host` (host[:port]); Vigil fetches from no other."""
    for registry in Registry.objects.all():
        if urlsplit(registry.url).netloc == host:
            return registry
    return None


def request_scan(text: str, *, force: bool = False) -> tuple[ScanJob, bool]:
    """Queue a scan of a registry reference; returns the job and whether it is new.

    The reference's registry must be configured: a request never makes
    Vigil fetch from a registry an administrator did not register.
    """
    try:
        ref = parse_reference(text)
    except ValueError as exc:
        raise ScanRequestError(str(exc)) from None
    registry = registry_for_host(ref.registry)
    if registry is None:
        raise ScanRequestError(f"registry {ref.registry} is not configured in Vigil")
    credentials = Credentials(registry.username, registry.password) if registry.username else None
    try:
        with RegistryClient(registry.url, credentials=credentials, insecure=registry.insecure) as client:
            _, media_type, digest = client.get_manifest(ref.repository, ref.reference)
    except (RegistryError, ValueError) as exc:
        raise ScanRequestError(f"cannot resolve {text}: {exc}") from None
    job = record_push(
        registry, PushEvent(ref.repository, digest, ref.tag if not ref.digest else "", media_type), force=force
    )
    if job is not None:
        return job, True
    existing = ScanJob.objects.filter(image__digest=digest).order_by("-created_at", "-id").first()
    if existing is None:  # analysed by the current catalogers but never through a job: scan it
        image = Image.objects.get(digest=digest)
        job = queue_scan(image, Repository.objects.get(registry=registry, name=ref.repository), force=True)
        if job is None:
            raise ScanRequestError(f"{digest} could not be queued")
        return job, True
    return existing, False
