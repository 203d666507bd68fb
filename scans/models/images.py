from django.db import models

from scans.choices import ImageKind


class Image(models.Model):
    """An image, keyed by the digest it was pushed or loaded as.

    For an index (multi-platform image) `digest` is the index's and
    `manifest_digest` the platform manifest that was analysed.
    """

    digest = models.CharField(max_length=71, unique=True)
    kind = models.CharField(max_length=16, choices=ImageKind.choices, default=ImageKind.MANIFEST)
    media_type = models.CharField(max_length=255, blank=True)
    manifest_digest = models.CharField(max_length=71, blank=True)
    config_digest = models.CharField(max_length=71, blank=True)
    platform = models.CharField(max_length=64, blank=True)
    os_id = models.CharField(max_length=64, blank=True)
    os_version = models.CharField(max_length=64, blank=True)
    os_codename = models.CharField(max_length=64, blank=True)
    os_pretty_name = models.CharField(max_length=255, blank=True)
    os_variant = models.CharField(max_length=32, blank=True)
    image_created = models.CharField(max_length=64, blank=True, help_text="`created` from the image config")
    analyzers = models.JSONField(default=dict, blank=True, help_text="Cataloger name -> version used")
    warnings = models.JSONField(default=list, blank=True)
    analyzed_at = models.DateTimeField(null=True, blank=True)
    first_seen = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.digest


class ImageLayer(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="layers")
    index = models.PositiveIntegerField()
    digest = models.CharField(max_length=71)
    diff_id = models.CharField(max_length=71)
    media_type = models.CharField(max_length=255, blank=True)
    size = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["image", "index"]
        constraints = [models.UniqueConstraint(fields=["image", "index"], name="unique_layer_index")]

    def __str__(self) -> str:
        return f"{self.image.digest}#{self.index}"


class Tag(models.Model):
    """A tag is a moving pointer to an image; TagEvent keeps where it pointed."""

    repository = models.ForeignKey("scans.Repository", on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=128)
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="tags")
    updated_at = models.DateTimeField(auto_now=True)
    # The registry's time of the push that set the tag: a late, older event must not move it back.
    pushed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="unique_tag_per_repository")]

    def __str__(self) -> str:
        return f"{self.repository}:{self.name}"


class TagEvent(models.Model):
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="history")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tag", "-seen_at"]

    def __str__(self) -> str:
        return f"{self.tag} -> {self.image.digest}"
