"""Recording pushes, running scans and storing inventories.

Functions here take model instances, ids and primitives; never requests or
serializers. The engine does the analysis; this module decides when to run
it and keeps its results.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from advisories.findings import match_analysis
from scans.choices import ACTIVE_STATES, STICKY_FAILURES, ImageKind, ScanFailure, ScanState
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
from scans.services.backpressure import Slot, registry_slot
from scans.services.findings import store_report
from scans.services.inventory import store_analysis

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The scan hit a passing failure (registry down, rate limited); the job is queued again."""


class ScanTimeout(BaseException):
    """The scan ran past its per-size time limit.

    A BaseException, like SystemExit: it is raised by a timer wherever the
    scan happens to be, and must not be taken for a malformed file by an
    `except Exception` that turns errors into warnings.
    """


@dataclass(frozen=True)
class PushEvent:
    """A manifest or index pushed to a registry, as a webhook reports it."""

    repository: str
    digest: str
    tag: str = ""
    media_type: str = ""
    # When the registry says the push happened; orders tag moves when events arrive out of order.
    pushed_at: datetime | None = None


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
            move_tag(repository, event.tag, image, event.pushed_at)
        return queue_scan(image, repository, force=force)


def move_tag(repository: Repository, name: str, image: Image, pushed_at: datetime | None = None) -> None:
    """Point the tag at `image`, unless a push newer than `pushed_at` moved it already.

    Registries deliver notifications at least once and in no guaranteed
    order; the push time in the event, not the arrival order, decides.
    """
    tag, created = Tag.objects.select_for_update().get_or_create(
        repository=repository, name=name, defaults={"image": image, "pushed_at": pushed_at}
    )
    if created:
        TagEvent.objects.create(tag=tag, image=image)
        return
    if pushed_at is not None and tag.pushed_at is not None and pushed_at < tag.pushed_at:
        log.info("%s: a push of %s at %s is older than the tag's; not moved back", tag, image.digest, pushed_at)
        return
    newer = pushed_at is not None and (tag.pushed_at is None or pushed_at > tag.pushed_at)
    if tag.image_id != image.id:
        tag.image = image
        tag.pushed_at = pushed_at if newer else tag.pushed_at
        tag.save(update_fields=["image", "pushed_at", "updated_at"])
        TagEvent.objects.create(tag=tag, image=image)
    elif newer:  # the same digest pushed again: later, older events must still lose to this one
        Tag.objects.filter(id=tag.id).update(pushed_at=pushed_at)


def queue_scan(image: Image, repository: Repository | None, *, force: bool = False) -> ScanJob | None:
    """A new queued job, or None when one is queued or running, or no scan is due.

    No scan is due when the image is analysed by the current catalogers (one
    analysed by older catalogers is scanned again: their output may have
    changed), or when its last scan failed for a reason that would recur (a
    poison image): only a forced scan tries again.
    """
    jobs = image.scan_jobs.all()
    if jobs.filter(state__in=ACTIVE_STATES).exists():
        return None
    if not force:
        if image.analyzed_at is not None and image.analyzers == current_analyzers():
            return None
        last = jobs.order_by("-created_at", "-id").first()
        if last is not None and last.state == ScanState.FAILED and last.failure in STICKY_FAILURES:
            log.info("%s failed before (%s); not scanned again unless forced", image.digest, last.failure)
            return None
    reference = f"{repository.name}@{image.digest}" if repository else image.digest
    try:
        with transaction.atomic():
            return ScanJob.objects.create(
                image=image, repository=repository, reference=reference, force=force, lease_expires_at=_queued_lease()
            )
    except IntegrityError:
        return None  # a concurrent push queued it first (one_active_scan_per_image)


def retry_job(job_id: int) -> tuple[ScanJob, bool]:
    """Scan the image of a failed job again, forced; returns the job and whether it is new.

    The failed job stays as it is (its reason is history); the retry is a new
    job. When the image has a queued or running job already, that one is returned.
    """
    job = ScanJob.objects.select_related("image", "repository").get(id=job_id)
    if job.state != ScanState.FAILED:
        raise ScanRequestError(f"scan {job.id} is {job.state}; only a failed scan can be retried")
    if job.repository is None:
        raise ScanRequestError(f"scan {job.id} names no repository to fetch the image from")
    new = queue_scan(job.image, job.repository, force=True)
    if new is not None:
        return new, True
    active = job.image.scan_jobs.filter(state__in=ACTIVE_STATES).first()
    if active is None:
        raise ScanRequestError(f"scan {job.id} could not be queued again")
    return active, False


