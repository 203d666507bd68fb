"""Triage over the API: findings and their triage action, decisions with history and revoke, VEX in and out."""

from __future__ import annotations

import json
from typing import Any

import django_filters
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import CanTriage
from scans.api.filters import FindingFilter
from scans.api.parsers import RawDocumentParser
from scans.api.renderers import SbomNegotiation
from scans.api.serializers import FindingSerializer
from scans.choices import DecisionScope, DecisionState, FindingState, Justification
from scans.engine.policy import PolicyError
from scans.models import Decision, DecisionEvent, Finding, Image, Repository
from scans.services import triage

# --- serializers ------------------------------------------------------------------------------------------


class TriageRequestSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=DecisionState.choices)
    justification = serializers.ChoiceField(
        choices=Justification.choices, required=False, allow_blank=True, default="",
        help_text="Required for not_affected: one of OpenVEX's five",
    )  # fmt: skip
    reason = serializers.CharField(max_length=10_000)
    scope = serializers.ChoiceField(
        choices=DecisionScope.choices, help_text="image, repository (this image's, and its later tags), everywhere"
    )
    expires = serializers.DateField(
        required=False, allow_null=True, default=None, help_text="Required for risk_accepted: its last day"
    )
    match = serializers.ChoiceField(
        choices=[("package", "package"), ("purl", "purl")], default="package",
        help_text="Name the package by type and name (default), or by its purl without version",
    )  # fmt: skip


class DecisionSerializer(serializers.ModelSerializer):
    image = serializers.SlugRelatedField(slug_field="digest", read_only=True)
    repository = serializers.SerializerMethodField()
    owner = serializers.SerializerMethodField()
    revoked_by = serializers.SerializerMethodField()
    active = serializers.BooleanField(read_only=True)

    class Meta:
        model = Decision
        fields = [
            "id", "vulnerability_id", "aliases", "package_type", "package_name", "purl", "scope", "image",
            "repository", "state", "justification", "reason", "expires", "owner", "source", "active",
            "created_at", "updated_at", "expired_at", "revoked_at", "revoked_by",
        ]  # fmt: skip

    def get_repository(self, decision: Decision) -> str | None:
        return str(decision.repository) if decision.repository_id else None

    def get_owner(self, decision: Decision) -> str | None:
        return decision.owner.get_username() if decision.owner_id else None

    def get_revoked_by(self, decision: Decision) -> str | None:
        return decision.revoked_by.get_username() if decision.revoked_by_id else None


class DecisionEventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = DecisionEvent
        fields = ["action", "actor", "at", "before", "after", "note"]

    def get_actor(self, event: DecisionEvent) -> str | None:
        return event.actor.get_username() if event.actor_id else None


class RevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)


class TriagedFindingSerializer(FindingSerializer):
    """A finding with its row id (`finding_id`; `id` is the vulnerability's), image, scan and deciding decision."""

    finding_id = serializers.IntegerField(source="pk", read_only=True)
    image = serializers.SlugRelatedField(slug_field="digest", read_only=True)
    scan = serializers.PrimaryKeyRelatedField(read_only=True)
    decision = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta(FindingSerializer.Meta):
        fields = ["finding_id", "image", "scan", *FindingSerializer.Meta.fields, "decision"]


class TriageResultSerializer(serializers.Serializer):
    decision = DecisionSerializer()
    finding = TriagedFindingSerializer()


class VexImportParamsSerializer(serializers.Serializer):
    """The import's query parameters; CharField refuses NUL characters, which PostgreSQL cannot hold."""

    repository = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)
    registry = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    source = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class VexImportResultSerializer(serializers.Serializer):
    source = serializers.CharField()
    created = serializers.ListField(child=serializers.IntegerField())
    changed = serializers.ListField(child=serializers.IntegerField())
    unchanged = serializers.ListField(child=serializers.IntegerField())
    skipped = serializers.ListField(child=serializers.CharField())
    findings_changed = serializers.IntegerField()


# --- filters ------------------------------------------------------------------------------------------------


class TriageFindingFilter(FindingFilter):
    image = django_filters.CharFilter(field_name="image__digest")
    scan = django_filters.NumberFilter(field_name="scan_id")
    repository = django_filters.CharFilter(method="filter_repository", help_text="Repository name")
    decision = django_filters.NumberFilter(field_name="decision_id")
    state = django_filters.ChoiceFilter(choices=FindingState.choices)

    def filter_repository(self, queryset: QuerySet[Finding], name: str, value: str) -> QuerySet[Finding]:
        return queryset.filter(Q(scan__repository__name=value) | Q(image__tags__repository__name=value)).distinct()


class DecisionFilter(django_filters.FilterSet):
    vulnerability = django_filters.CharFilter(method="filter_vulnerability", help_text="Any id: CVE, GHSA, ...")
    package = django_filters.CharFilter(method="filter_package", help_text="Package name, or part of a purl")
    repository = django_filters.CharFilter(field_name="repository__name")
    image = django_filters.CharFilter(field_name="image__digest")
    active = django_filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull")
    state = django_filters.ChoiceFilter(choices=DecisionState.choices)
    scope = django_filters.ChoiceFilter(choices=DecisionScope.choices)

    class Meta:
        model = Decision
        fields = ["source"]

    def filter_vulnerability(self, queryset: QuerySet[Decision], name: str, value: str) -> QuerySet[Decision]:
        value = value.strip()
        return queryset.filter(Q(vulnerability_id__iexact=value) | Q(aliases__icontains=json.dumps(value)))

    def filter_package(self, queryset: QuerySet[Decision], name: str, value: str) -> QuerySet[Decision]:
        return queryset.filter(Q(package_name=value) | Q(purl__icontains=value))


