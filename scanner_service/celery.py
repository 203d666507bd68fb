"""The Celery app: queues `scans` (slow image analysis) and `default`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scanner_service.settings")

app = Celery("scanner_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
