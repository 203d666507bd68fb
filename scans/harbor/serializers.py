"""The Scanner Adapter API's request, and its answers as far as the OpenAPI schema describes them.

Validation errors carry DRF's codes: `invalid` and `not_a_list` mean a
value of the wrong JSON type (the adapter answers 400), every other code an
invalid field (422), as the spec divides them.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from scans.engine.registry.reference import check_repository, check_tag_or_digest
from scans.harbor.authorization import MAX_LENGTH, AuthorizationError, parse_authorization
from scans.harbor.reports import SBOM_MEDIA_TYPES

TYPE_ERROR_CODES = frozenset({"invalid", "not_a_list", "not_a_dict", "parse_error"})
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class AdapterRegistrySerializer(serializers.Serializer):  # type: ignore[type-arg]
    url = serializers.CharField(max_length=2048, help_text="The registry's base URL; a registry configured in Vigil")
    authorization = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_LENGTH,
        help_text="`Basic <base64 name:password>` or `Bearer <token>`, used for this scan only and never stored",
    )

    def validate_authorization(self, value: str) -> str:
        try:
            parse_authorization(value)
        except AuthorizationError as exc:
            raise serializers.ValidationError(str(exc), code="unreadable") from None
        return value


class AdapterArtifactSerializer(serializers.Serializer):  # type: ignore[type-arg]
    repository = serializers.CharField(max_length=255)
    digest = serializers.CharField(max_length=71)
    tag = serializers.CharField(required=False, allow_blank=True, max_length=128)
    mime_type = serializers.CharField(required=False, allow_blank=True, max_length=255)

    def validate_repository(self, value: str) -> str:
        try:
            return check_repository(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc), code="pattern") from None

    def validate_digest(self, value: str) -> str:
        if not _DIGEST.fullmatch(value):
            raise serializers.ValidationError("a sha256 digest: sha256: and 64 lowercase hex digits", code="pattern")
        return value

    def validate_tag(self, value: str) -> str:
        try:
            return check_tag_or_digest(value) if value and ":" not in value else ""
        except ValueError as exc:
            raise serializers.ValidationError(str(exc), code="pattern") from None


class AdapterSbomParametersSerializer(serializers.Serializer):  # type: ignore[type-arg]
    sbom_media_types = serializers.ListField(child=serializers.ChoiceField(SBOM_MEDIA_TYPES), required=False)


class AdapterEnabledCapabilitySerializer(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.ChoiceField(["vulnerability", "sbom"])
    produces_mime_types = serializers.ListField(child=serializers.CharField(max_length=255), required=False)
    parameters = AdapterSbomParametersSerializer(required=False)


class AdapterScanRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    registry = AdapterRegistrySerializer()
    artifact = AdapterArtifactSerializer()
    enabled_capabilities = serializers.ListField(
        child=AdapterEnabledCapabilitySerializer(), required=False, max_length=10
    )


class AdapterScanResponseSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.CharField(help_text="The scan request id: poll /api/v1/scan/{id}/report with it")


class _AdapterErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    message = serializers.CharField()


class AdapterErrorResponseSerializer(serializers.Serializer):  # type: ignore[type-arg]
    error = _AdapterErrorSerializer()


class _AdapterScannerSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField()
    vendor = serializers.CharField()
    version = serializers.CharField()


class _AdapterCapabilitySerializer(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.ChoiceField(["vulnerability", "sbom"])
    consumes_mime_types = serializers.ListField(child=serializers.CharField())
    produces_mime_types = serializers.ListField(child=serializers.CharField())
    additional_attributes = serializers.DictField(required=False)


class AdapterMetadataSerializer(serializers.Serializer):  # type: ignore[type-arg]
    scanner = _AdapterScannerSerializer()
    capabilities = _AdapterCapabilitySerializer(many=True)
    properties = serializers.DictField(child=serializers.CharField())


def error_codes(detail: Any) -> set[str]:
    """Every code in a DRF error structure."""
    if isinstance(detail, dict):
        return set().union(*(error_codes(v) for v in detail.values()))
    if isinstance(detail, list):
        return set().union(*(error_codes(v) for v in detail))
    return {getattr(detail, "code", "invalid")}


def error_message(detail: Any, prefix: str = "") -> str:
    """A DRF error structure as one line: `artifact.digest: ...; registry.url: ...`."""
    if isinstance(detail, dict):
        parts = [error_message(v, f"{prefix}.{k}" if prefix else str(k)) for k, v in detail.items()]
        return "; ".join(p for p in parts if p)
    if isinstance(detail, list):
        if all(not isinstance(v, dict | list) for v in detail):
            text = " ".join(str(v) for v in detail)
            return f"{prefix}: {text}" if prefix and prefix != "non_field_errors" else text
        return "; ".join(p for p in (error_message(v, f"{prefix}[{i}]") for i, v in enumerate(detail)) if p)
    return f"{prefix}: {detail}" if prefix else str(detail)
