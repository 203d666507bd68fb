"""Celery tasks: thin wrappers that take ids and call services."""

import logging
import random

from celery import shared_task
from django.conf import settings

from scans.choices import ScanFailure
from scans.harbor.authorization import unseal
from scans.services import scanning, triage
from scans.services.backpressure import RegistryBusy

log = logging.getLogger(__name__)


# acks_late: a worker that dies mid-scan leaves the message for the broker to hand out again. The
# task is idempotent: the job is claimed atomically, and its results are stored once, by the
# holder of its lease.
@shared_task(name="scans.analyze_image", bind=True, acks_late=True, max_retries=None, queue="scans")
def analyze_image(self, job_id: int, registry_authorization: str = "") -> None:  # type: ignore[no-untyped-def]
    """Analyse one queued scan job.

    `registry_authorization` is a Harbor scan request's one-shot registry authorization, sealed with
    scans.crypto (scans.harbor.authorization): it lives in this task message only, never in the database.
    """
    try:
        credentials = unseal(registry_authorization) if registry_authorization else None
    except ValueError as exc:
        scanning.fail_job(job_id, str(exc), ScanFailure.REGISTRY)
        return
    try:
        scanning.run_scan(job_id, credentials=credentials)
    except RegistryBusy as exc:
        # The registry is fine, only busy: back to the queue, and not counted as a retry.
        scanning.defer(job_id)
        countdown = settings.VIGIL_REGISTRY_BUSY_COUNTDOWN * random.uniform(1, 1.5)  # noqa: S311 - jitter
        log.info("scan job %s: %s; again in %.0f s", job_id, exc, countdown)
        # The sealed authorization goes along: it exists nowhere else.
        analyze_image.apply_async((job_id, registry_authorization), countdown=countdown)
    except scanning.RetryLater as exc:
        retries = self.request.retries
        if retries >= settings.VIGIL_SCAN_MAX_RETRIES:
            scanning.fail_job(job_id, f"{exc} (gave up after {retries} retries)", ScanFailure.REGISTRY)
            return
        raise self.retry(countdown=retry_countdown(retries), exc=exc) from exc


def retry_countdown(retries: int) -> int:
    """Seconds before retry number `retries` + 1: doubling from VIGIL_SCAN_RETRY_BACKOFF, capped."""
    return int(min(settings.VIGIL_SCAN_RETRY_BACKOFF * 2**retries, settings.VIGIL_SCAN_RETRY_BACKOFF_MAX))


@shared_task(name="scans.reap_stale_jobs", queue="default")
def reap_stale_jobs() -> dict[str, list[int]]:
    """Take back jobs whose lease expired (scheduled every minute by a migration; editable in the admin)."""
    reaped = scanning.reap_stale_jobs()
    for job_id in reaped.to_send():
        analyze_image.delay(job_id)
    return {"requeued": reaped.requeued, "failed": reaped.failed, "resent": reaped.resent}


@shared_task(name="scans.expire_risk_acceptances", queue="default")
def expire_risk_acceptances() -> int:
    """Reopen the findings of risk acceptances past their last day (scheduled daily by a migration)."""
    return triage.expire_risk_acceptances()
