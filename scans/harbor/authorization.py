"""The registry authorization in a Harbor scan request, for that scan only.

Harbor mints a short-lived robot account (or a registry token) for each
scan and sends it as `registry.authorization`: `Basic base64(name:secret)`,
or `Bearer <token>` when the adapter asks for Bearer. Vigil never writes it
to the database. It reaches the worker inside the Celery task message only,
encrypted with scans.crypto (the broker holds the message until a worker
acknowledges it, so it must not sit there in the clear); the worker decrypts
it into Credentials for the pull and forgets it with the task.
"""

from __future__ import annotations

import base64
import binascii
import re

from scans import crypto
from scans.engine.registry.auth import Credentials

MAX_LENGTH = 16 << 10
# RFC 7235 token68: what a JWT or any opaque bearer token is made of.
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class AuthorizationError(ValueError):
    """The value is not a Basic or Bearer authorization; the message never repeats it."""


def parse_authorization(header: str) -> Credentials | None:
    """Credentials for `Basic <base64 user:password>` or `Bearer <token>`; None for an empty value.

    The spec's own README writes `Bearer: <token>`, so a colon after the
    scheme is tolerated.
    """
    text = header.strip()
    if not text:
        return None
    if len(text) > MAX_LENGTH:
        raise AuthorizationError(f"registry.authorization is longer than {MAX_LENGTH} characters")
    scheme, _, value = text.partition(" ")
    scheme, value = scheme.rstrip(":").lower(), value.strip()
    if scheme == "basic" and value:
        try:
            username, colon, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            username, colon, password = "", "", ""
        if not (username and colon):
            raise AuthorizationError("registry.authorization: the Basic credentials are not base64 of name:password")
        return Credentials(username, password)
    if scheme == "bearer" and _TOKEN68.fullmatch(value):
        return Credentials(registry_token=value)
    raise AuthorizationError("registry.authorization must be `Basic <base64 of name:password>` or `Bearer <token>`")


def seal(header: str) -> str:
    """The authorization encrypted for the task message; '' for none."""
    return crypto.encrypt(header.strip())


def unseal(sealed: str) -> Credentials | None:
    """Credentials from a sealed authorization; ValueError when it cannot be decrypted or read."""
    try:
        header = crypto.decrypt(sealed)
    except ValueError:
        raise ValueError(
            "the registry authorization of this scan request cannot be decrypted (was VIGIL_CREDENTIALS_KEY changed?)"
        ) from None
    return parse_authorization(header)
