"""An HTTP client for the OCI distribution API, for pulling only.

It talks to the registry it was built for and to nothing else, except the
token realm that registry's own challenge names and the storage redirects it
answers blob requests with. Every request has a timeout; 429, 5xx and
connection failures are retried with backoff, honouring Retry-After.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import os
import random
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import requests
import urllib3

from scans.engine.errors import DigestMismatchError, HostileContentError, RegistryError
from scans.engine.manifests import ACCEPT, check_digest, media_type_of
from scans.engine.registry.auth import BearerToken, Challenge, Credentials, TokenCache, parse_challenges, request_token
from scans.engine.registry.reference import check_repository, check_tag_or_digest

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_MANIFEST_SIZE = 4 << 20
CHUNK_SIZE = 1 << 20
MAX_ERROR_BODY = 64 << 10
MAX_REDIRECTS = 5
USER_AGENT = "vigil-scanner"
# Network failures worth another attempt; also raised while a streamed body is read.
_TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError)


class _Retryable(RegistryError):
    """A failure the attempt loop retries; `wait` is the registry's Retry-After, if any."""

    def __init__(self, message: str, *, status: int | None = None, wait: float | None = None):
        super().__init__(message, retryable=True, status=status)
        self.wait = wait


def retry_after_seconds(value: str, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None when absent or malformed."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP dates are GMT
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _content_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "").split(";", 1)[0].strip()


def _error_detail(response: requests.Response) -> str:
    """The registry's own error code and message, for the user."""
    try:
        body = response.raw.read(MAX_ERROR_BODY, decode_content=True)
        errors = json.loads(body).get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError, TypeError, *_TRANSIENT_ERRORS):
        return ""


def _too_big(what: str, limit: int, *, exact: bool) -> Exception:
    if exact:
        return DigestMismatchError(f"{what} is larger than the {limit} bytes its descriptor gives")
    return HostileContentError(f"{what} is larger than the {limit} bytes allowed")


