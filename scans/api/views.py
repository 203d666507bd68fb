from django.db.models import Count, Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response

from scans.api.filters import ImageFilter, ScanJobFilter
from scans.api.renderers import CycloneDXRenderer, SpdxRenderer, VigilJsonRenderer
from scans.api.serializers import (
    ImageSerializer,
    RegistrySerializer,
    RepositorySerializer,
    ScanJobSerializer,
)
from scans.models import Image, Registry, Repository, ScanJob, Tag
from scans.services.inventory import analysis_from_image

SBOM_RENDERERS = [VigilJsonRenderer, CycloneDXRenderer, SpdxRenderer]


class SbomNegotiation(DefaultContentNegotiation):
    """DRF answers an unknown `?format=` with a bare "Not found."; say which formats exist."""

    def filter_renderers(self, renderers, format):  # type: ignore[no-untyped-def]
        found = [renderer for renderer in renderers if renderer.format == format]
        if not found:
            raise NotFound(f"unknown SBOM format {format!r}; choose json, cyclonedx or spdx")
        return found


class RegistryViewSet(viewsets.ModelViewSet):
    queryset = Registry.objects.order_by("name")
    serializer_class = RegistrySerializer
    permission_classes = [permissions.IsAdminUser]


class RepositoryViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Repository.objects.select_related("registry").order_by("registry__name", "name")
    serializer_class = RepositorySerializer


class ScanJobViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = ScanJob.objects.select_related("image")
    serializer_class = ScanJobSerializer
    filterset_class = ScanJobFilter


class ImageViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = (
        Image.objects.annotate(package_count=Count("packages", distinct=True))
        .prefetch_related(
            Prefetch("tags", queryset=Tag.objects.select_related("repository__registry")),
            Prefetch("scan_jobs", queryset=ScanJob.objects.order_by("-created_at", "-id")),
        )
        .order_by("-first_seen")
    )
    serializer_class = ImageSerializer
    filterset_class = ImageFilter
    lookup_field = "digest"
    lookup_value_regex = r"sha256:[0-9a-f]{64}"

    @extend_schema(
        summary="The image's package inventory (SBOM)",
        parameters=[
            OpenApiParameter(
                "format",
                str,
                enum=["json", "cyclonedx", "spdx"],
                description="json (Vigil's own, default), cyclonedx (CycloneDX 1.6 JSON) or spdx (SPDX 2.3 JSON)",
            )
        ],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "application/vnd.cyclonedx+json"): OpenApiTypes.OBJECT,
            (200, "application/spdx+json"): OpenApiTypes.OBJECT,
        },
        filters=False,
    )
    @action(
        detail=True,
        renderer_classes=SBOM_RENDERERS,
        content_negotiation_class=SbomNegotiation,
        pagination_class=None,
        filterset_class=None,
    )
    def sbom(self, request: Request, digest: str | None = None) -> Response:
        image = Image.objects.get(pk=self.get_object().pk)
        return Response(analysis_from_image(image))
