from rest_framework import serializers

from accounts.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", help_text="User name; empty for the system.")
    token = serializers.CharField(source="token_prefix", help_text="Prefix of the API token used, if any.")
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "time", "actor", "token", "action", "object_type", "object_id", "object_repr",
                  "before", "after", "ip"]  # fmt: skip
        read_only_fields = fields
