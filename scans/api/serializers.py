from urllib.parse import urlsplit

from rest_framework import serializers

from scans.models import Image, ImageLayer, Package, Registry, Repository, ScanJob


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
        fields = ["id", "image", "reference", "state", "reason", "attempts", "created_at", "started_at", "finished_at"]


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
