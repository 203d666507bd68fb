"""The Scanner Adapter API v1.2 endpoints (goharbor/pluggable-scanner-spec), for Harbor to use Vigil as its scanner.

Thin: authenticate, read the request, call scans.harbor.adapter, answer in
the spec's media types. Every error has the spec's body,
`{"error": {"message": ...}}` as `application/vnd.scanner.adapter.error+json`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.permissions import CanSubmitScans
from scans.harbor import adapter
from scans.harbor.auth import ScannerAdapterAuthentication
from scans.harbor.authorization import seal
from scans.harbor.reports import SBOM_MEDIA_TYPES
from scans.harbor.serializers import (
    TYPE_ERROR_CODES,
    AdapterErrorResponseSerializer,
    AdapterMetadataSerializer,
    AdapterScanRequestSerializer,
    AdapterScanResponseSerializer,
    error_codes,
    error_message,
)
from scans.tasks import analyze_image
from scans.webhooks.views import _JsonParser

log = logging.getLogger(__name__)

ERROR_TYPE = "application/vnd.scanner.adapter.error+json; version=1.0"
METADATA_TYPE = "application/vnd.scanner.adapter.metadata+json; version=1.0"
METADATA_TYPE_1_1 = "application/vnd.scanner.adapter.metadata+json; version=1.1"
SCAN_REQUEST_TYPE = "application/vnd.scanner.adapter.scan.request+json"
SCAN_RESPONSE_TYPE = "application/vnd.scanner.adapter.scan.response+json; version=1.0"
# Headers of DRF's own error answers worth keeping (the 401 challenge, a 429's wait).
_KEPT_HEADERS = ("WWW-Authenticate", "Retry-After")


class ScanRequestParser(_JsonParser):
    media_type = SCAN_REQUEST_TYPE


class _SpecMediaTypes(BaseContentNegotiation):
    """The spec's media types carry `version` parameters DRF would not match: each answer names its own type."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response({"error": {"message": message}}, status=status, content_type=ERROR_TYPE, headers=headers)


def _handle(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, adapter.AdapterError):
        return error_response(exc.status, exc.message)
    if isinstance(exc, ValidationError):
        status = 400 if error_codes(exc.detail) & TYPE_ERROR_CODES else 422
        return error_response(status, error_message(exc.detail))
    response = drf_exception_handler(exc, context)
    if response is None:
        log.error("scanner adapter: unexpected error", exc_info=exc)
        return error_response(500, "internal error in the scanner adapter (details in Vigil's log)")
    kept = {name: response[name] for name in _KEPT_HEADERS if name in response}
    return error_response(response.status_code, error_message(response.data), kept)


class AdapterView(APIView):
    authentication_classes = [ScannerAdapterAuthentication]
    # Reading (metadata, reports) is for any authenticated caller; asking for scans needs the scanner role:
    # the adapter key has it, a Basic user has it when staff (accounts.permissions.role_of).
    permission_classes = [CanSubmitScans]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _SpecMediaTypes

    def get_exception_handler(self):  # type: ignore[no-untyped-def]
        return _handle


_ERRORS = {
    (status, ERROR_TYPE): OpenApiResponse(AdapterErrorResponseSerializer, description=description)
    for status, description in [
        (401, "Missing or wrong credentials"),
        (500, "Internal error"),
    ]
}


