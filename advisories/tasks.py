"""Celery tasks for the advisory database (run on the default queue)."""

from celery import shared_task
from django.conf import settings

from advisories.sync import default_locations, sync_feed


@shared_task(name="advisories.sync_feeds")
def sync_feeds() -> dict[str, str]:
    """Sync every configured source from where it is published; each feed succeeds or fails on its own."""
    return {
        location: sync_feed(source, location).state
        for source in settings.VIGIL_ADVISORY_SOURCES
        for location in default_locations(source)
    }
