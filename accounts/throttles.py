"""Rate limits on scan submission and webhooks, counted in the Django cache (Redis in production).

Rates are `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` (settings, from the
environment). A request over the limit gets 429 with Retry-After.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import Throttled
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import ApiToken


class _RateFromSettings(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        # Read per request, not once at import as DRF does, so that a settings override takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class ScanSubmissionThrottle(_RateFromSettings):
    """Scans and SBOMs submitted, per API token (per user for other credentials). Reads are not counted."""

    scope = "scan_submission"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.method in SAFE_METHODS:
            return None
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class RegistryWebhookThrottle(_RateFromSettings):
    """Webhook deliveries per registry; the webhook view applies it once it knows the sender."""

    scope = "webhook"

    def __init__(self, registry_id: int) -> None:
        self.registry_id = registry_id
        super().__init__()

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": f"registry-{self.registry_id}"}


def check_webhook_rate(request: Request, registry_id: int) -> None:
    """Raise Throttled (429, Retry-After) when the registry is over its webhook rate."""
    throttle = RegistryWebhookThrottle(registry_id)
    if not throttle.allow_request(request, None):
        raise Throttled(wait=throttle.wait())
