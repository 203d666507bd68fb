from django.db import transaction
from django.db.models import Count, Prefetch, QuerySet
from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import CanSubmitScans, IsAdmin
from accounts.throttles import ScanSubmissionThrottle
from scans.api.filters import FindingFilter, ImageFilter, ScanJobFilter
from scans.api.parsers import RawDocumentParser
from scans.api.renderers import (
    REPORT_FORMATS,
    REPORT_RENDERERS,
    CycloneDXRenderer,
    ReportNegotiation,
    SbomNegotiation,
    SpdxRenderer,
    VigilJsonRenderer,
)
from scans.api.serializers import (
    DiffSerializer,
    FindingSerializer,
    ImageSerializer,
    QueueSerializer,
    RegistrySerializer,
    RepositorySerializer,
    ScanJobSerializer,
    ScanRequestSerializer,
)
from scans.choices import FindingState, ScanState
from scans.engine.findings import SEVERITIES
from scans.engine.policy import gate
from scans.models import Finding, Image, Registry, Repository, ScanJob, Tag
from scans.services import scanning
from scans.services.backpressure import queue_overview
from scans.services.findings import diff_scans, latest_scan, report_from_scan
from scans.services.inventory import analysis_from_image
from scans.services.sboms import scan_sbom
from scans.tasks import analyze_image

SBOM_RENDERERS = [VigilJsonRenderer, CycloneDXRenderer, SpdxRenderer]


REPORT_PARAMETERS = [
    OpenApiParameter("severity", str, description="Comma-separated severities: CRITICAL,HIGH,MEDIUM,LOW,UNKNOWN"),
    OpenApiParameter("fixable", bool, description="Only findings with (true) or without (false) a fixed version"),
    OpenApiParameter("kev", bool, description="Only findings in (or not in) CISA's KEV catalog"),
    OpenApiParameter("package", str, description="Package name"),
    OpenApiParameter("id", str, description="Any id of the vulnerability (CVE, GHSA, ...)"),
    OpenApiParameter("state", str, enum=FindingState.values),
    OpenApiParameter(
        "format", str, enum=["json", *REPORT_FORMATS], description="json (default, paginated) or a report"
    ),
]


VERDICT_PARAMETERS = [
    OpenApiParameter("severity", str, description="Severities that fail the gate, e.g. HIGH,CRITICAL"),
    OpenApiParameter("ignore_unfixed", bool, description="Unfixed findings do not fail the gate"),
]


def verdict(job: ScanJob, params: QueryDict) -> dict[str, object]:
    """The CI gate's answer for a finished scan, as `manage.py scan --severity … --exit-code 1` gives it."""
    severities = {s.strip().upper() for s in params.get("severity", "").split(",") if s.strip()}
    unknown = severities - set(SEVERITIES)
    if unknown:
        raise ValidationError({"severity": [f"unknown severity {', '.join(sorted(unknown))}"]})
    ignore_unfixed = params.get("ignore_unfixed", "").lower() in ("1", "true", "yes")
    failing = gate(report_from_scan(job), severities=severities, ignore_unfixed=ignore_unfixed)
    return {
        "passed": not failing,
        "failing": len(failing),
        "failing_ids": sorted({f.id for f in failing}),
        "severity": sorted(severities),
        "ignore_unfixed": ignore_unfixed,
    }


def severity_summary(rows: QuerySet[Finding]) -> dict[str, int]:
    counts = dict(rows.values_list("severity").annotate(n=Count("id")).order_by())
    summary = {severity: counts.get(severity, 0) for severity in SEVERITIES}
    summary["total"] = sum(counts.values())
    return summary


class RegistryViewSet(viewsets.ModelViewSet):
    queryset = Registry.objects.order_by("name")
    serializer_class = RegistrySerializer
    permission_classes = [IsAdmin]


class RepositoryViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Repository.objects.select_related("registry").order_by("registry__name", "name")
    serializer_class = RepositorySerializer


