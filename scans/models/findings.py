from django.db import models

from scans.choices import FindingState, Severity


class Finding(models.Model):
    """One vulnerability in one package of one scan; aliases are merged into one row.

    Package fields are copied, not only linked: a later analysis of the same
    image replaces its Package rows, and a scan's findings must still say
    what they were about.
    """

    scan = models.ForeignKey("scans.ScanJob", on_delete=models.CASCADE, related_name="findings")
    image = models.ForeignKey("scans.Image", on_delete=models.CASCADE, related_name="findings")
    package = models.ForeignKey("scans.Package", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    vulnerability_id = models.CharField(max_length=200, db_index=True)
    aliases = models.JSONField(default=list, blank=True)
    # " ID ALIAS ALIAS " for lookup by any id on every database (JSON `contains` is not portable).
    ids_text = models.TextField(blank=True, editable=False)
    package_type = models.CharField(max_length=32)
    package_name = models.CharField(max_length=255, db_index=True)
    package_version = models.CharField(max_length=255)
    purl = models.CharField(max_length=1024)
    path = models.CharField(max_length=1024, blank=True)
    layer_digest = models.CharField(max_length=71, blank=True)
    layer_index = models.IntegerField(null=True, blank=True)
    fix_state = models.CharField(max_length=16)
    fixed_versions = models.JSONField(default=list, blank=True)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.UNKNOWN)
    severity_rank = models.PositiveSmallIntegerField(default=0, help_text="4 critical .. 0 unknown, for ordering")
    severity_source = models.CharField(max_length=40, blank=True)
    cvss_vector = models.CharField(max_length=255, blank=True)
    cvss_score = models.FloatField(null=True, blank=True)
    title = models.TextField(blank=True)
    description = models.TextField(blank=True)
    references = models.JSONField(default=list, blank=True)
    cwes = models.JSONField(default=list, blank=True)
    kev = models.BooleanField(default=False)
    kev_date_added = models.DateField(null=True, blank=True)
    epss_score = models.FloatField(null=True, blank=True)
    epss_percentile = models.FloatField(null=True, blank=True)
    evidence = models.JSONField(default=list, blank=True, help_text="The advisory records and ranges that decided it")
    state = models.CharField(max_length=24, choices=FindingState.choices, default=FindingState.OPEN, db_index=True)
    # The triage decision that set `state`, when one did; `suppression` is what a policy file said.
    decision = models.ForeignKey(
        "scans.Decision", on_delete=models.SET_NULL, null=True, blank=True, related_name="findings"
    )
    suppression = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["scan", "-severity_rank", "package_name", "vulnerability_id"]
        indexes = [models.Index(fields=["scan", "severity"]), models.Index(fields=["scan", "package_name"])]

    def __str__(self) -> str:
        return f"{self.vulnerability_id} in {self.package_name} {self.package_version}"

    @property
    def fixable(self) -> bool:
        return bool(self.fixed_versions)
