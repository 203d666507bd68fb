from django.db import models
from django.db.models import Q

from scans.choices import ACTIVE_STATES, ScanFailure, ScanState


class ScanJob(models.Model):
    """One analysis of one image: queued -> running -> done | failed."""

    image = models.ForeignKey("scans.Image", on_delete=models.CASCADE, related_name="scan_jobs")
    repository = models.ForeignKey(
        "scans.Repository", on_delete=models.SET_NULL, null=True, blank=True, related_name="scan_jobs"
    )
    reference = models.CharField(max_length=512, help_text="What was fetched: repository@digest")
    state = models.CharField(max_length=16, choices=ScanState.choices, default=ScanState.QUEUED, db_index=True)
    reason = models.TextField(blank=True, help_text="Why the job failed, in words for the user")
    failure = models.CharField(
        max_length=16,
        choices=ScanFailure.choices,
        blank=True,
        help_text="What failed; sticky kinds wait for a forced scan",
    )
    force = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    # The lease: a running job's worker renews it while it works; a queued job's
    # message should have been picked up by then. Past it, the reaper steps in.
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    lease_owner = models.CharField(
        max_length=128, blank=True, help_text="The worker holding the lease (host, pid, token); fences late writes"
    )
    lost_workers = models.PositiveIntegerField(default=0, help_text="How often its worker died mid-scan")
    image_size = models.BigIntegerField(null=True, blank=True, help_text="Compressed size from the manifest, bytes")
    time_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds allowed for this image's size")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    matched_at = models.DateTimeField(null=True, blank=True, help_text="When findings were computed")
    unsupported = models.TextField(blank=True, help_text="Why OS packages could not be checked, if they could not")
    database = models.JSONField(default=dict, blank=True, help_text="The advisory database's state at matching time")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one queued or running job per image: concurrent
            # webhooks for the same digest cannot both enqueue a scan.
            models.UniqueConstraint(
                fields=["image"], condition=Q(state__in=ACTIVE_STATES), name="one_active_scan_per_image"
            )
        ]

    def __str__(self) -> str:
        return f"scan {self.pk} of {self.reference} ({self.state})"

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