# -- leases -------------------------------------------------------------------------------------


def _queued_lease(now: datetime | None = None) -> datetime:
    """When the reaper sends a queued job's message again, had no worker taken it by then."""
    return (now or timezone.now()) + timedelta(seconds=settings.VIGIL_SCAN_QUEUE_LEASE_SECONDS)


def _running_lease(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.VIGIL_SCAN_LEASE_SECONDS)


def new_lease_owner() -> str:
    """Names the worker (for people) and this one claim (for the fence)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"


def _stale_running(now: datetime) -> Q:
    # Jobs claimed before leases existed have none: the old rule (past the hard time limit) applies.
    old_rule = Q(lease_expires_at__isnull=True, started_at__lt=now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT))
    return Q(state=ScanState.RUNNING) & (Q(lease_expires_at__lt=now) | old_rule)


def _stale_queued(now: datetime) -> Q:
    old_rule = Q(
        lease_expires_at__isnull=True, created_at__lt=now - timedelta(seconds=settings.VIGIL_SCAN_QUEUE_LEASE_SECONDS)
    )
    return Q(state=ScanState.QUEUED) & (Q(lease_expires_at__lt=now) | old_rule)


def reap_job(job_id: int, now: datetime | None = None) -> str:
    """Take back a running job whose worker stopped renewing its lease: 'requeued', 'failed' or ''.

    Each loss counts; past VIGIL_SCAN_MAX_LOST_WORKERS the job fails for good,
    so an image that kills its worker (out of memory, say) never loops.
    """
    now = now or timezone.now()
    stale = ScanJob.objects.filter(_stale_running(now), id=job_id)
    cap = settings.VIGIL_SCAN_MAX_LOST_WORKERS
    reason = (
        f"the worker analysing this image stopped {cap + 1} times (killed, or out of memory?); "
        f"not retried automatically: retry it from the admin or POST /api/v1/scans/{job_id}/retry"
    )
    common = {"lease_owner": "", "lost_workers": F("lost_workers") + 1}
    if stale.filter(lost_workers__gte=cap).update(
        state=ScanState.FAILED, failure=ScanFailure.WORKER_LOST, reason=reason, finished_at=now,
        lease_expires_at=None, **common,
    ):  # fmt: skip
        log.warning("scan job %s: worker lost again; failed", job_id)
        return "failed"
    if stale.update(
        state=ScanState.QUEUED, reason="its worker stopped mid-scan; queued again", lease_expires_at=_queued_lease(now),
        **common,
    ):  # fmt: skip
        log.warning("scan job %s: worker lost; queued again", job_id)
        return "requeued"
    return ""


@dataclass
class Reaped:
    requeued: list[int] = field(default_factory=list)  # running jobs whose worker died
    failed: list[int] = field(default_factory=list)  # ... once too often
    resent: list[int] = field(default_factory=list)  # queued jobs whose message got lost

    def to_send(self) -> list[int]:
        return self.requeued + self.resent


def reap_stale_jobs(now: datetime | None = None) -> Reaped:
    """Jobs whose lease expired: running ones go back to the queue (or fail), queued ones are sent again.

    The caller sends a message for each job of `to_send()`. A duplicate
    message is harmless: only one worker can claim a queued job.
    """
    now = now or timezone.now()
    reaped = Reaped()
    for job_id in ScanJob.objects.filter(_stale_running(now)).values_list("id", flat=True):
        outcome = reap_job(job_id, now)
        if outcome == "requeued":
            reaped.requeued.append(job_id)
        elif outcome == "failed":
            reaped.failed.append(job_id)
    for job_id in ScanJob.objects.filter(_stale_queued(now)).values_list("id", flat=True):
        # A webhook's enqueue that failed after its commit, a broker that lost its data: send it again.
        if ScanJob.objects.filter(_stale_queued(now), id=job_id).update(lease_expires_at=_queued_lease(now)):
            reaped.resent.append(job_id)
    return reaped


def defer(job_id: int) -> None:
    """The job's message goes round again (its registry is busy): keep the reaper from sending another."""
    ScanJob.objects.filter(id=job_id, state=ScanState.QUEUED).update(lease_expires_at=_queued_lease())


