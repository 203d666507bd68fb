"""Celery tasks: thin wrappers that take ids and call services."""

from celery import shared_task
from django.conf import settings

from scans.services import scanning


@shared_task(name="scans.analyze_image", bind=True, acks_late=True, max_retries=None)
def analyze_image(self, job_id: int) -> None:  # type: ignore[no-untyped-def]
    """Analyse one queued scan job. Safe to run twice: the job is claimed atomically."""
    try:
        scanning.run_scan(job_id)
    except scanning.RetryLater as exc:
        retries = self.request.retries
        if retries >= settings.VIGIL_SCAN_MAX_RETRIES:
            scanning.fail_job(job_id, f"{exc} (gave up after {retries} retries)")
            return
        raise self.retry(countdown=settings.VIGIL_SCAN_RETRY_BACKOFF * 2**retries, exc=exc) from exc
