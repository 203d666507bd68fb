from urllib.parse import urlsplit

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scans.models import Finding, Image, ImageLayer, Package, Registry, Repository, ScanJob


class RegistrySerializer(serializers.ModelSerializer):
    password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, style={"input_type": "password"}
    )
    webhook_secret = serializers.CharField(write_only=True, required=False, allow_blank=True, min_length=16)
    repositories = serializers.ListField(child=serializers.CharField(max_length=255), required=False)

    class Meta:
        model = Registry
        fields = ["id", "name", "url", "username", "password", "webhook_secret", "repositories", "created_at"]

    def validate_url(self, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query:
            raise serializers.ValidationError("give the registry's base URL: http(s)://host[:port]")
        return f"{parts.scheme}://{parts.netloc}"

    def _apply_secrets(self, registry: Registry, validated: dict) -> None:  # type: ignore[type-arg]
        if "password" in validated:
            registry.password = validated.pop("password")
        if "webhook_secret" in validated:
            registry.webhook_secret = validated.pop("webhook_secret")

    def create(self, validated_data: dict) -> Registry:  # type: ignore[type-arg]
        registry = Registry(**{k: v for k, v in validated_data.items() if k not in ("password", "webhook_secret")})
        self._apply_secrets(registry, validated_data)
        registry.save()
        return registry

    def update(self, instance: Registry, validated_data: dict) -> Registry:  # type: ignore[type-arg]
        self._apply_secrets(instance, validated_data)
        return super().update(instance, validated_data)


class RepositorySerializer(serializers.ModelSerializer):
    registry = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Repository
        fields = ["id", "registry", "name", "created_at"]


class ScanJobSerializer(serializers.ModelSerializer):
    image = serializers.SlugRelatedField(slug_field="digest", read_only=True)

    class Meta:
        model = ScanJob
        fields = [
            "id", "image", "reference", "state", "reason", "failure", "attempts", "lost_workers", "image_size",
            "time_limit", "lease_expires_at", "created_at", "started_at", "finished_at",
        ]  # fmt: skip


class TagSerializer(serializers.Serializer):
    registry = serializers.CharField(source="repository.registry.name")
    repository = serializers.CharField(source="repository.name")
    name = serializers.CharField()
    updated_at = serializers.DateTimeField()


class ImageSerializer(serializers.ModelSerializer):
    tags = TagSerializer(many=True, read_only=True)
    scan_state = serializers.SerializerMethodField()
    package_count = serializers.IntegerField(read_only=True)
    os = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = [
            "digest",
            "kind",
            "media_type",
            "manifest_digest",
            "config_digest",
            "platform",
            "os",
            "tags",
            "scan_state",
            "package_count",
            "analyzed_at",
            "first_seen",
            "warnings",
        ]

    def get_scan_state(self, image: Image) -> str | None:
        jobs = list(image.scan_jobs.all())  # prefetched, newest first
        return jobs[0].state if jobs else None

    def get_os(self, image: Image) -> dict[str, str] | None:
        if not image.os_id:
            return None
        return {
            "id": image.os_id,
            "version": image.os_version,
            "codename": image.os_codename,
            "name": image.os_pretty_name,
            "variant": image.os_variant,
        }


class LayerSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImageLayer
        fields = ["index", "digest", "diff_id", "media_type", "size"]


class PackageSerializer(serializers.ModelSerializer):
    layer = LayerSerializer(read_only=True)

    class Meta:
        model = Package
        fields = [
            "type",
            "name",
            "version",
            "arch",
            "epoch",
            "release",
            "source_name",
            "source_version",
            "modularity_label",
            "licenses",
            "purl",
            "path",
            "layer",
        ]


class FindingSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="vulnerability_id")
    package = serializers.SerializerMethodField()
    layer = serializers.SerializerMethodField()
    kev = serializers.SerializerMethodField()
    epss = serializers.SerializerMethodField()
    cvss = serializers.SerializerMethodField()

    class Meta:
        model = Finding
        fields = [
            "id", "aliases", "severity", "severity_source", "cvss", "fix_state", "fixed_versions", "package",
            "layer", "title", "description", "references", "cwes", "kev", "epss", "evidence", "state", "suppression",
        ]  # fmt: skip

    def get_package(self, row: Finding) -> dict[str, str]:
        return {"type": row.package_type, "name": row.package_name, "version": row.package_version,
                "purl": row.purl, "path": row.path}  # fmt: skip

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_layer(self, row: Finding) -> dict[str, object] | None:
        return {"index": row.layer_index, "digest": row.layer_digest} if row.layer_digest else None

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_kev(self, row: Finding) -> dict[str, object] | None:
        return {"date_added": row.kev_date_added} if row.kev else None

    def get_epss(self, row: Finding) -> dict[str, float] | None:
        if row.epss_score is None:
            return None
        return {"score": row.epss_score, "percentile": row.epss_percentile or 0.0}

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_cvss(self, row: Finding) -> dict[str, object] | None:
        return {"vector": row.cvss_vector, "score": row.cvss_score} if row.cvss_vector else None


class ScanRequestSerializer(serializers.Serializer):
    image = serializers.CharField(help_text="host[:port]/repository:tag or host[:port]/repository@sha256:…")
    force = serializers.BooleanField(default=False, help_text="Scan again even if this digest was scanned")


class DiffSerializer(serializers.Serializer):
    repository = serializers.CharField()
    from_image = serializers.CharField()
    to_image = serializers.CharField()
    new = FindingSerializer(many=True)
    resolved = FindingSerializer(many=True)
    unchanged = serializers.IntegerField(help_text="Findings present in both")


class JobCountsSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()


class RegistryQueueSerializer(serializers.Serializer):
    registry = serializers.CharField()
    jobs = JobCountsSerializer()
    limit = serializers.IntegerField(help_text="Scans pulling from it at once; 0 is no limit")
    running_slots = serializers.IntegerField(allow_null=True, help_text="Slots taken now (null without Redis)")


class QueueSerializer(serializers.Serializer):
    """Scan jobs by state, overall and per registry, and the broker's backlog."""

    jobs = JobCountsSerializer()
    registries = RegistryQueueSerializer(many=True)
    without_registry = JobCountsSerializer(help_text="Uploaded SBOMs and jobs of deleted repositories")
    broker = serializers.DictField(
        child=serializers.IntegerField(), allow_null=True, help_text="Messages waiting per Celery queue (Redis LLEN)"
    )
