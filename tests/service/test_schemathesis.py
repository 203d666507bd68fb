"""Malformed requests get 4xx, never 500: schemathesis against the live test server's OpenAPI schema.

Every operation of /api/schema/ is called with generated requests, valid
and invalid (schemathesis' examples, coverage and fuzzing phases, positive
and negative modes), as an admin, so that permission checks do not stop
the requests before the code under test. The only check is
`not_a_server_error`. Outbound connections from the server (a scan request
naming some registry) are held to loopback for the run.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.servers.basehttp import WSGIRequestHandler
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis.engine import Status, events

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 8  # per operation in the fuzzing phase; the coverage phase makes every case the schema implies


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Name resolution (so every connection) refused for anything but loopback, in this process."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            loopback = ipaddress.ip_address(name.strip("[]")).is_loopback
        except ValueError:
            loopback = name == "localhost"
        if not loopback:
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: not reachable from the schemathesis test")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def fast_live_server(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The live server without Nagle's algorithm: it writes headers and body apart, and each
    response would otherwise wait out the client's delayed ACK (40 ms), 2,000 times over."""
    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)
    return live_server


@pytest.fixture
def admin_headers(transactional_db: None) -> dict[str, str]:
    admin = User.objects.create_superuser("schemathesis", password="unused-password")
    return {"Authorization": f"Token {Token.objects.create(user=admin).key}"}


def failures_of(event: events.ScenarioFinished) -> list[str]:
    found = []
    for nodes in event.recorder.checks.values():
        for node in nodes:
            if node.status == Status.FAILURE and node.failure_info is not None:
                found.append(f"{event.label}: {node.failure_info.failure.title}\n    {node.failure_info.code_sample}")
    return found


def test_no_request_gives_a_server_error(
    fast_live_server: Any, admin_headers: dict[str, str], loopback_only: None
) -> None:
    url = fast_live_server.url
    schema = schemathesis.openapi.from_url(f"{url}/api/schema/?format=json", headers=admin_headers)
    # One connection per request: Django's development server, which the live server is, can take
    # what is left of a malformed request for the next request line on a kept-alive connection.
    # One worker: schemathesis' workers are threads, and CPython 3.11.7's ast module is not
    # thread-safe ("AST constructor recursion depth mismatch", fixed in 3.11.8).
    headers = {**admin_headers, "Connection": "close"}
    schema.config.update(base_url=url, headers=headers, workers=1, request_timeout=30)
    schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    schema.config.phases.coverage.unexpected_methods = set()  # 405s for TRACE and friends teach nothing
    schema.config.generation.update(modes=["positive", "negative"], max_examples=MAX_EXAMPLES, deterministic=True)
    schema.config.checks.update(included_check_names=["not_a_server_error"])
    expected = {result.ok().label for result in schema.get_all_operations()}
    tested: set[str] = set()
    failures: list[str] = []
    errors: list[str] = []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            tested.add(str(event.label))
            failures.extend(failures_of(event))
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            errors.append(repr(event.exception))
    assert not errors, "\n".join(errors)
    assert not failures, "\n".join(sorted(set(failures)))
    assert expected <= tested, sorted(expected - tested)
    assert len(expected) >= 30


# -- the server errors it found, one regression test each --------------------------------------------


@pytest.mark.django_db
def test_an_sbom_upload_without_a_body_is_a_400():
    client = APIClient()
    client.force_authenticate(User.objects.create_superuser("ops", password="unused-password"))
    response = client.post("/api/v1/sboms/")
    assert response.status_code == 400
    assert "request body" in response.json()["sbom"][0]