class Heartbeat:
    """Renews a running job's lease (and its registry slot) from a thread while the scan works.

    When the worker dies the renewals stop, the lease runs out and the reaper
    takes the job back. `lost` says the lease was taken over meanwhile.
    """

    def __init__(self, job_id: int, owner: str, slot: Slot | None) -> None:
        self.job_id, self.owner, self.slot = job_id, owner, slot
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = settings.VIGIL_SCAN_LEASE_SECONDS / 3
        try:
            while not self._stop.wait(interval):
                if not self._beat():
                    return
        finally:
            connection.close()  # this thread's own connection

    def _beat(self) -> bool:
        try:
            renewed = ScanJob.objects.filter(id=self.job_id, state=ScanState.RUNNING, lease_owner=self.owner).update(
                lease_expires_at=_running_lease()
            )
        except DatabaseError as exc:
            log.warning("scan job %s: lease not renewed (%s)", self.job_id, exc)
            return True
        if not renewed:
            log.warning("scan job %s: the lease was taken over; this worker's results will be dropped", self.job_id)
            self.lost = True
            return False
        if self.slot is not None:
            try:
                self.slot.renew()
            except Exception as exc:  # noqa: BLE001 - the slot expires on its own; the scan goes on
                log.warning("scan job %s: registry slot not renewed (%s)", self.job_id, exc)
        return True


# -- running a scan -----------------------------------------------------------------------------


def claim(job_id: int, owner: str) -> ScanJob | None:
    """Move a queued job to running under `owner`'s lease, atomically; None when another worker has it."""
    now = timezone.now()
    claimed = ScanJob.objects.filter(id=job_id, state=ScanState.QUEUED).update(
        state=ScanState.RUNNING,
        started_at=now,
        finished_at=None,
        attempts=F("attempts") + 1,
        lease_owner=owner,
        lease_expires_at=_running_lease(now),
    )
    if not claimed:
        return None
    return ScanJob.objects.select_related("image", "repository__registry").get(id=job_id)


def run_scan(job_id: int, *, credentials: Credentials | None = None) -> None:
    """Analyse the job's image and store its inventory; fail the job with a reason if it cannot be.

    `credentials`, when given, are this scan's own (a Harbor scan request's) and replace the registry's.

    Raises RegistryBusy (nothing claimed: send the job again later) and
    RetryLater (the job is queued again: retry with backoff).
    """
    # A message for a job whose worker died (redelivered by the broker) may come before the reaper.
    reap_job(job_id)
    job = ScanJob.objects.select_related("repository__registry").filter(id=job_id).first()
    if job is None or job.state != ScanState.QUEUED:
        log.info("scan job %s is not queued; nothing to do", job_id)
        return
    owner = new_lease_owner()
    with registry_slot(job.repository.registry if job.repository else None, owner) as slot:
        claimed = claim(job_id, owner)
        if claimed is None:
            log.info("scan job %s was claimed by another worker", job_id)
            return
        with Heartbeat(job_id, owner, slot):
            _run_claimed(claimed, owner, credentials)


def _run_claimed(job: ScanJob, owner: str, credentials: Credentials | None = None) -> None:
    try:
        analysis = analyze_job(job, credentials=credentials)
    except RegistryError as exc:
        if exc.retryable:
            ScanJob.objects.filter(id=job.id, lease_owner=owner).update(
                state=ScanState.QUEUED, reason=str(exc), lease_owner="", lease_expires_at=_queued_lease()
            )
            raise RetryLater(str(exc)) from exc
        fail_job(job.id, str(exc), ScanFailure.REGISTRY, owner=owner)
        return
    except (ScanTimeout, SoftTimeLimitExceeded):
        size = f"{job.image_size / (1 << 30):.2f} GiB" if job.image_size is not None else "of unknown size"
        fail_job(job.id, f"the analysis took longer than its {job.time_limit} s limit (image {size})",
                 ScanFailure.TIMEOUT, owner=owner)  # fmt: skip
        return
    except AnalysisError as exc:
        fail_job(job.id, str(exc), ScanFailure.IMAGE, owner=owner)
        return
    except Exception:
        log.exception("scan job %s failed unexpectedly", job.id)
        fail_job(job.id, "internal error while analysing the image (details in the worker log)",
                 ScanFailure.INTERNAL, owner=owner)  # fmt: skip
        return
    try:
        store_results(job, owner, analysis)
    except Exception:
        log.exception("scan job %s: storing or matching failed", job.id)
        fail_job(job.id, "internal error while matching the inventory (details in the worker log)",
                 ScanFailure.INTERNAL, owner=owner)  # fmt: skip


