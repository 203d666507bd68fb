"""Encryption at rest for registry credentials (Fernet, from `cryptography`)."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    key = settings.VIGIL_CREDENTIALS_KEY
    if not key:
        # Development fallback; production sets VIGIL_CREDENTIALS_KEY.
        key = base64.urlsafe_b64encode(hashlib.sha256(settings.SECRET_KEY.encode()).digest()).decode()
    return Fernet(key)


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("stored credential cannot be decrypted with VIGIL_CREDENTIALS_KEY") from None