class ScanJobViewSet(viewsets.ReadOnlyModelViewSet):
    """Scan jobs; POST an image reference to scan it, then poll the job for its state and verdict."""

    queryset = ScanJob.objects.select_related("image")
    serializer_class = ScanJobSerializer
    filterset_class = ScanJobFilter
    permission_classes = [CanSubmitScans]
    throttle_classes = [ScanSubmissionThrottle]

    @extend_schema(request=ScanRequestSerializer, responses={202: ScanJobSerializer, 200: ScanJobSerializer})
    def create(self, request: Request) -> Response:
        body = ScanRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            job, created = scanning.request_scan(body.validated_data["image"], force=body.validated_data["force"])
        except scanning.ScanRequestError as exc:
            raise ValidationError({"image": [str(exc)]}) from None
        if created:
            transaction.on_commit(lambda: analyze_image.delay(job.id))
        return Response(ScanJobSerializer(job).data, status=202 if created else 200)

    @extend_schema(
        summary="Scan a failed job's image again (forced: a poison image is retried only this way)",
        request=None,
        responses={
            202: ScanJobSerializer,
            200: OpenApiResponse(ScanJobSerializer, description="A scan of the image is queued or running already"),
            409: OpenApiResponse(description="The job has not failed, or names no repository"),
        },
        filters=False,
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        try:
            new, created = scanning.retry_job(job.id)
        except scanning.ScanRequestError as exc:
            return Response({"detail": str(exc)}, status=409)
        if created:
            transaction.on_commit(lambda: analyze_image.delay(new.id))
        return Response(ScanJobSerializer(new).data, status=202 if created else 200)

    @extend_schema(parameters=VERDICT_PARAMETERS, responses=ScanJobSerializer)
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        data = ScanJobSerializer(job).data
        if job.state == ScanState.DONE and job.matched_at is not None:
            data["summary"] = severity_summary(job.findings.all())
            if "severity" in request.query_params:
                data["verdict"] = verdict(job, request.query_params)
        return Response(data)


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

    @extend_schema(
        summary="The image's vulnerability report (its latest scan), filtered, with a summary by severity",
        parameters=REPORT_PARAMETERS,
        responses={200: FindingSerializer(many=True)},
        filters=False,
    )
    @action(
        detail=True,
        renderer_classes=[JSONRenderer, *REPORT_RENDERERS],
        content_negotiation_class=ReportNegotiation,
        filter_backends=[],
    )
    def report(self, request: Request, digest: str | None = None) -> Response:
        image = self.get_object()
        scan = latest_scan(image)
        if scan is None:
            raise NotFound(f"{image.digest} has no completed scan yet")
        rows = FindingFilter(request.query_params, queryset=scan.findings.all()).qs
        if request.accepted_renderer.format != "json":
            return Response(report_from_scan(scan, list(rows)))
        page = self.paginate_queryset(rows)
        response = self.get_paginated_response(FindingSerializer(page, many=True).data)
        response.data["summary"] = severity_summary(rows)
        response.data["scan"] = {"id": scan.id, "finished_at": scan.finished_at, "matched_at": scan.matched_at,
                                 "unsupported": scan.unsupported, "database": scan.database}  # fmt: skip
        return response


class RepositoryDiffView(APIView):
    """New and resolved findings between two images of a repository (tags or digests)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("from", str, required=True, description="Tag or digest of the older image"),
            OpenApiParameter("to", str, required=True, description="Tag or digest of the newer image"),
            OpenApiParameter("registry", str, description="Registry name, when several hold this repository"),
        ],
        responses=DiffSerializer,
    )
    def get(self, request: Request, name: str) -> Response:
        repositories = Repository.objects.filter(name=name)
        if request.query_params.get("registry"):
            repositories = repositories.filter(registry__name=request.query_params["registry"])
        repository = repositories.first()
        if repository is None:
            raise NotFound(f"no repository {name!r}")
        scans = {}
        for side in ("from", "to"):
            value = request.query_params.get(side, "")
            if not value:
                raise ValidationError({side: ["give a tag or a digest"]})
            image = _image_in(repository, value)
            scan = latest_scan(image) if image else None
            if scan is None:
                raise NotFound(f"{name}: no scanned image for {side}={value}")
            scans[side] = scan
        buckets = diff_scans(scans["from"], scans["to"])
        return Response(
            DiffSerializer(
                {
                    "repository": repository.name,
                    "from_image": scans["from"].image.digest,
                    "to_image": scans["to"].image.digest,
                    "new": buckets["new"],
                    "resolved": buckets["resolved"],
                    "unchanged": len(buckets["unchanged"]),
                }
            ).data
        )


def _image_in(repository: Repository, value: str) -> Image | None:
    if value.startswith("sha256:"):
        return Image.objects.filter(digest=value).first()
    tag = repository.tags.select_related("image").filter(name=value).first()
    return tag.image if tag else None


class SbomUploadView(APIView):
    """Scan an existing SBOM: its packages are matched like an image's."""

    parser_classes = [RawDocumentParser]
    permission_classes = [CanSubmitScans]
    throttle_classes = [ScanSubmissionThrottle]

    @extend_schema(
        request={
            "application/vnd.cyclonedx+json": OpenApiTypes.OBJECT,
            "application/spdx+json": OpenApiTypes.OBJECT,
            "application/json": OpenApiTypes.OBJECT,
        },  # fmt: skip
        responses={201: ScanJobSerializer},
    )
    def post(self, request: Request) -> Response:
        # DRF gives an empty QueryDict, not bytes, when there is no body to parse.
        if not isinstance(request.data, bytes) or not request.data:
            raise ValidationError({"sbom": ["send the SBOM document as the request body"]})
        try:
            job = scan_sbom(request.data)
        except ValueError as exc:
            raise ValidationError({"sbom": [str(exc)]}) from None
        data = ScanJobSerializer(job).data
        data["summary"] = severity_summary(job.findings.all())
        data["report"] = f"/api/v1/images/{job.image.digest}/report"
        return Response(data, status=201)


class QueueView(APIView):
    """The scan backlog: jobs by state per registry, concurrency slots, and the broker's queue lengths."""

    @extend_schema(responses=QueueSerializer)
    def get(self, request: Request) -> Response:
        return Response(QueueSerializer(queue_overview()).data)
