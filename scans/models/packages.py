from django.db import models


class Package(models.Model):
    """One installed package of an image, as the engine catalogued it."""

    image = models.ForeignKey("scans.Image", on_delete=models.CASCADE, related_name="packages")
    layer = models.ForeignKey("scans.ImageLayer", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    type = models.CharField(max_length=32)
    name = models.CharField(max_length=255)
    version = models.CharField(max_length=255)
    arch = models.CharField(max_length=32, blank=True)
    epoch = models.IntegerField(null=True, blank=True)
    release = models.CharField(max_length=255, blank=True)
    source_name = models.CharField(max_length=255, blank=True)
    source_version = models.CharField(max_length=255, blank=True)
    modularity_label = models.CharField(max_length=255, blank=True)
    licenses = models.JSONField(default=list, blank=True)
    purl = models.CharField(max_length=1024)
    path = models.CharField(max_length=1024, blank=True, help_text="The file the package was read from")

    class Meta:
        ordering = ["image", "type", "name", "version"]
        indexes = [models.Index(fields=["type", "name"]), models.Index(fields=["purl"])]

    def __str__(self) -> str:
        return self.purl
