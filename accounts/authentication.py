"""`Authorization: Token <key>` or `Bearer <key>` with a Vigil API token (vgl_…)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts.models import TOKEN_PREFIX, ApiToken, token_digest

KEYWORDS = (b"token", b"bearer")
MAX_KEY_LENGTH = 128
# last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenAuthentication(BaseAuthentication):
    """Vigil's API tokens. Other keys (DRF's own user tokens) are left to the next authenticator."""

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() not in KEYWORDS or not parts[1].startswith(TOKEN_PREFIX.encode()):
            return None
        if len(parts[1]) > MAX_KEY_LENGTH:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.") from None
        token = ApiToken.objects.usable().select_related("user").filter(digest=token_digest(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            # An update, not save(): no signals, and no lost write if the row changed meanwhile.
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return "Token"