class MetadataView(AdapterView):
    @extend_schema(
        operation_id="harbor_adapter_metadata",
        tags=["harbor-scanner-adapter"],
        summary="Scanner Adapter API: the scanner's metadata and capabilities",
        responses={
            (200, METADATA_TYPE): AdapterMetadataSerializer,
            (200, METADATA_TYPE_1_1): AdapterMetadataSerializer,
            **_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        accept = request.META.get("HTTP_ACCEPT", "")
        return Response(
            adapter.metadata(), content_type=METADATA_TYPE_1_1 if "version=1.1" in accept else METADATA_TYPE
        )


class ScanView(AdapterView):
    parser_classes = [ScanRequestParser, _JsonParser]

    @extend_schema(
        operation_id="harbor_adapter_scan",
        tags=["harbor-scanner-adapter"],
        summary="Scanner Adapter API: accept a scan request",
        description=(
            "Queues a scan of the artifact in a registry configured in Vigil and answers its id. "
            "`registry.authorization` is used for this scan only: it travels to the worker encrypted in the "
            "task message and is never stored."
        ),
        request={
            f"{SCAN_REQUEST_TYPE}; version=1.0": AdapterScanRequestSerializer,
            "application/json": AdapterScanRequestSerializer,
        },
        responses={
            (202, SCAN_RESPONSE_TYPE): AdapterScanResponseSerializer,
            **{
                (status, ERROR_TYPE): OpenApiResponse(AdapterErrorResponseSerializer, description=description)
                for status, description in [
                    (400, "Not JSON, or values of the wrong JSON type"),
                    (422, "An invalid field (an artifact type Vigil does not scan too), or an unknown registry"),
                ]
            },
            **_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ParseError("the body is not a JSON object")
        body = AdapterScanRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        registry, artifact = body.validated_data["registry"], body.validated_data["artifact"]
        job, created = adapter.accept_scan(
            registry["url"], artifact["repository"], artifact["digest"], artifact.get("tag", ""),
            artifact.get("mime_type", ""),
        )  # fmt: skip
        if created:
            sealed = seal(registry.get("authorization", ""))
            transaction.on_commit(lambda: _enqueue(job.id, sealed))
        return Response({"id": str(job.id)}, status=202, content_type=SCAN_RESPONSE_TYPE)


def _enqueue(job_id: int, sealed_authorization: str) -> None:
    # kwargsrepr keeps even the ciphertext out of worker logs and monitoring.
    analyze_image.apply_async(
        args=(job_id,),
        kwargs={"registry_authorization": sealed_authorization} if sealed_authorization else {},
        kwargsrepr="{'registry_authorization': '<sealed>'}" if sealed_authorization else None,
    )


def _media_type(text: str) -> tuple[str, str]:
    """(type, version) of a media type or range, lowercase."""
    kind, *params = (part.strip() for part in text.split(";"))
    version = ""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "version":
            version = value.strip().strip('"')
    return kind.lower(), version


_KNOWN_REPORTS = {_media_type(t): t for t in adapter.REPORT_TYPES}


def report_type(accept: str) -> str:
    """The report type an Accept header asks for; the native Harbor report for none or `*/*`."""
    ranges = [r for r in (part.strip() for part in accept.split(",")) if r]
    for media_range in ranges or ["*/*"]:
        kind, version = _media_type(media_range)
        if kind == "*/*":
            return adapter.NATIVE_REPORT
        found = _KNOWN_REPORTS.get((kind, version))
        if found:
            return found
    # 406, where the spec says 501: a request Vigil cannot serve is the client's to fix, and gets a 4xx.
    raise adapter.AdapterError(406, f"Vigil produces {', '.join(adapter.REPORT_TYPES)}; not {accept[:200]!r}")


class ScanReportView(AdapterView):
    @extend_schema(
        operation_id="harbor_adapter_scan_report",
        tags=["harbor-scanner-adapter"],
        summary="Scanner Adapter API: the report of a scan request",
        description=(
            "The report in the format the Accept header names (default: the native Harbor report). While the "
            "scan is queued or running: 302 with `Refresh-After` (seconds), which Harbor's client reads."
        ),
        parameters=[
            OpenApiParameter("scan_request_id", str, OpenApiParameter.PATH),
            OpenApiParameter("Accept", str, OpenApiParameter.HEADER, enum=list(adapter.REPORT_TYPES)),
            OpenApiParameter("sbom_media_type", str, enum=list(SBOM_MEDIA_TYPES), description="For SBOM reports"),
        ],
        responses={
            **{(200, media_type): OpenApiTypes.OBJECT for media_type in adapter.REPORT_TYPES},
            302: OpenApiResponse(description="Not ready; ask again after the `Refresh-After` header's seconds"),
            **{
                (status, ERROR_TYPE): OpenApiResponse(AdapterErrorResponseSerializer, description=description)
                for status, description in [
                    (400, "An SBOM asked for without a valid sbom_media_type"),
                    (404, "No such scan request"),
                    (500, "The scan failed (its reason), or nothing was checked (empty advisory database)"),
                    (406, "A report type Vigil does not produce (the spec's 501)"),
                ]
            },
            (401, ERROR_TYPE): _ERRORS[(401, ERROR_TYPE)],
        },
    )
    def get(self, request: Request, scan_request_id: str) -> Response:
        mime_type = report_type(request.META.get("HTTP_ACCEPT", ""))
        document = adapter.report(scan_request_id, mime_type, request.query_params.get("sbom_media_type", ""))
        if document is None:
            return Response(status=302, headers={"Refresh-After": str(adapter.REFRESH_AFTER)})
        return Response(document, content_type=mime_type)
