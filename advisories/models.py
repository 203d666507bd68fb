"""The advisory database: OSV concepts, normalised, one feed's rows kept apart from another's.

Every row belongs to the feed that produced it (`feed`), so a sync replaces
exactly its own feed's data, atomically, and one broken feed never touches
another's. KEV and EPSS are keyed by CVE and kept apart from advisories.
"""

from django.db import models


class SyncState(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    UNCHANGED = "unchanged"
    FAILED = "failed"


class FeedSync(models.Model):
    """One run of one feed's sync."""

    feed = models.CharField(max_length=600, db_index=True, help_text="source:location")
    source = models.CharField(max_length=40)
    location = models.CharField(max_length=600, help_text="URL or path the feed was read from")
    state = models.CharField(max_length=16, choices=SyncState.choices, default=SyncState.RUNNING)
    etag = models.CharField(max_length=255, blank=True)
    last_modified = models.CharField(max_length=64, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="seconds")
    added = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    withdrawn = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.feed} {self.state} at {self.started_at:%Y-%m-%d %H:%M}"


class Advisory(models.Model):
    feed = models.CharField(max_length=600)
    source = models.CharField(max_length=40, db_index=True)
    advisory_id = models.CharField(max_length=200, db_index=True)
    summary = models.TextField(blank=True)
    details = models.TextField(blank=True)
    published = models.DateTimeField(null=True, blank=True)
    modified = models.DateTimeField(null=True, blank=True)
    withdrawn = models.DateTimeField(null=True, blank=True)
    references = models.JSONField(default=list, blank=True)
    cwes = models.JSONField(default=list, blank=True)
    raw = models.JSONField(default=dict, blank=True, help_text="The record as published, for evidence")
    content_hash = models.CharField(max_length=64)

    class Meta:
        verbose_name_plural = "advisories"
        constraints = [models.UniqueConstraint(fields=["feed", "advisory_id"], name="unique_advisory_per_feed")]

    def __str__(self) -> str:
        return f"{self.advisory_id} ({self.source})"


class AliasKind(models.TextChoices):
    SELF = "self"  # the advisory's own id
    ALIAS = "alias"  # the same vulnerability under another id
    UPSTREAM = "upstream"  # what a downstream advisory (DLA, USN, ALSA) was issued for: its CVEs
    RELATED = "related"  # related but not the same (an RHSA that fixes this CVE among others)


class Alias(models.Model):
    """Every id an advisory can be looked up by, its own included, with how it relates."""

    advisory = models.ForeignKey(Advisory, on_delete=models.CASCADE, related_name="alias_set")
    alias = models.CharField(max_length=200, db_index=True)
    kind = models.CharField(max_length=16, choices=AliasKind.choices, default=AliasKind.ALIAS)

    class Meta:
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return self.alias


class Affected(models.Model):
    """A package an advisory affects, in one ecosystem and, for distro data, one distro release."""

    advisory = models.ForeignKey(Advisory, on_delete=models.CASCADE, related_name="affected")
    ecosystem = models.CharField(max_length=40)
    distro = models.CharField(max_length=40, blank=True)
    release = models.CharField(max_length=40, blank=True)
    package = models.CharField(max_length=255)
    purl = models.CharField(max_length=512, blank=True)
    ranges = models.JSONField(default=list, blank=True, help_text='[{"type": ..., "events": [[kind, version], ...]}]')
    versions = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, blank=True)
    severity = models.CharField(max_length=40, blank=True, help_text="The distro's urgency or severity")
    module = models.CharField(max_length=100, blank=True)

    class Meta:
        verbose_name_plural = "affected packages"
        indexes = [models.Index(fields=["ecosystem", "distro", "release", "package"])]

    def __str__(self) -> str:
        where = f" {self.distro} {self.release}" if self.distro else ""
        return f"{self.ecosystem}{where}: {self.package}"


class Severity(models.Model):
    advisory = models.ForeignKey(Advisory, on_delete=models.CASCADE, related_name="severities")
    type = models.CharField(max_length=16)
    source = models.CharField(max_length=40)
    vector = models.CharField(max_length=255, blank=True)
    score = models.FloatField(null=True, blank=True)
    rating = models.CharField(max_length=40, blank=True)

    class Meta:
        verbose_name_plural = "severities"

    def __str__(self) -> str:
        return f"{self.type} {self.score or self.rating}"


class Kev(models.Model):
    cve_id = models.CharField(max_length=32, unique=True)
    vendor = models.CharField(max_length=255, blank=True)
    product = models.CharField(max_length=255, blank=True)
    name = models.CharField(max_length=500, blank=True)
    date_added = models.DateField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    known_ransomware = models.BooleanField(default=False)
    required_action = models.TextField(blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        verbose_name = "KEV entry"
        verbose_name_plural = "KEV entries"

    def __str__(self) -> str:
        return self.cve_id


class Epss(models.Model):
    cve_id = models.CharField(max_length=32, unique=True)
    score = models.FloatField()
    percentile = models.FloatField()
    date = models.DateField()
    model_version = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = "EPSS score"
        verbose_name_plural = "EPSS scores"

    def __str__(self) -> str:
        return f"{self.cve_id} {self.score}"