# --- views --------------------------------------------------------------------------------------------------


class FindingViewSet(viewsets.ReadOnlyModelViewSet):
    """Findings of every scan; POST `{id}/triage` to decide about one."""

    queryset = Finding.objects.select_related("image").order_by("-scan_id", "-severity_rank", "package_name", "id")
    serializer_class = TriagedFindingSerializer
    filterset_class = TriageFindingFilter
    permission_classes = [CanTriage]  # viewers read, triagers decide

    @extend_schema(request=TriageRequestSerializer, responses={201: TriageResultSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def triage(self, request: Request, pk: str | None = None) -> Response:
        finding = self.get_object()
        body = TriageRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            decision = triage.decide(
                finding,
                actor=request.user,
                state=data["state"],
                reason=data["reason"],
                scope=data["scope"],
                justification=data["justification"],
                expires=data["expires"],
                by_purl=data["match"] == "purl",
            )
        except triage.TriageError as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        finding.refresh_from_db()
        return Response(
            {"decision": DecisionSerializer(decision).data, "finding": TriagedFindingSerializer(finding).data},
            status=201,
        )


class DecisionViewSet(viewsets.ReadOnlyModelViewSet):
    """Triage decisions, newest first; each keeps its history. Revoke one to withdraw it."""

    queryset = Decision.objects.select_related("image", "repository__registry", "owner", "revoked_by")
    serializer_class = DecisionSerializer
    filterset_class = DecisionFilter
    permission_classes = [CanTriage]

    @extend_schema(responses=DecisionEventSerializer(many=True), filters=False)
    @action(detail=True, filterset_class=None, pagination_class=None)
    def history(self, request: Request, pk: str | None = None) -> Response:
        decision = self.get_object()
        events = decision.events.select_related("actor")
        return Response(DecisionEventSerializer(events, many=True).data)

    @extend_schema(request=RevokeSerializer, responses=DecisionSerializer)
    @action(detail=True, methods=["post"], filterset_class=None)
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        decision = self.get_object()
        body = RevokeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            triage.revoke(decision, actor=request.user, reason=body.validated_data["reason"])
        except triage.TriageError as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        return Response(DecisionSerializer(self.get_queryset().get(pk=decision.pk)).data)


class _VexRenderer(BaseRenderer):
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if isinstance(data, str):
            return data.encode()
        return json.dumps(data).encode()  # an error body


class OpenVexRenderer(_VexRenderer):
    media_type = "application/json"
    format = "openvex"


class CycloneDXVexRenderer(_VexRenderer):
    media_type = "application/vnd.cyclonedx+json"
    format = "cyclonedx"


class ImageVexView(APIView):
    """The triage decisions about an image (its latest scan) as a VEX document."""

    renderer_classes = [OpenVexRenderer, CycloneDXVexRenderer]
    content_negotiation_class = SbomNegotiation

    @extend_schema(
        summary="The image's triage decisions as OpenVEX 0.2 (default) or CycloneDX 1.6 VEX",
        parameters=[OpenApiParameter("format", str, enum=list(triage.VEX_FORMATS))],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "application/vnd.cyclonedx+json"): OpenApiTypes.OBJECT,
        },
    )
    def get(self, request: Request, digest: str) -> Response:
        image = get_object_or_404(Image, digest=digest)
        try:
            document = triage.image_vex(image, request.accepted_renderer.format)
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        return Response(document)


class VexImportView(APIView):
    """Import a VEX document (OpenVEX or CycloneDX VEX), e.g. a base image vendor's, as decisions."""

    parser_classes = [RawDocumentParser]
    permission_classes = [CanTriage]

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT, "application/vnd.cyclonedx+json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("repository", str, description="Apply in this repository only (default: everywhere)"),
            OpenApiParameter("registry", str, description="The repository's registry, when several hold that name"),
            OpenApiParameter("source", str, description="Who issued the document (default: its author or id)"),
        ],
        responses={201: VexImportResultSerializer},
    )
    def post(self, request: Request) -> Response:
        params = VexImportParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        options = params.validated_data
        repository = self._repository(options["repository"].strip(), options["registry"].strip())
        try:
            text = bytes(request.data).decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError({"vex": ["the document is not UTF-8"]}) from None
        try:
            result = triage.import_vex(
                text, actor=request.user, repository=repository, source=options["source"].strip()
            )
        except PolicyError as exc:
            raise ValidationError({"vex": [str(exc)]}) from None
        return Response(VexImportResultSerializer(result).data, status=201)

    def _repository(self, name: str, registry: str) -> Repository | None:
        if not name:
            return None
        repositories = Repository.objects.filter(name=name)
        if registry:
            repositories = repositories.filter(registry__name=registry)
        found = list(repositories[:2])
        if len(found) != 1:
            problem = "no repository" if not found else "several repositories; give `registry`"
            raise ValidationError({"repository": [f"{name!r}: {problem}"]})
        return found[0]
