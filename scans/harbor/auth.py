"""How Harbor authenticates to the Scanner Adapter API: the three ways its scanner registration offers.

- `X-ScannerAdapter-API-Key: <key>` or `Authorization: Bearer <key>`, where
  the key is VIGIL_HARBOR_ADAPTER_API_KEY (unset: both are refused);
- `Authorization: Basic <user:password>` of an active Vigil user with a
  usable password; its role is the user's (accounts.permissions.role_of:
  staff users may submit scans, others only read).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, BasicAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

API_KEY_HEADER = "X-ScannerAdapter-API-Key"


class AdapterKeyClient:
    """Who presented the adapter key: Harbor, as configured by an administrator; not a Vigil user."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = None
    username = "harbor-scanner-adapter-key"
    vigil_role = "scanner"  # accounts.permissions: it may submit scans, and read

    def __str__(self) -> str:
        return self.username


def _same(given: str, expected: str) -> bool:
    # Digests first: compare_digest is constant-time only for equal lengths, and the length is a secret too.
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())


class ScannerAdapterAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, str] | None:
        key = request.META.get("HTTP_X_SCANNERADAPTER_API_KEY")
        if key is not None:
            return self._key(key.strip())
        scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if not scheme:
            return None
        if scheme.lower() == "bearer":
            return self._key(value.strip())
        if scheme.lower() == "basic":
            return BasicAuthentication().authenticate(request)  # type: ignore[no-any-return]
        raise AuthenticationFailed(
            f"unsupported authorization scheme {scheme[:20]!r}: use Basic, Bearer or {API_KEY_HEADER}"
        )

    def _key(self, given: str) -> tuple[AdapterKeyClient, str]:
        expected = settings.VIGIL_HARBOR_ADAPTER_API_KEY
        if not expected:
            raise AuthenticationFailed("no adapter API key is configured (VIGIL_HARBOR_ADAPTER_API_KEY); use Basic")
        if not (given and _same(given, expected)):
            raise AuthenticationFailed("invalid adapter API key")
        return AdapterKeyClient(), "api-key"

    def authenticate_header(self, request: Request) -> str:
        # Makes an unauthenticated request a 401 (with this challenge), not a 403.
        return 'Basic realm="Vigil scanner adapter"'


class ScannerAdapterAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[misc]
    target_class = ScannerAdapterAuthentication
    name = ["scannerAdapterBasic", "scannerAdapterBearer", "scannerAdapterApiKey"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        return [{name: []} for name in self.name]  # any one of the three

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return [
            {"type": "http", "scheme": "basic"},
            {"type": "http", "scheme": "bearer", "description": "VIGIL_HARBOR_ADAPTER_API_KEY"},
            {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
        ]
