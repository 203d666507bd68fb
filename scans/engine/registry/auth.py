"""Registry authentication: challenges, stored credentials and the token flow.

The token flow follows the distribution token spec
(https://distribution.github.io/distribution/spec/auth/token/): on a 401 with
a Bearer challenge, ask the challenge's realm for a token scoped to the
repository, with Basic credentials (or, for an identity token, an OAuth2
refresh-token POST), and send it as `Authorization: Bearer`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from scans.engine.errors import RegistryError
from scans.engine.registry.reference import DOCKER_HUB_ALIASES

log = logging.getLogger(__name__)

ENV_USERNAME = "VIGIL_REGISTRY_USERNAME"
ENV_PASSWORD = "VIGIL_REGISTRY_PASSWORD"  # noqa: S105 - the variable's name, not a password
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
CLIENT_ID = "vigil"
# The spec's default lifetime when a token server names none.
DEFAULT_TOKEN_LIFETIME = 60
MAX_TOKEN_RESPONSE = 1 << 20


# --- WWW-Authenticate ---------------------------------------------------------
#
# Written here because no maintained library parses RFC 7235 challenges
# fully: requests' parse_dict_header and werkzeug's WWWAuthenticate read a
# single challenge, and the small packages dedicated to it are unmaintained.

# RFC 7230 `token`: one or more tchar.
_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_SCHEME = re.compile(_TCHARS)
_PARAM = re.compile(rf"(?P<name>{_TCHARS})[ \t]*=[ \t]*(?P<value>{_QUOTED}|{_TCHARS})")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))")
_SPACE = re.compile(r"[ \t]*")
_SEPARATORS = re.compile(r"[ \t,]*")
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lowercase: "basic", "bearer"
    params: Mapping[str, str] = field(default_factory=dict)  # names lowercase, values unquoted
    token68: str = ""

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scope(self) -> str:
        return self.params.get("scope", "")


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return _ESCAPE.sub(r"\1", value[1:-1])
    return value


def _skip(pattern: re.Pattern[str], text: str, pos: int) -> int:
    match = pattern.match(text, pos)
    return pos if match is None else match.end()


def _parse_params(header: str, pos: int) -> tuple[dict[str, str], int]:
    """auth-params from `pos` up to the next challenge; returns them and where the next challenge starts."""
    params: dict[str, str] = {}
    while pos < len(header):
        match = _PARAM.match(header, pos)
        if match is None:
            break  # not `name=value`: the next challenge's scheme
        params.setdefault(match["name"].lower(), _unquote(match["value"]))
        pos = _skip(_SPACE, header, match.end())
        if pos < len(header) and header[pos] != ",":
            raise ValueError(f"expected ',' at position {pos} of WWW-Authenticate {header!r}")
        pos = _skip(_SEPARATORS, header, pos)
    return params, pos


def _parse_challenge(header: str, pos: int) -> tuple[Challenge, int]:
    scheme = _SCHEME.match(header, pos)
    if scheme is None:
        raise ValueError(f"expected an auth scheme at position {pos} of WWW-Authenticate {header!r}")
    pos = _skip(_SPACE, header, scheme.end())
    if pos == scheme.end() and pos < len(header) and header[pos] != ",":
        raise ValueError(f"expected a space after scheme {scheme[0]!r} in WWW-Authenticate {header!r}")
    token68 = None if _PARAM.match(header, pos) else _TOKEN68.match(header, pos)
    if token68 is not None:
        return Challenge(scheme[0].lower(), {}, token68[0]), token68.end()
    params, pos = _parse_params(header, pos)
    return Challenge(scheme[0].lower(), params), pos


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a WWW-Authenticate value; raises ValueError if it is malformed."""
    challenges: list[Challenge] = []
    pos = _skip(_SEPARATORS, header, 0)
    while pos < len(header):
        challenge, pos = _parse_challenge(header, pos)
        challenges.append(challenge)
        pos = _skip(_SEPARATORS, header, pos)
    return challenges