class RegistryClient:
    """Pulls manifests and blobs from one registry. Thread-safe: each thread gets its own HTTP session.

    `base_url` is `https://host[:port]` (or `host[:port]`, taken as https);
    plain http only when `insecure` is true (then a bare host means http).
    TLS certificates are always verified.
    """

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        insecure: bool = False,
        timeout: tuple[float, float] = (5.0, 60.0),
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        max_manifest_size: int = MAX_MANIFEST_SIZE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if "://" not in base_url:
            base_url = ("http://" if insecure else "https://") + base_url
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise ValueError(f"registry URL must be http(s)://host[:port], not {base_url!r}")
        if parts.scheme == "http" and not insecure:
            raise ValueError(f"refusing plain http to {parts.netloc} unless the registry is marked insecure")
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        self.credentials = credentials
        self.insecure = insecure
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.max_manifest_size = max_manifest_size
        self._sleep = sleep
        self._tokens = TokenCache()
        self._basic = False  # the registry asked for Basic auth once; send it up front from then on
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        # Documents fetched by digest, for this client's life: content-addressed, so they cannot
        # change, and a caller that sizes an image before pulling it must not fetch them twice
        # (registries such as Docker Hub count every manifest GET against a pull quota).
        self._by_digest: dict[tuple[str, str], tuple[bytes, str, str]] = {}

    # --- plumbing ---------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # No proxies, netrc or CA bundles from the environment: netrc would
            # replace the Authorization header this client sets.
            session.trust_env = False
            session.headers["User-Agent"] = USER_AGENT
            # Blobs are hashed as stored; a transfer encoding must not be undone or added.
            session.headers["Accept-Encoding"] = "identity"
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _delay(self, attempt: int, failure: _Retryable) -> float:
        if failure.wait is not None:
            if failure.wait > self.max_retry_after:
                raise RegistryError(
                    f"{failure}; the registry asks to wait {failure.wait:.0f}s, more than {self.max_retry_after:.0f}s",
                    retryable=True,
                    status=failure.status,
                )
            return failure.wait
        # Jitter spreads out workers that failed together; not for security.
        return min(self.backoff * 2.0**attempt, self.max_backoff) * random.uniform(0.5, 1.0)  # noqa: S311

    def _with_retries(self, operation: Callable[[], T]) -> T:
        for attempt in range(self.max_retries + 1):
            try:
                return operation()
            except requests.exceptions.SSLError as exc:
                raise RegistryError(f"TLS connection to {self.host} failed: {exc}") from None
            except _Retryable as failure:
                if attempt == self.max_retries:
                    raise RegistryError(
                        f"{failure} (gave up after {attempt + 1} attempts)", retryable=True, status=failure.status
                    ) from None
                self._sleep(self._delay(attempt, failure))
            except _TRANSIENT_ERRORS as exc:
                if attempt == self.max_retries:
                    raise RegistryError(
                        f"registry {self.host} could not be reached: {exc} (gave up after {attempt + 1} attempts)",
                        retryable=True,
                    ) from None
                self._sleep(self._delay(attempt, _Retryable(str(exc))))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _get(self, url: str, scope: str, accept: str, *, auth: bool = True) -> requests.Response:
        headers = {"Accept": accept}
        if auth:
            header = self._auth_header(scope)
            if header:
                headers["Authorization"] = header
        return self._session().get(url, headers=headers, timeout=self.timeout, stream=True, allow_redirects=False)

    def _auth_header(self, scope: str) -> str | None:
        if self.credentials is not None and self.credentials.registry_token:
            return f"Bearer {self.credentials.registry_token}"
        if self._basic and self.credentials is not None:
            return self.credentials.basic_header()
        token = self._tokens.get(scope)
        return f"Bearer {token}" if token else None

    def _authorize(self, response: requests.Response, scope: str) -> None:
        """Answer a 401's challenge: remember Basic, or fetch a Bearer token for `scope`."""
        if self.credentials is not None and self.credentials.registry_token:
            raise RegistryError(f"authentication failed for {self.host}: the registry refused the token", status=401)
        header = response.headers.get("WWW-Authenticate", "")
        try:
            challenges = {c.scheme: c for c in parse_challenges(header)}
        except ValueError as exc:
            raise RegistryError(f"authentication failed for {self.host}: {exc}", status=401) from None
        bearer: Challenge | None = challenges.get("bearer")
        if bearer is not None and bearer.realm:
            self._tokens.put(scope, self._bearer_token(bearer, scope))
            return
        if "basic" in challenges and self.credentials is not None and self.credentials.username:
            self._basic = True
            return
        if self.credentials is None:
            reason = "no credentials given"
        elif "basic" in challenges:
            reason = "it asks for Basic auth and only an identity token is configured"
        else:
            reason = f"unsupported challenge {header!r}"
        raise RegistryError(f"authentication failed for {self.host}: {reason}", status=401)

    def _bearer_token(self, challenge: Challenge, scope: str) -> BearerToken:
        try:
            return request_token(
                self._session(),
                challenge,
                scope or challenge.scope,
                self.credentials,
                timeout=self.timeout,
                allow_http=self.insecure,
            )
        except RegistryError as exc:
            if exc.retryable:
                raise _Retryable(str(exc), status=exc.status) from None
            raise RegistryError(f"authentication failed for {self.host}: {exc}", status=exc.status) from None

    def _request(
        self, repository: str, path: str, accept: str, what: str, *, redirects: bool = False
    ) -> requests.Response:
        """One attempt at GET base_url+path, authenticating on a 401; raises on any error answer."""
        url = self.base_url + path
        scope = f"repository:{repository}:pull"
        response = self._get(url, scope, accept)
        if response.status_code == 401:
            response.close()
            self._tokens.forget(scope)
            self._authorize(response, scope)
            response = self._get(url, scope, accept)
        if response.status_code >= 400 or (response.is_redirect and not redirects):
            self._raise_for(response, what, repository)
        return response

    def _raise_for(self, response: requests.Response, what: str, repository: str) -> None:
        status = response.status_code
        with response:
            detail = _error_detail(response)
        suffix = f" ({detail})" if detail else ""
        if status in RETRY_STATUSES:
            wait = retry_after_seconds(response.headers.get("Retry-After", ""))
            raise _Retryable(f"{what}: registry {self.host} answered HTTP {status}{suffix}", status=status, wait=wait)
        if status == 401:
            raise RegistryError(f"authentication failed for {self.host} ({what}){suffix}", status=status)
        if status == 403:
            raise RegistryError(f"access denied to {what} on {self.host}{suffix}", status=status)
        if status == 404 and detail.startswith("NAME_UNKNOWN"):
            raise RegistryError(f"repository {repository} not found on {self.host}{suffix}", status=status)
        if status == 404:
            raise RegistryError(f"{what} not found on {self.host}{suffix}", status=status)
        raise RegistryError(f"{what}: registry {self.host} answered HTTP {status}{suffix}", status=status)

    # --- manifests --------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """The manifest or index `reference` (tag or digest) names: (raw bytes, media type, sha256 digest).

        Raises DigestMismatchError when the bytes do not match the digest asked
        for or the one the registry announces, HostileContentError when the
        document is larger than `max_manifest_size`.
        """
        check_repository(repository)
        check_tag_or_digest(reference)
        wanted = reference if ":" in reference else ""
        if (repository, wanted) in self._by_digest:
            return self._by_digest[repository, wanted]
        what = f"manifest {repository}:{reference}" if not wanted else f"manifest {repository}@{reference}"
        path = f"/v2/{repository}/manifests/{reference}"

        def attempt() -> tuple[bytes, requests.Response]:
            with self._request(repository, path, ACCEPT, what) as response:
                return self._read_bounded(response, what), response

        raw, response = self._with_retries(attempt)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        announced = response.headers.get("Docker-Content-Digest", "")
        if wanted and digest != wanted:
            raise DigestMismatchError(f"{what}: the registry sent a document whose digest is {digest}")
        if announced.startswith("sha256:") and announced != digest:
            raise DigestMismatchError(f"{what}: the registry announced digest {announced} but sent {digest}")
        document = raw, media_type_of(raw, _content_type(response)), digest
        if wanted:
            self._by_digest[repository, wanted] = document
        return document

    def _read_bounded(self, response: requests.Response, what: str) -> bytes:
        limit = self.max_manifest_size
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            raise HostileContentError(f"{what} is {length} bytes, more than the {limit} allowed")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.raw.stream(64 << 10, decode_content=False):
            size += len(chunk)
            if size > limit:
                raise HostileContentError(f"{what} is more than the {limit} bytes allowed")
            chunks.append(chunk)
        return b"".join(chunks)

    # --- blobs ------------------------------------------------------------------

    def fetch_blob(
        self, repository: str, digest: str, dest_path: Path, *, max_size: int, size: int | None = None
    ) -> None:
        """Stream blob `digest` to `dest_path`, verifying it; `size` is the descriptor's size, if known.

        The bytes go to a temporary file next to `dest_path` that replaces it
        only once the digest matches; on any failure nothing is left behind.
        """
        check_repository(repository)
        check_digest(digest, "blob digest")
        if size is not None and size > max_size:
            raise HostileContentError(f"blob {digest} is {size} bytes, more than the {max_size} allowed")
        limit = max_size if size is None else size
        what = f"blob {digest} of {repository}"

        def attempt() -> None:
            with self._open_blob(repository, digest, what) as response:
                self._save_blob(response, digest, dest_path, limit, what, exact=size is not None)

        self._with_retries(attempt)

    def _open_blob(self, repository: str, digest: str, what: str) -> requests.Response:
        response = self._request(repository, f"/v2/{repository}/blobs/{digest}", "*/*", what, redirects=True)
        for _ in range(MAX_REDIRECTS):
            if not response.is_redirect:
                return response
            location = self._redirect_target(response, what)
            response.close()
            # Storage backends authenticate with the signed URL itself; the
            # registry's token must not go to another host (S3 rejects it).
            same_origin = location.startswith(self.base_url + "/")
            response = self._get(location, f"repository:{repository}:pull", "*/*", auth=same_origin)
            if response.status_code >= 400:
                self._raise_for(response, what, repository)
        raise RegistryError(f"{what}: more than {MAX_REDIRECTS} redirects from {self.host}")

    def _redirect_target(self, response: requests.Response, what: str) -> str:
        location = urllib.parse.urljoin(response.url, response.headers.get("Location", ""))
        scheme = urllib.parse.urlsplit(location).scheme
        if scheme != "https" and not (scheme == "http" and self.insecure):
            response.close()
            raise RegistryError(f"{what}: {self.host} redirected to {location!r}, which is not https")
        return location

    def _save_blob(
        self, response: requests.Response, digest: str, dest_path: Path, limit: int, what: str, *, exact: bool
    ) -> None:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            raise _too_big(what, limit, exact=exact)
        hasher = hashlib.sha256()
        written = 0
        fd, tmp_name = tempfile.mkstemp(prefix=".partial-", dir=dest_path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in response.raw.stream(CHUNK_SIZE, decode_content=False):
                    written += len(chunk)
                    if written > limit:
                        raise _too_big(what, limit, exact=exact)
                    hasher.update(chunk)
                    out.write(chunk)
            actual = "sha256:" + hasher.hexdigest()
            if actual != digest or (exact and written != limit):
                raise DigestMismatchError(f"{what}: received {written} bytes with digest {actual}")
            os.replace(tmp_name, dest_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
