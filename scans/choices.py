from django.db import models


class ScanState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


ACTIVE_STATES = (ScanState.QUEUED, ScanState.RUNNING)


class ImageKind(models.TextChoices):
    MANIFEST = "manifest"
    INDEX = "index"
    ARCHIVE = "archive"