# --- Credentials ---------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)  # an OAuth2 refresh token, from `docker login`
    # A registry token someone else obtained (Harbor hands its scanners one): sent as is, never exchanged.
    registry_token: str = field(default="", repr=False)

    def basic_header(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def _auth_keys(host: str) -> list[str]:
    """The config keys docker and containers-image would use for `host`."""
    if host.lower() in DOCKER_HUB_ALIASES:
        return [DOCKER_HUB_AUTH_KEY, "docker.io", "index.docker.io", "registry-1.docker.io"]
    return [host]


def _key_host(key: str) -> str:
    # Docker's ConvertToHostname: drop the scheme and any path.
    for prefix in ("http://", "https://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key.split("/", 1)[0]


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read registry credentials from {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"cannot read registry credentials from {path}: not a JSON object")
    return doc


def _entry_credentials(entry: object, path: Path) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError(f"{path}: an `auth` entry is not base64 of user:password") from None
        if not sep:
            raise ValueError(f"{path}: an `auth` entry is not base64 of user:password")
    identity_token = str(entry.get("identitytoken") or "")
    if not (username or password or identity_token):
        return None  # an empty entry: docker left the secret to credsStore
    return Credentials(username, password, identity_token)


def _find_entry(auths: Mapping[str, Any], host: str, repository: str) -> object:
    keys = _auth_keys(host)
    # containers auth.json may also key on host/namespace; the longest matching one wins.
    namespace_host = "docker.io" if host.lower() in DOCKER_HUB_ALIASES else host
    parts = repository.split("/") if repository else []
    for end in range(len(parts), 0, -1):
        scoped = f"{namespace_host}/{'/'.join(parts[:end])}"
        if scoped in auths:
            return auths[scoped]
    for key in keys:
        if key in auths:
            return auths[key]
    # Like docker, also match keys written as URLs: `https://host:5000/v2/`.
    wanted = {_key_host(k) for k in keys}
    return next((entry for key, entry in auths.items() if "://" in key and _key_host(key) in wanted), None)


def _from_file(path: Path, host: str, repository: str) -> Credentials | None:
    doc = _load_json(path)
    if doc is None:
        return None
    keys = _auth_keys(host)
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict) and any(key in helpers for key in keys):
        # Credential helpers and credsStore run external programs; Vigil does
        # not support them. A helper's entry is authoritative, so stale inline
        # `auths` are not used either: the caller gets None (anonymous access).
        log.warning("%s names a credential helper for %s; helpers are not supported", path, host)
        return None
    auths = doc.get("auths")
    found = _entry_credentials(_find_entry(auths, host, repository), path) if isinstance(auths, dict) else None
    if found is None and doc.get("credsStore"):
        log.warning("%s keeps its credentials in a credsStore; credential stores are not supported", path)
    return found


def credential_files(env: Mapping[str, str], home: Path) -> list[Path]:
    """Where credentials are looked for, in order: docker's config.json, then containers' auth.json."""
    docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    files = [docker_dir / "config.json"]
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(Path(env["REGISTRY_AUTH_FILE"]))
    else:
        if env.get("XDG_RUNTIME_DIR"):
            files.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
        config_home = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
        files.append(config_home / "containers" / "auth.json")
    return files


def find_credentials(
    host: str, repository: str = "", *, env: Mapping[str, str] | None = None, home: Path | None = None
) -> Credentials | None:
    """Credentials for `host` (host[:port]) from the environment or the docker / podman login files.

    Order: VIGIL_REGISTRY_USERNAME / VIGIL_REGISTRY_PASSWORD, then
    $DOCKER_CONFIG/config.json (or ~/.docker/config.json), then
    $REGISTRY_AUTH_FILE or $XDG_RUNTIME_DIR/containers/auth.json (what skopeo
    and podman write), then ~/.config/containers/auth.json. Raises ValueError
    for a file that exists but cannot be read.
    """
    env = os.environ if env is None else env
    if env.get(ENV_USERNAME):
        return Credentials(env[ENV_USERNAME], env.get(ENV_PASSWORD, ""))
    home = Path.home() if home is None else home
    for path in credential_files(env, home):
        found = _from_file(path, host, repository)
        if found is not None:
            return found
    return None


# --- Tokens --------------------------------------------------------------------


@dataclass(frozen=True)
class BearerToken:
    value: str
    expires_at: float  # time.monotonic()


class TokenCache:
    """Bearer tokens by scope, shared by the threads of one client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, BearerToken] = {}

    def get(self, scope: str) -> str | None:
        with self._lock:
            token = self._tokens.get(scope)
            if token is None or token.expires_at <= time.monotonic():
                self._tokens.pop(scope, None)
                return None
            return token.value

    def put(self, scope: str, token: BearerToken) -> None:
        with self._lock:
            self._tokens[scope] = token

    def forget(self, scope: str) -> None:
        with self._lock:
            self._tokens.pop(scope, None)


def _token_from(body: bytes, realm: str) -> BearerToken:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RegistryError(f"token server {realm} answered with something that is not JSON") from None
    value = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
    if not isinstance(value, str) or not value:
        raise RegistryError(f"token server {realm} answered without a token")
    lifetime = doc.get("expires_in")
    if not isinstance(lifetime, int) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    # Renew a little early so that a token does not expire in flight.
    return BearerToken(value, time.monotonic() + lifetime * 0.9)


def check_realm(realm: str, *, allow_http: bool) -> str:
    """The realm URL, if it is one this client may send credentials to."""
    parts = urllib.parse.urlsplit(realm)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise RegistryError(f"the registry named an unusable token realm {realm!r}")
    if parts.scheme == "http" and not allow_http:
        raise RegistryError(f"the registry named a plain-http token realm {realm!r}; it is used only when insecure")
    return realm


def request_token(
    session: requests.Session,
    challenge: Challenge,
    scope: str,
    credentials: Credentials | None,
    *,
    timeout: tuple[float, float],
    allow_http: bool,
) -> BearerToken:
    """Ask the challenge's realm for a token; RegistryError(retryable=...) when it fails."""
    realm = check_realm(challenge.realm, allow_http=allow_http)
    scopes = [scope] if scope else []
    try:
        if credentials is not None and credentials.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token}
            form |= {"service": challenge.service, "client_id": CLIENT_ID, "scope": " ".join(scopes)}
            response = session.post(realm, data=form, timeout=timeout, allow_redirects=False, stream=True)
        else:
            query = [("service", challenge.service)] + [("scope", s) for s in scopes]
            headers = {"Authorization": credentials.basic_header()} if credentials is not None else {}
            response = session.get(
                realm, params=query, headers=headers, timeout=timeout, allow_redirects=False, stream=True
            )
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise RegistryError(f"token server {realm} could not be reached: {exc}", retryable=True) from None
    with response:
        body = response.raw.read(MAX_TOKEN_RESPONSE, decode_content=True)
        status = response.status_code
    if status in (429, 500, 502, 503, 504):
        raise RegistryError(f"token server {realm} answered {status}", retryable=True, status=status)
    if status != 200:
        who = "with the given credentials" if credentials is not None else "anonymously (no credentials given)"
        raise RegistryError(f"token server {realm} refused a token {who}: HTTP {status}", status=status)
    return _token_from(body, realm)
