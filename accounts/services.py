"""Minting and revoking API tokens. Each change is written to the audit log."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.models import PREFIX_LENGTH, TOKEN_PREFIX, ApiToken, Role, token_digest


class TokenError(ValueError):
    """The token cannot be made or revoked as asked."""


def _public(token: ApiToken) -> dict[str, Any]:
    """What the audit log keeps of a token: never its digest."""
    return {
        "user": token.user.get_username(),
        "name": token.name,
        "role": token.role,
        "prefix": token.prefix,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
    }


def create_token(
    user_id: int, role: str, *, name: str = "", expires_in_days: int | None = None, actor: Any = None
) -> tuple[ApiToken, str]:
    """A new token for the user, and its key: the only time the key exists outside the caller's hands."""
    if role not in Role.values:
        raise TokenError(f"unknown role {role!r}; one of {', '.join(Role.values)}")
    if expires_in_days is not None and expires_in_days < 1:
        raise TokenError("--expires-in-days must be at least 1")
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not user.is_active:
        raise TokenError("no such active user")
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            role=role,
            prefix=key[:PREFIX_LENGTH],
            digest=token_digest(key),
            expires_at=expires_at,
        )
        audit.record(actor, "token.created", token, None, _public(token))
    return token, key


def revoke_token(token_id: int, *, actor: Any = None) -> ApiToken:
    """Revoke the token from now on; revoking it again changes nothing."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().select_related("user").get(pk=token_id)
        if token.revoked_at is not None:
            return token
        before = _public(token)
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(actor, "token.revoked", token, before, _public(token))
    return token
