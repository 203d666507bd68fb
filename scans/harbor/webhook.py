"""Harbor webhooks -> push events, and the endpoint Harbor's webhook policies post to.

Harbor sends PUSH_ARTIFACT in one of two payload formats, chosen per policy:

- Default: `{"type": "PUSH_ARTIFACT", "occur_at", "operator", "event_data": {...}}`;
- CloudEvents (Harbor 2.8+): `{"specversion": "1.0", "type": "harbor.artifact.pushed", ..., "data": {...}}`
  as `application/cloudevents+json` (structured mode; binary mode, the
  attributes in `ce-*` headers and the data as the body, is read too).

Either way the data is `{"resources": [{"digest", "tag", "resource_url"}],
"repository": {"repo_full_name", ...}}`. `resource_url` is never fetched:
the image is pulled from the configured Registry's URL. Harbor authenticates
with the "Auth Header" of the policy, sent as `Authorization: <value>`: the
registry's webhook secret, with or without `Bearer `.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, authentication_classes, parser_classes, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.webhooks import WEBHOOK_SIGNATURE_PARAMETER
from scans.services.scanning import PushEvent
from scans.webhooks.views import _JsonParser, accept_pushes, admit_delivery, registry_for_token

PUSH_TYPES = frozenset({"PUSH_ARTIFACT", "harbor.artifact.pushed"})
CLOUDEVENTS_JSON = "application/cloudevents+json"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)


class PayloadError(ValueError):
    """The body is not a Harbor webhook payload."""


def _event(doc: Any, ce_type: str | None) -> tuple[Any, Any]:
    """(event type, data) of a payload in any of the formats."""
    if ce_type is not None:  # binary-mode CloudEvent: the attributes are headers, the body is the data
        return ce_type, doc
    if isinstance(doc, dict) and "specversion" in doc:
        return doc.get("type"), doc.get("data")
    if isinstance(doc, dict) and "event_data" in doc:
        return doc.get("type"), doc.get("event_data")
    raise PayloadError("the body is not a Harbor webhook payload (Default or CloudEvents format)")


def parse_payload(doc: Any, *, ce_type: str | None = None) -> tuple[list[PushEvent], int]:
    """Push events in a Harbor webhook body, and how many events or resources were skipped."""
    event_type, data = _event(doc, ce_type)
    if not isinstance(event_type, str):
        raise PayloadError("the event has no type")
    if event_type not in PUSH_TYPES:
        return [], 1  # pulls, deletions, scans ...: acknowledged and ignored
    repository = data.get("repository") if isinstance(data, dict) else None
    resources = data.get("resources") if isinstance(data, dict) else None
    if not isinstance(repository, dict) or not isinstance(resources, list):
        raise PayloadError("a push event's data needs `repository` and a list of `resources`")
    name = repository.get("repo_full_name")
    if not (isinstance(name, str) and len(name) <= 255 and _REPOSITORY.match(name)):
        return [], len(resources)
    pushes = [push for push in (_push(name, resource) for resource in resources) if push is not None]
    return pushes, len(resources) - len(pushes)


def _push(repository: str, resource: Any) -> PushEvent | None:
    if not isinstance(resource, dict):
        return None
    digest, tag = resource.get("digest"), resource.get("tag") or ""
    if not (isinstance(digest, str) and _DIGEST.match(digest)) or not isinstance(tag, str):
        return None
    if tag.startswith("sha256:"):
        tag = ""  # pushed by digest: Harbor repeats the digest as the tag
    elif tag and not _TAG.match(tag):
        return None
    # Harbor does not say the media type: "" is taken as a manifest; the pull reads the real one.
    return PushEvent(repository=repository, digest=digest, tag=tag)


def _secret(header: str) -> str:
    """Harbor sends the policy's auth header as it was typed: `Bearer <secret>` or the bare secret."""
    scheme, _, rest = header.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else header.strip()


class _CloudEventsParser(_JsonParser):
    media_type = CLOUDEVENTS_JSON


@extend_schema(
    summary="Receive Harbor webhooks (PUSH_ARTIFACT)",
    description=(
        "Point a Harbor webhook policy (event type Artifact pushed, payload format Default or CloudEvents) here, "
        "with the registry's webhook secret as its Auth Header (`Bearer <secret>` or the bare secret). Pushes to "
        "watched repositories queue a scan; other events are acknowledged and ignored."
    ),
    request={"application/json": dict, CLOUDEVENTS_JSON: dict},
    parameters=[WEBHOOK_SIGNATURE_PARAMETER],
    responses={
        202: inline_serializer(
            "HarborWebhookResult",
            {
                "queued": serializers.IntegerField(),
                "already_known": serializers.IntegerField(),
                "ignored": serializers.IntegerField(),
            },
        ),
        400: OpenApiResponse(description="Not a Harbor webhook payload"),
        403: OpenApiResponse(description="Unknown registry, wrong secret, or missing or wrong signature"),
        429: OpenApiResponse(description="Over the registry's webhook rate; see Retry-After"),
    },
)
@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
@parser_classes([_CloudEventsParser, _JsonParser])
def harbor_webhook(request: Request) -> Response:
    # As for Distribution: size, secret, rate per registry, and a signature when sent or required.
    admitted = admit_delivery(request, lambda header: registry_for_token(_secret(header)))
    if isinstance(admitted, Response):
        return admitted
    try:
        binary = "HTTP_CE_SPECVERSION" in request.META  # a binary-mode CloudEvent
        pushes, skipped = parse_payload(request.data, ce_type=request.META.get("HTTP_CE_TYPE", "") if binary else None)
    except PayloadError as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    return accept_pushes(admitted, pushes, skipped)
