"""A loopback HTTP proxy that injects faults in front of a real registry.

The first `fail_first` requests whose path contains `fail_matching` get
`status` (with `Retry-After` when given) instead of being forwarded; every
other request goes to the registry, and `tamper` may rewrite a response body
on the way back (to serve a blob that does not match its digest).
`redirect_matching` answers matching requests with a redirect to the registry.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)


def flip_last_byte(path: str, body: bytes) -> bytes:
    """A tamper function: blobs keep their length but lose their digest."""
    if "/blobs/" not in path or not body:
        return body
    return body[:-1] + bytes([body[-1] ^ 0xFF])


def append_bytes(path: str, body: bytes) -> bytes:
    """A tamper function: blobs grow past the size their descriptor gives."""
    return body + b"\0" * 1024 if "/blobs/" in path else body


@dataclass
class FlakyProxy:
    upstream: str  # host:port of the registry
    fail_first: int = 0
    status: int = 503
    retry_after: str | None = None
    fail_matching: str = "/v2/"
    tamper: Callable[[str, bytes], bytes] | None = None
    # Requests whose path contains this get a 307 to the same path on the registry itself,
    # the way registries send blob downloads to a storage backend.
    redirect_matching: str | None = None
    # (monotonic time, method, path, status answered) of every request seen
    requests: list[tuple[float, str, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._failed = 0
        self._httpd = _ProxyServer(("127.0.0.1", 0), _Handler)
        self._httpd.proxy = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="flaky-proxy", daemon=True)
        self._thread.start()
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def should_fail(self, path: str) -> bool:
        with self._lock:
            if self.fail_matching in path and self._failed < self.fail_first:
                self._failed += 1
                return True
            return False

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((time.monotonic(), method, path, status))

    def attempts(self, path_part: str) -> list[tuple[float, int]]:
        """(time, status) of the requests whose path contains `path_part`."""
        with self._lock:
            return [(at, status) for at, _, path, status in self.requests if path_part in path]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FlakyProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _ProxyServer(ThreadingHTTPServer):
    proxy: FlakyProxy


class _Handler(BaseHTTPRequestHandler):
    server: _ProxyServer

    @property
    def proxy(self) -> FlakyProxy:
        return self.server.proxy

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    def _handle(self) -> None:
        if self.proxy.should_fail(self.path):
            self._fail()
            return
        if self.proxy.redirect_matching is not None and self.proxy.redirect_matching in self.path:
            self._redirect()
            return
        upstream = http.client.HTTPConnection(self.proxy.upstream, timeout=10)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream.request(self.command, self.path, headers=headers)
            self._relay(upstream.getresponse())
        finally:
            upstream.close()

    def _relay(self, response: http.client.HTTPResponse) -> None:
        body = response.read()
        if self.proxy.tamper is not None and response.status == 200:
            body = self.proxy.tamper(self.path, body)
        self.proxy.record(self.command, self.path, response.status)
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _redirect(self) -> None:
        self.proxy.record(self.command, self.path, 307)
        self.send_response(307)
        self.send_header("Location", f"http://{self.proxy.upstream}{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _fail(self) -> None:
        self.proxy.record(self.command, self.path, self.proxy.status)
        body = b'{"errors":[{"code":"INJECTED","message":"a fault injected by the test proxy"}]}'
        self.send_response(self.proxy.status)
        if self.proxy.retry_after is not None:
            self.send_header("Retry-After", self.proxy.retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        """Quiet: the proxy's `requests` list is the log tests look at."""
