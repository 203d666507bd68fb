"""The webhook endpoint: authenticate, keep pushes, queue scans, answer 202."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, authentication_classes, parser_classes, permission_classes
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.throttles import check_webhook_rate
from accounts.webhooks import SIGNATURE_META, WEBHOOK_SIGNATURE_PARAMETER, signature_problem
from scans.models import Registry
from scans.services import scanning
from scans.services.scanning import PushEvent
from scans.tasks import analyze_image
from scans.webhooks.distribution import MEDIA_TYPES, EnvelopeError, parse_envelope

log = logging.getLogger(__name__)


class _JsonParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # The json module nests by recursion: deep brackets in an untrusted body are a 400, not a 500.
            raise ParseError("JSON parse error - nested too deeply") from None


class _EventsV1Parser(_JsonParser):
    media_type = MEDIA_TYPES[0]


class _EventsV2Parser(_JsonParser):
    media_type = MEDIA_TYPES[1]


def registry_for_secret(header: str) -> Registry | None:
    """The registry whose webhook secret is the bearer token in `header`."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return registry_for_token(token)


def registry_for_token(token: str) -> Registry | None:
    """The registry whose webhook secret is `token`."""
    if not token.strip():
        return None
    found = None
    for registry in Registry.objects.exclude(webhook_secret_encrypted=""):
        try:
            secret = registry.webhook_secret
        except ValueError:
            # Encrypted under another VIGIL_CREDENTIALS_KEY: that registry cannot be
            # authenticated, but it must not turn every other registry's webhooks into 500s.
            log.error("registry %s: its webhook secret cannot be decrypted", registry.name)
            continue
        # Compare with every registry, in constant time, so timing tells nothing.
        if hmac.compare_digest(secret.encode(), token.strip().encode()):
            found = registry
    return found


_Result = inline_serializer(
    "WebhookResult",
    {
        "queued": serializers.IntegerField(),
        "already_known": serializers.IntegerField(),
        "ignored": serializers.IntegerField(),
    },
)


@extend_schema(
    summary="Receive CNCF Distribution notifications",
    description=(
        "Point the registry's `notifications.endpoints` here with the header "
        "`Authorization: Bearer <the registry's webhook secret>`. Pushes of manifests and indexes "
        "in watched repositories queue a scan; everything else is acknowledged and ignored."
    ),
    request={m: dict for m in MEDIA_TYPES},
    parameters=[WEBHOOK_SIGNATURE_PARAMETER],
    responses={
        202: _Result,
        400: OpenApiResponse(description="Not a notification envelope"),
        403: OpenApiResponse(description="Unknown registry, wrong secret, or missing or wrong signature"),
        429: OpenApiResponse(description="Over the registry's webhook rate; see Retry-After"),
    },
)
@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
@parser_classes([_EventsV1Parser, _EventsV2Parser, _JsonParser])
def distribution_webhook(request: Request) -> Response:
    admitted = admit_delivery(request, registry_for_secret)
    if isinstance(admitted, Response):
        return admitted
    try:
        pushes, skipped = parse_envelope(request.data)
    except EnvelopeError as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    return accept_pushes(admitted, pushes, skipped)


def admit_delivery(request: Request, registry_for: Callable[[str], Registry | None]) -> Registry | Response:
    """The registry a webhook delivery comes from, or the answer refusing it.

    Checked before the body is parsed: its declared size, the secret in
    `Authorization` (`registry_for` reads the sender's form of it), the
    registry's rate, and a signature when one is sent or the registry's policy wants one.
    """
    length = _content_length(request)
    if length is None:
        return Response({"detail": "invalid Content-Length"}, status=status.HTTP_400_BAD_REQUEST)
    if length > settings.VIGIL_MAX_WEBHOOK_BYTES:
        return Response({"detail": "body too large"}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    registry = registry_for(request.META.get("HTTP_AUTHORIZATION", ""))
    if registry is None:
        log.warning("%s with an unknown secret from %s", request.path, request.META.get("REMOTE_ADDR"))
        return Response({"detail": "unknown registry or wrong secret"}, status=status.HTTP_403_FORBIDDEN)
    check_webhook_rate(request, registry.pk)
    problem = signature_problem(registry.pk, registry.webhook_secret, request.body, request.META.get(SIGNATURE_META))
    if problem:
        return Response({"detail": problem}, status=status.HTTP_403_FORBIDDEN)
    return registry


def accept_pushes(registry: Registry, pushes: list[PushEvent], skipped: int) -> Response:
    queued, known, ignored = record_pushes(registry, pushes)
    return Response(
        {"queued": queued, "already_known": known, "ignored": ignored + skipped}, status=status.HTTP_202_ACCEPTED
    )


def _content_length(request: Request) -> int | None:
    """The declared body size; None when the header is not a non-negative integer."""
    text = request.META.get("CONTENT_LENGTH") or "0"
    return int(text) if text.isascii() and text.isdigit() else None


def record_pushes(registry: Registry, pushes: list[PushEvent]) -> tuple[int, int, int]:
    """Record the pushes of watched repositories and queue their scans after commit: (queued, known, ignored)."""
    queued = known = ignored = 0
    for push in pushes:
        if not registry.watches(push.repository):
            ignored += 1
            continue
        job = scanning.record_push(registry, push)
        if job is None:
            known += 1
            continue
        queued += 1
        transaction.on_commit(lambda job_id=job.id: _enqueue(job_id))
    return queued, known, ignored


def _enqueue(job_id: int) -> None:
    analyze_image.delay(job_id)
