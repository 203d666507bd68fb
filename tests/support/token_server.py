"""A token server for docker-registry's `auth.token` mode, for tests.

It implements the issuing side of the distribution token spec (GET with Basic
credentials, POST with a refresh token) well enough for a real registry to
accept its tokens: a JWT signed with ES256 by a self-signed P-256 certificate
that the registry trusts through `rootcertbundle`.

The registry (distribution 2.8) finds the signing key by the JWT `kid`
header, which it compares with libtrust's key id of every public key in the
root bundle. That id is easier to produce than an `x5c` chain, so this server
uses it (see `libtrust_key_id`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

TOKEN_LIFETIME = 300


@dataclass(frozen=True)
class TokenAuthConfig:
    """What docker-registry's `auth.token` section needs."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """libtrust's KeyID: base32 of the first 240 bits of sha256(DER SubjectPublicKeyInfo), in groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _self_signed_cert(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def parse_scope(scope: str) -> dict[str, Any] | None:
    """`repository:team/app:pull,push` -> an access entry; None for other resource types."""
    parts = scope.split(":")
    if len(parts) < 3 or parts[0] != "repository":
        return None
    # A name may carry a registry port, so the actions are after the last colon.
    return {"type": "repository", "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")}


@dataclass
class TokenServer:
    """Issues tokens to the users it knows; `requests` records what it was asked (method, scopes, status)."""

    workdir: Path
    users: Mapping[str, str]
    refresh_tokens: Mapping[str, str] = field(default_factory=dict)  # refresh token -> username
    service: str = "vigil-test-registry"
    issuer: str = "vigil-test-token-issuer"
    requests: list[tuple[str, tuple[str, ...], int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._kid = libtrust_key_id(self._key.public_key())
        cert_path = self.workdir / "token-root.pem"
        cert_path.write_bytes(_self_signed_cert(self._key, self.issuer).public_bytes(serialization.Encoding.PEM))
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="token-server", daemon=True
        )
        self._thread.start()
        port = self._httpd.server_address[1]
        self.config = TokenAuthConfig(f"http://127.0.0.1:{port}/token", self.service, self.issuer, cert_path)

    def issue(self, subject: str, scopes: list[str]) -> str:
        now = int(time.time())
        access = [entry for entry in (parse_scope(s) for s in scopes) if entry is not None]
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "iat": now,
            "nbf": now - 10,
            "exp": now + TOKEN_LIFETIME,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        header = {"typ": "JWT", "alg": "ES256", "kid": self._kid}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        # JWS wants the raw r||s pair, not the DER signature cryptography returns.
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def check_basic(self, header: str) -> str | None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        expected = self.users.get(username)
        return username if expected is not None and secrets.compare_digest(expected, password) else None

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> TokenServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _handler_for(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            subject = server.check_basic(self.headers.get("Authorization", ""))
            self._answer("GET", subject, query.get("scope", []), "token")

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            refresh = form.get("refresh_token", [""])[0]
            subject = server.refresh_tokens.get(refresh) if form.get("grant_type") == ["refresh_token"] else None
            scopes = [s for value in form.get("scope", []) for s in value.split(" ")]
            self._answer("POST", subject, scopes, "access_token")

        def _answer(self, method: str, subject: str | None, scopes: list[str], field_name: str) -> None:
            status = 401 if subject is None else 200
            server.requests.append((method, tuple(scopes), status))
            if subject is None:
                body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}).encode()
            else:
                body = json.dumps({field_name: server.issue(subject, scopes), "expires_in": TOKEN_LIFETIME}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
            """Quiet: pytest shows the registry's log when something fails."""

    return Handler


def start_token_server(
    workdir: Path, *, users: Mapping[str, str], refresh_tokens: Mapping[str, str] | None = None
) -> TokenServer:
    return TokenServer(workdir, users, dict(refresh_tokens or {}))
