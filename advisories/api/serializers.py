from rest_framework import serializers

from advisories.models import Advisory, Affected, AliasKind, FeedSync, Severity


class SeveritySerializer(serializers.ModelSerializer):
    class Meta:
        model = Severity
        fields = ["type", "source", "vector", "score", "rating"]


class AffectedSerializer(serializers.ModelSerializer):
    class Meta:
        model = Affected
        fields = ["ecosystem", "distro", "release", "package", "purl", "ranges", "versions", "status", "severity",
                  "module"]  # fmt: skip


class AdvisoryRecordSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="advisory_id")
    aliases = serializers.SerializerMethodField()
    upstream = serializers.SerializerMethodField()
    related = serializers.SerializerMethodField()
    severities = SeveritySerializer(many=True)
    affected = AffectedSerializer(many=True)

    class Meta:
        model = Advisory
        fields = ["id", "source", "feed", "aliases", "upstream", "related", "summary", "details", "published",
                  "modified", "withdrawn", "references", "cwes", "severities", "affected"]  # fmt: skip

    @staticmethod
    def _ids(advisory: Advisory, kind: str) -> list[str]:
        return sorted(a.alias for a in advisory.alias_set.all() if a.kind == kind)

    def get_aliases(self, advisory: Advisory) -> list[str]:
        return self._ids(advisory, AliasKind.ALIAS)

    def get_upstream(self, advisory: Advisory) -> list[str]:
        return self._ids(advisory, AliasKind.UPSTREAM)

    def get_related(self, advisory: Advisory) -> list[str]:
        return self._ids(advisory, AliasKind.RELATED)


class KevSerializer(serializers.Serializer):
    date_added = serializers.DateField()
    due_date = serializers.DateField(allow_null=True)
    known_ransomware = serializers.BooleanField()


class EpssSerializer(serializers.Serializer):
    score = serializers.FloatField()
    percentile = serializers.FloatField()
    date = serializers.DateField()


class VulnerabilitySerializer(serializers.Serializer):
    """Everything known under one id: the records of every feed that names it."""

    id = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    kev = KevSerializer(allow_null=True)
    epss = EpssSerializer(allow_null=True)
    records = AdvisoryRecordSerializer(many=True)


class FeedSerializer(serializers.ModelSerializer):
    last_success = serializers.DateTimeField(allow_null=True)
    age_seconds = serializers.FloatField(allow_null=True, help_text="Seconds since the last good sync finished")

    class Meta:
        model = FeedSync
        fields = ["feed", "source", "location", "state", "started_at", "finished_at", "duration", "added", "updated",
                  "unchanged", "removed", "withdrawn", "rejected", "error", "last_success", "age_seconds"]  # fmt: skip