def store_results(job: ScanJob, owner: str, analysis: Analysis) -> bool:
    """Store the inventory and findings and finish the job, if `owner` still holds its lease.

    The row lock keeps the reaper out until the job is done. A worker that
    lost its lease (it stalled; another worker took over) writes nothing, so
    a scan completes once. Both stores replace, never append.
    """
    with transaction.atomic():
        mine = ScanJob.objects.select_for_update().filter(id=job.id, state=ScanState.RUNNING, lease_owner=owner)
        if not mine.exists():
            log.warning("scan job %s: lease lost to another worker; results dropped", job.id)
            return False
        store_analysis(job.image, analysis)
        # Findings come from the inventory just stored and the advisory database as it is now.
        store_report(job, match_analysis(analysis))
        mine.update(state=ScanState.DONE, reason="", failure="", finished_at=timezone.now(), lease_owner="",
                    lease_expires_at=None)  # fmt: skip
    return True


def fail_job(job_id: int, reason: str, failure: str = ScanFailure.INTERNAL, *, owner: str | None = None) -> None:
    """Fail the job with a reason for people; with `owner`, only while that worker holds its lease."""
    jobs = ScanJob.objects.filter(id=job_id).exclude(state=ScanState.DONE)
    if owner is not None:
        jobs = jobs.filter(lease_owner=owner)
    jobs.update(
        state=ScanState.FAILED, reason=reason, failure=failure, finished_at=timezone.now(), lease_owner="",
        lease_expires_at=None,
    )  # fmt: skip


def limits() -> Limits:
    return Limits(**settings.VIGIL_LIMITS)


def compressed_size(client: RegistryClient, repository: str, digest: str, platform: Platform) -> int:
    """Bytes to download for `platform`: the config and layers the manifest lists."""
    raw, media_type, _ = client.get_manifest(repository, digest)
    if media_type in manifests.INDEX_TYPES:
        chosen = manifests.select_platform(manifests.parse_index(raw), platform)
        raw, media_type, _ = client.get_manifest(repository, chosen.digest)
    manifest = manifests.parse_manifest(raw, media_type)
    return manifest.config.size + sum(layer.size for layer in manifest.layers)


def time_limit_for(size: int) -> int:
    """Seconds a scan of an image of `size` compressed bytes may take: base + per GiB, capped by the soft limit."""
    wanted = settings.VIGIL_SCAN_TIME_BASE + settings.VIGIL_SCAN_TIME_PER_GB * size / (1 << 30)
    return max(1, min(math.ceil(wanted), settings.CELERY_TASK_SOFT_TIME_LIMIT))


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ScanTimeout in this thread after `seconds`.

    A timer signal, as Celery's own soft limit uses, so that it works in any
    pool where tasks run in a process's main thread (prefork, solo) and in
    eager mode; elsewhere the Celery time limits stay the only bound.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise ScanTimeout

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def analyze_job(job: ScanJob, *, credentials: Credentials | None = None) -> Analysis:
    if job.repository is None:
        raise AnalysisError("the job names no repository to fetch the image from")
    registry = job.repository.registry
    try:
        # The password property decrypts: a key changed since it was stored raises ValueError too.
        if credentials is None:
            credentials = Credentials(registry.username, registry.password) if registry.username else None
        client = RegistryClient(registry.url, credentials=credentials, insecure=registry.insecure)
    except ValueError as exc:
        raise AnalysisError(f"registry {registry.name}: {exc}") from None
    platform = Platform.parse(settings.VIGIL_PLATFORM)
    job.image_size = compressed_size(client, job.repository.name, job.image.digest, platform)
    job.time_limit = time_limit_for(job.image_size)
    ScanJob.objects.filter(id=job.id).update(image_size=job.image_size, time_limit=job.time_limit)
    work_root = Path(settings.VIGIL_WORK_DIR)
    work_root.mkdir(parents=True, exist_ok=True)
    # The timer stops before the work dir is removed: a limit must not leave files behind.
    with tempfile.TemporaryDirectory(prefix=f"job-{job.id}-", dir=work_root) as tmp, time_limit(job.time_limit):
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
            analysis = Analyzer(work, limits=limits()).run(source)
        if settings.VIGIL_TEST_SCAN_DELAY:
            # Test hook (README, "Failure safety"): a slow scan, to kill or time out a worker mid-scan.
            time.sleep(settings.VIGIL_TEST_SCAN_DELAY)
        return analysis


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
