"""The Celery app: queues `scans` (slow image analysis) and `default` (the rest).

Run one or more workers for each queue (`-Q scans`, `-Q default`, or both)
and one beat (`beat`, django-celery-beat's database scheduler). Beat runs
the advisory sync, the lease reaper (`scans.reap_stale_jobs`, every
minute), which queues again the jobs of workers that died, and the daily
expiry of risk acceptances (`scans.expire_risk_acceptances`).
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scanner_service.settings")

app = Celery("scanner_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("scans"))
app.autodiscover_tasks()
