"""HMAC signatures on webhook deliveries: `X-Vigil-Signature: sha256=<hex>`.

The signature is HMAC-SHA256 of the raw body, keyed with the registry's
webhook secret (the scheme GitHub uses). Neither CNCF Distribution nor
Harbor signs its notifications, so this serves senders that can (CI jobs,
custom relays). The registry is still named by its bearer secret; a good
signature adds that the body is the one the secret's holder sent, and a
registry whose WebhookPolicy requires signatures refuses unsigned bodies.
"""

from __future__ import annotations

import hashlib
import hmac

from drf_spectacular.utils import OpenApiParameter

from accounts.models import WebhookPolicy

SIGNATURE_HEADER = "X-Vigil-Signature"
SIGNATURE_META = "HTTP_X_VIGIL_SIGNATURE"


def sign(secret: str, body: bytes) -> str:
    """The header value a sender puts on `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_problem(registry_id: int, secret: str, body: bytes, header: str | None) -> str | None:
    """Why the delivery must be refused; None when its signature is good, or absent and not required."""
    if header is None:
        if WebhookPolicy.objects.filter(registry_id=registry_id, require_signature=True).exists():
            return f"this registry requires a {SIGNATURE_HEADER} header"
        return None
    # Constant time: how much of the signature matched must not show in the response time.
    if not hmac.compare_digest(sign(secret, body).encode(), header.strip().lower().encode()):
        return f"wrong {SIGNATURE_HEADER}"
    return None


WEBHOOK_SIGNATURE_PARAMETER = OpenApiParameter(
    SIGNATURE_HEADER,
    str,
    OpenApiParameter.HEADER,
    description="Optional `sha256=<hex HMAC-SHA256 of the body keyed with the webhook secret>`; "
    "required when the registry's webhook policy says so.",
)
