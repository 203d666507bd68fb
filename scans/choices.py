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
    SBOM = "sbom"  # an uploaded SBOM: its digest is the document's


class Severity(models.TextChoices):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"
    UNKNOWN = "UNKNOWN"


SEVERITY_RANK = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1, Severity.UNKNOWN: 0}


class FindingState(models.TextChoices):
    OPEN = "open"
    SUPPRESSED = "suppressed"  # by an ignore file or VEX statement; triage decisions come later
