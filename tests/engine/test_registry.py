"""The registry client against a real docker-registry, with skopeo pushing real images.

Faults (429, 503, corrupted bodies) come from a loopback proxy in front of the
real registry; tokens come from a real token server the registry trusts.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from scans.engine.errors import DigestMismatchError, HostileContentError, ImageFormatError, RegistryError
from scans.engine.manifests import OCI_INDEX
from scans.engine.models import Platform
from scans.engine.registry.auth import Credentials, find_credentials, parse_challenges
from scans.engine.registry.client import RegistryClient, retry_after_seconds
from scans.engine.registry.pull import PulledImage, pull_image
from scans.engine.registry.reference import DOCKER_HUB, ImageReference, parse_reference
from tests.support.flaky_proxy import FlakyProxy, append_bytes, flip_last_byte
from tests.support.registry import (
    CORPUS_DIR,
    RunningRegistry,
    skopeo_push,
    start_registry,
    tools_missing,
    write_multiarch_layout,
)
from tests.support.token_server import start_token_server

ALPINE_DOCKER = CORPUS_DIR / "alpine311.docker.tar"
ALPINE_OCI = CORPUS_DIR / "alpine311.oci.tar"
ALPINE320_OCI = CORPUS_DIR / "alpine320.oci.tar"
MAX_BLOB = 64 << 20

needs_registry = pytest.mark.skipif(bool(tools_missing()), reason=tools_missing() or "tools present")
needs_corpus = pytest.mark.skipif(
    not ALPINE_DOCKER.exists(), reason=f"image corpus missing: {ALPINE_DOCKER} (expected at ../shared/corpus)"
)


def fast_client(base: str, **options: object) -> RegistryClient:
    """A client with short backoff, so that failing tests end quickly."""
    defaults: dict[str, object] = {"insecure": True, "timeout": (2.0, 10.0), "max_retries": 3, "backoff": 0.01}
    return RegistryClient(base, **(defaults | options))  # type: ignore[arg-type]


def assert_layout_verified(pulled: PulledImage) -> None:
    layout = pulled.layout_dir
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    blobs = sorted((layout / "blobs" / "sha256").iterdir())
    assert blobs, "no blobs written"
    for blob in blobs:
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert (layout / "blobs" / "sha256" / pulled.manifest_digest.removeprefix("sha256:")).exists()


@pytest.fixture(scope="module")
def anonymous_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningRegistry, str]]:
    """A registry without auth holding alpine311 as team/app:1.0; yields it and the manifest digest."""
    if tools_missing():
        pytest.skip(tools_missing())
    if not ALPINE_DOCKER.exists():
        pytest.skip(f"image corpus missing: {ALPINE_DOCKER}")
    with start_registry(tmp_path_factory.mktemp("anonymous-registry")) as registry:
        digest = skopeo_push(f"docker-archive:{ALPINE_DOCKER}", f"{registry.host}/team/app:1.0")
        yield registry, digest


# --- pulls for each auth mode ----------------------------------------------------


@needs_registry
@needs_corpus
def test_pull_anonymous_by_tag_writes_a_verified_oci_layout(
    anonymous_registry: tuple[RunningRegistry, str], tmp_path: Path
) -> None:
    registry, digest = anonymous_registry
    with fast_client(registry.host) as client:
        pulled = pull_image(client, "team/app", "1.0", tmp_path, Platform(), max_blob_size=MAX_BLOB)

    assert pulled.top_digest == digest == pulled.manifest_digest
    assert pulled.index_digest == ""
    assert pulled.top_media_type == "application/vnd.docker.distribution.manifest.v2+json"
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["manifests"] == [
        {
            "mediaType": pulled.top_media_type,
            "digest": digest,
            "size": (tmp_path / "blobs" / "sha256" / digest.removeprefix("sha256:")).stat().st_size,
            "annotations": {"org.opencontainers.image.ref.name": "1.0"},
        }
    ]
    assert len(list((tmp_path / "blobs" / "sha256").iterdir())) == 3  # manifest, config, one layer
    assert_layout_verified(pulled)


@needs_registry
@needs_corpus
def test_pull_by_digest_has_no_ref_name(anonymous_registry: tuple[RunningRegistry, str], tmp_path: Path) -> None:
    registry, digest = anonymous_registry
    with fast_client(registry.host) as client:
        pulled = pull_image(client, "team/app", digest, tmp_path, Platform(), max_blob_size=MAX_BLOB)

    assert pulled.top_digest == digest
    assert "annotations" not in json.loads((tmp_path / "index.json").read_text())["manifests"][0]


@needs_registry
@needs_corpus
def test_pull_with_htpasswd_basic_auth(tmp_path: Path) -> None:
    creds = ("bob", "correct horse")
    with start_registry(tmp_path / "registry", htpasswd=creds) as registry:
        digest = skopeo_push(f"docker-archive:{ALPINE_DOCKER}", f"{registry.host}/team/app:1.0", creds=creds)
        with fast_client(registry.host, credentials=Credentials(*creds)) as client:
            pulled = pull_image(client, "team/app", "1.0", tmp_path / "out", Platform(), max_blob_size=MAX_BLOB)
        assert pulled.manifest_digest == digest
        assert_layout_verified(pulled)

        for credentials in (None, Credentials("bob", "wrong")):
            with fast_client(registry.host, credentials=credentials) as client, pytest.raises(RegistryError) as err:
                client.get_manifest("team/app", "1.0")
            assert f"authentication failed for {registry.host}" in str(err.value)
            assert (err.value.status, err.value.retryable) == (401, False)


@needs_registry
@needs_corpus
def test_pull_with_bearer_tokens_from_a_token_server(tmp_path: Path) -> None:
    users = {"alice": "s3cret"}
    with (
        start_token_server(tmp_path, users=users, refresh_tokens={"refresh-1": "alice"}) as tokens,
        start_registry(tmp_path / "registry", token_auth=tokens.config) as registry,
    ):
        digest = skopeo_push(
            f"docker-archive:{ALPINE_DOCKER}", f"{registry.host}/team/app:1.0", creds=("alice", "s3cret")
        )
        tokens.requests.clear()
        with fast_client(registry.host, credentials=Credentials("alice", "s3cret")) as client:
            pulled = pull_image(client, "team/app", "1.0", tmp_path / "basic", Platform(), max_blob_size=MAX_BLOB)
        assert pulled.manifest_digest == digest
        assert_layout_verified(pulled)
        # One token for the manifest, the config and the layer: it is cached per scope.
        assert tokens.requests == [("GET", ("repository:team/app:pull",), 200)]

        identity = Credentials("<token>", identity_token="refresh-1")  # noqa: S106 - the test token server's
        with fast_client(registry.host, credentials=identity) as client:
            pulled = pull_image(client, "team/app", digest, tmp_path / "identity", Platform(), max_blob_size=MAX_BLOB)
        assert pulled.manifest_digest == digest
        assert tokens.requests[-1] == ("POST", ("repository:team/app:pull",), 200)

        with fast_client(registry.host) as client, pytest.raises(RegistryError) as err:
            client.get_manifest("team/app", "1.0")
        assert str(err.value).startswith(f"authentication failed for {registry.host}")
        assert "no credentials given" in str(err.value)
        assert err.value.retryable is False


# --- multi-arch ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def multiarch_registry(
    anonymous_registry: tuple[RunningRegistry, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunningRegistry, str]:
    """team/multi:1.0 is an OCI index of linux/amd64 (alpine311) and linux/arm64/v8; yields the index digest."""
    registry, _ = anonymous_registry
    if not ALPINE_OCI.exists() or not ALPINE320_OCI.exists():
        pytest.skip(f"image corpus missing: {ALPINE_OCI} or {ALPINE320_OCI}")
    layout = tmp_path_factory.mktemp("multiarch-layout")
    index_digest = write_multiarch_layout(layout, ALPINE_OCI, ALPINE320_OCI, tag="multi")
    pushed = skopeo_push(f"oci:{layout}:multi", f"{registry.host}/team/multi:1.0", all_images=True)
    assert pushed == index_digest
    return registry, index_digest


def _index_entries(pulled: PulledImage) -> dict[str, str]:
    blob = pulled.layout_dir / "blobs" / "sha256" / pulled.index_digest.removeprefix("sha256:")
    index = json.loads(blob.read_bytes())
    return {
        "/".join(filter(None, (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")))): m[
            "digest"
        ]
        for m in index["manifests"]
    }


@needs_registry
@needs_corpus
def test_multiarch_index_picks_the_platform(multiarch_registry: tuple[RunningRegistry, str], tmp_path: Path) -> None:
    registry, index_digest = multiarch_registry
    with fast_client(registry.host) as client:
        default = pull_image(client, "team/multi", "1.0", tmp_path / "amd64", Platform(), max_blob_size=MAX_BLOB)
        override = pull_image(
            client, "team/multi", "1.0", tmp_path / "arm64", Platform.parse("linux/arm64"), max_blob_size=MAX_BLOB
        )

    entries = _index_entries(default)
    assert (default.top_digest, default.index_digest, default.top_media_type) == (index_digest, index_digest, OCI_INDEX)
    assert default.manifest_digest == entries["linux/amd64"]
    assert override.manifest_digest == entries["linux/arm64/v8"]
    assert_layout_verified(default)
    assert_layout_verified(override)
    config_digest = json.loads(
        (tmp_path / "arm64" / "blobs" / "sha256" / override.manifest_digest.removeprefix("sha256:")).read_bytes()
    )["config"]["digest"]
    config = json.loads((tmp_path / "arm64" / "blobs" / "sha256" / config_digest.removeprefix("sha256:")).read_bytes())
    assert (config["architecture"], config["variant"]) == ("arm64", "v8")
    # A real OCI tool reads the layout we wrote.
    inspected = subprocess.run(
        [
            "skopeo",
            "--override-os",
            "linux",
            "--override-arch",
            "amd64",
            "inspect",
            "--raw",
            f"oci:{tmp_path / 'amd64'}:1.0",
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert hashlib.sha256(inspected).hexdigest() == index_digest.removeprefix("sha256:")


@needs_registry
@needs_corpus
def test_multiarch_index_without_the_platform_says_what_it_offers(
    multiarch_registry: tuple[RunningRegistry, str], tmp_path: Path
) -> None:
    registry, _ = multiarch_registry
    with fast_client(registry.host) as client, pytest.raises(ImageFormatError) as err:
        pull_image(client, "team/multi", "1.0", tmp_path, Platform.parse("linux/s390x"), max_blob_size=MAX_BLOB)
    assert "no manifest for platform linux/s390x" in str(err.value)
    assert "linux/amd64" in str(err.value)
    assert "linux/arm64/v8" in str(err.value)


# --- retries ---------------------------------------------------------------------------


class RecordingSleep:
    """Really sleeps, and records what the client asked for."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        time.sleep(seconds)


@needs_registry
@needs_corpus
def test_a_client_fetches_a_document_by_digest_once(anonymous_registry: tuple[RunningRegistry, str]) -> None:
    """Sizing an image before pulling it (the service's time limit) costs no second manifest GET."""
    registry, digest = anonymous_registry
    with FlakyProxy(registry.host) as proxy, fast_client(proxy.host) as client:
        first = client.get_manifest("team/app", digest)
        assert client.get_manifest("team/app", digest) == first
        client.get_manifest("team/app", "1.0")
        client.get_manifest("team/app", "1.0")  # a tag can move: asked again every time
    paths = [path for _, method, path, _ in proxy.requests if method == "GET"]
    assert paths.count(f"/v2/team/app/manifests/{digest}") == 1
    assert paths.count("/v2/team/app/manifests/1.0") == 2


@needs_registry
@needs_corpus
def test_retry_after_is_honoured(anonymous_registry: tuple[RunningRegistry, str]) -> None:
    registry, digest = anonymous_registry
    sleep = RecordingSleep()
    with (
        FlakyProxy(registry.host, fail_first=2, status=429, retry_after="1") as proxy,
        fast_client(proxy.host, sleep=sleep) as client,
    ):
        raw, _, got = client.get_manifest("team/app", "1.0")

    assert got == digest
    attempts = proxy.attempts("/manifests/1.0")
    assert [status for _, status in attempts] == [429, 429, 200]
    assert sleep.asked == [1.0, 1.0]
    gaps = [later - earlier for (earlier, _), (later, _) in zip(attempts, attempts[1:], strict=False)]
    assert all(gap >= 0.9 for gap in gaps), gaps


@needs_registry
@needs_corpus
def test_retries_stop_at_the_cap_with_a_retryable_error(anonymous_registry: tuple[RunningRegistry, str]) -> None:
    registry, _ = anonymous_registry
    with (
        FlakyProxy(registry.host, fail_first=100, status=503) as proxy,
        fast_client(proxy.host, max_retries=2) as client,
        pytest.raises(RegistryError) as err,
    ):
        client.get_manifest("team/app", "1.0")

    assert (err.value.retryable, err.value.status) == (True, 503)
    assert "gave up after 3 attempts" in str(err.value)
    assert len(proxy.attempts("/manifests/")) == 3


@needs_registry
@needs_corpus
def test_a_retry_after_beyond_the_limit_fails_at_once(anonymous_registry: tuple[RunningRegistry, str]) -> None:
    registry, _ = anonymous_registry
    sleep = RecordingSleep()
    with (
        FlakyProxy(registry.host, fail_first=1, status=429, retry_after="3600") as proxy,
        fast_client(proxy.host, sleep=sleep, max_retry_after=30.0) as client,
        pytest.raises(RegistryError) as err,
    ):
        client.get_manifest("team/app", "1.0")

    assert (err.value.retryable, err.value.status, sleep.asked) == (True, 429, [])
    assert "3600s" in str(err.value)


@needs_registry
@needs_corpus
def test_blob_downloads_are_retried(anonymous_registry: tuple[RunningRegistry, str], tmp_path: Path) -> None:
    registry, digest = anonymous_registry
    with (
        FlakyProxy(registry.host, fail_first=2, status=502, fail_matching="/blobs/") as proxy,
        fast_client(proxy.host) as client,
    ):
        pulled = pull_image(client, "team/app", "1.0", tmp_path, Platform(), max_blob_size=MAX_BLOB)

    assert pulled.manifest_digest == digest
    assert [status for _, status in proxy.attempts("/blobs/")][:2] == [502, 502]
    assert_layout_verified(pulled)


@needs_registry
@needs_corpus
def test_blob_redirects_are_followed_and_manifest_redirects_are_not(
    anonymous_registry: tuple[RunningRegistry, str], tmp_path: Path
) -> None:
    registry, digest = anonymous_registry
    with FlakyProxy(registry.host, redirect_matching="/blobs/") as proxy, fast_client(proxy.host) as client:
        pulled = pull_image(client, "team/app", "1.0", tmp_path, Platform(), max_blob_size=MAX_BLOB)
    assert pulled.manifest_digest == digest
    assert {status for _, status in proxy.attempts("/blobs/")} == {307}
    assert_layout_verified(pulled)

    with (
        FlakyProxy(registry.host, redirect_matching="/manifests/") as proxy,
        fast_client(proxy.host) as client,
        pytest.raises(RegistryError, match="HTTP 307"),
    ):
        client.get_manifest("team/app", "1.0")


def test_unreachable_registry_is_a_retryable_error() -> None:
    with fast_client("127.0.0.1:9", max_retries=1) as client, pytest.raises(RegistryError) as err:
        client.get_manifest("team/app", "1.0")
    assert err.value.retryable is True
    assert "could not be reached" in str(err.value)


# --- verification and limits --------------------------------------------------------


def _config_digest(registry: RunningRegistry, repository: str, reference: str) -> tuple[str, int]:
    with fast_client(registry.host) as client:
        raw, media_type, _ = client.get_manifest(repository, reference)
    config = json.loads(raw)["config"]
    return config["digest"], config["size"]


@needs_registry
@needs_corpus
def test_a_blob_that_does_not_match_its_digest_leaves_no_file(
    anonymous_registry: tuple[RunningRegistry, str], tmp_path: Path
) -> None:
    registry, _ = anonymous_registry
    digest, size = _config_digest(registry, "team/app", "1.0")
    with FlakyProxy(registry.host, tamper=flip_last_byte) as proxy, fast_client(proxy.host) as client:
        with pytest.raises(DigestMismatchError) as err:
            client.fetch_blob("team/app", digest, tmp_path / "config.json", max_size=MAX_BLOB, size=size)
        assert digest in str(err.value)
        assert list(tmp_path.iterdir()) == []

        with pytest.raises(DigestMismatchError):
            pull_image(client, "team/app", "1.0", tmp_path / "pull", Platform(), max_blob_size=MAX_BLOB)
    assert [p.name for p in (tmp_path / "pull" / "blobs" / "sha256").iterdir() if p.name.startswith(".")] == []


@needs_registry
@needs_corpus
def test_a_blob_longer_than_its_descriptor_is_refused(
    anonymous_registry: tuple[RunningRegistry, str], tmp_path: Path
) -> None:
    registry, _ = anonymous_registry
    digest, size = _config_digest(registry, "team/app", "1.0")
    with FlakyProxy(registry.host, tamper=append_bytes) as proxy, fast_client(proxy.host) as client:
        with pytest.raises(DigestMismatchError, match="larger than"):
            client.fetch_blob("team/app", digest, tmp_path / "config.json", max_size=MAX_BLOB, size=size)
        with pytest.raises(HostileContentError, match="larger than"):
            client.fetch_blob("team/app", digest, tmp_path / "config.json", max_size=size)
        blob_requests = len(proxy.attempts("/blobs/"))
        with pytest.raises(HostileContentError, match="more than the 10 allowed"):
            client.fetch_blob("team/app", digest, tmp_path / "config.json", max_size=10, size=size)
        assert len(proxy.attempts("/blobs/")) == blob_requests  # refused before asking
    assert list(tmp_path.iterdir()) == []


@needs_registry
@needs_corpus
def test_a_manifest_that_does_not_match_is_refused(anonymous_registry: tuple[RunningRegistry, str]) -> None:
    registry, digest = anonymous_registry

    def reformat(path: str, body: bytes) -> bytes:
        return json.dumps(json.loads(body), indent=1).encode() if "/manifests/" in path else body

    with FlakyProxy(registry.host, tamper=reformat) as proxy, fast_client(proxy.host) as client:
        with pytest.raises(DigestMismatchError, match="announced digest"):
            client.get_manifest("team/app", "1.0")
        with pytest.raises(DigestMismatchError, match="whose digest is"):
            client.get_manifest("team/app", digest)


@needs_registry
@needs_corpus
def test_missing_repository_and_blob_are_clear_errors(
    anonymous_registry: tuple[RunningRegistry, str], tmp_path: Path
) -> None:
    registry, _ = anonymous_registry
    with fast_client(registry.host) as client:
        with pytest.raises(RegistryError) as err:
            client.get_manifest("team/missing", "1.0")
        assert (err.value.status, err.value.retryable) == (404, False)
        assert f"manifest team/missing:1.0 not found on {registry.host}" in str(err.value)

        with pytest.raises(RegistryError) as err:
            client.fetch_blob("team/app", "sha256:" + "0" * 64, tmp_path / "blob", max_size=MAX_BLOB)
        assert err.value.status == 404
        assert f"not found on {registry.host}" in str(err.value)
    assert list(tmp_path.iterdir()) == []


@needs_registry
@needs_corpus
def test_an_oversized_manifest_is_refused(anonymous_registry: tuple[RunningRegistry, str]) -> None:
    registry, _ = anonymous_registry
    with fast_client(registry.host, max_manifest_size=100) as client, pytest.raises(HostileContentError) as err:
        client.get_manifest("team/app", "1.0")
    assert "more than the 100" in str(err.value)


def _put_blob(base: str, repository: str, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = requests.post(f"{base}/v2/{repository}/blobs/uploads/", timeout=5)
    start.raise_for_status()
    location = urllib.parse.urljoin(base, start.headers["Location"])
    done = requests.put(location, params={"digest": digest}, data=data, timeout=5)
    done.raise_for_status()
    return {"digest": digest, "size": len(data)}


@needs_registry
@needs_corpus
def test_an_unknown_layer_type_fails_before_any_layer_is_fetched(
    anonymous_registry: tuple[RunningRegistry, str], tmp_path: Path
) -> None:
    registry, _ = anonymous_registry
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **_put_blob(registry.url, "team/odd", json.dumps(config).encode()),
        },
        "layers": [
            {"mediaType": "application/vnd.example.squashfs", **_put_blob(registry.url, "team/odd", b"not a tar")}
        ],
    }
    put = requests.put(
        f"{registry.url}/v2/team/odd/manifests/1.0",
        data=json.dumps(manifest),
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        timeout=5,
    )
    assert put.status_code == 201, put.text

    with FlakyProxy(registry.host) as proxy, fast_client(proxy.host) as client, pytest.raises(ImageFormatError) as err:
        pull_image(client, "team/odd", "1.0", tmp_path, Platform(), max_blob_size=MAX_BLOB)
    assert "application/vnd.example.squashfs" in str(err.value)
    assert proxy.attempts("/blobs/") == []


class _Receiver(BaseHTTPRequestHandler):
    events: ClassVar[list[tuple[str, dict[str, object]]]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Receiver.events.append((self.headers.get("Authorization", ""), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class names it so
        """Quiet."""


@needs_registry
@needs_corpus
def test_start_registry_configures_notifications(tmp_path: Path) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/distribution"
        with start_registry(tmp_path, notify_url=url, notify_headers={"Authorization": "Token t0k"}) as registry:
            digest = skopeo_push(f"docker-archive:{ALPINE_DOCKER}", f"{registry.host}/team/app:1.0")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not _pushes(_Receiver.events, digest):
                time.sleep(0.05)
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert _pushes(_Receiver.events, digest) == ["Token t0k"]


def _pushes(events: list[tuple[str, dict[str, object]]], digest: str) -> list[str]:
    """The Authorization header of each delivery that announced the push of manifest `digest`."""
    return [
        auth
        for auth, envelope in events
        for event in envelope.get("events", [])  # type: ignore[attr-defined]
        if event["action"] == "push" and event["target"]["digest"] == digest
    ]


# --- client construction ------------------------------------------------------------------


def test_plain_http_needs_insecure() -> None:
    with pytest.raises(ValueError, match="plain http"):
        RegistryClient("http://registry.example:5000")
    assert RegistryClient("registry.example:5000").base_url == "https://registry.example:5000"
    assert RegistryClient("registry.example:5000", insecure=True).base_url == "http://registry.example:5000"
    with pytest.raises(ValueError, match="http"):
        RegistryClient("https://registry.example/some/path")


def test_bad_repository_or_reference_never_reaches_the_network() -> None:
    client = RegistryClient("https://registry.invalid")
    with pytest.raises(ValueError, match="repository"):
        client.get_manifest("../etc", "1.0")
    with pytest.raises(ValueError, match="tag"):
        client.get_manifest("team/app", "../../x")


# --- Retry-After ------------------------------------------------------------------------


def test_retry_after_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds("", now) is None


# --- references -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/team/app:1.0", ImageReference("127.0.0.1:5000", "team/app", "1.0")),
        ("localhost/app", ImageReference("localhost", "app", "latest")),
        ("registry.example/a/b/c", ImageReference("registry.example", "a/b/c", "latest")),
        (f"host.example/repo@sha256:{'a' * 64}", ImageReference("host.example", "repo", "", f"sha256:{'a' * 64}")),
        (
            f"host.example/repo:v1.2@sha256:{'b' * 64}",
            ImageReference("host.example", "repo", "v1.2", f"sha256:{'b' * 64}"),
        ),
        ("alpine:3.11", ImageReference(DOCKER_HUB, "library/alpine", "3.11")),
        ("docker.io/team/app", ImageReference(DOCKER_HUB, "team/app", "latest")),
        ("docker.io/alpine", ImageReference(DOCKER_HUB, "library/alpine", "latest")),
        (
            "my-host.example:443/x__y.z-w/app_1:TAG_x.1-2",
            ImageReference("my-host.example:443", "x__y.z-w/app_1", "TAG_x.1-2"),
        ),
    ],
)
def test_parse_reference(text: str, expected: ImageReference) -> None:
    assert parse_reference(text) == expected
    assert parse_reference(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("host.example/Team/app", "lowercase"),
        ("host.example/app:-bad", "invalid tag"),
        ("host.example/app:" + "t" * 129, "invalid tag"),
        ("host.example/app@sha256:abc", "invalid digest"),
        (f"host.example/app@sha512:{'a' * 128}", "only sha256"),
        ("host.example//app", "invalid repository"),
        ("host.example:99999/app", "invalid port"),
        ("-host.example/app", "invalid registry host"),
        ("host.example/app/", "invalid repository"),
    ],
)
def test_parse_reference_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_reference(text)


reference_alphabet = st.sampled_from("abcz09._-/:@Asha256" + "ef" * 3)


@given(st.text(alphabet=reference_alphabet, max_size=90) | st.text(max_size=40))
def test_parse_reference_fails_only_with_value_error(text: str) -> None:
    try:
        parsed = parse_reference(text)
    except ValueError:
        return
    assert parse_reference(str(parsed)) == parsed


# --- WWW-Authenticate -------------------------------------------------------------------


def test_parse_challenges_of_real_registries() -> None:
    hub = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'
    (bearer,) = parse_challenges(hub)
    assert (bearer.scheme, bearer.realm, bearer.service, bearer.scope) == (
        "bearer",
        "https://auth.docker.io/token",
        "registry.docker.io",
        "repository:library/alpine:pull",
    )
    (basic,) = parse_challenges('Basic realm="Registry Realm"')
    assert (basic.scheme, basic.realm) == ("basic", "Registry Realm")


def test_parse_challenges_with_escapes_commas_and_several_challenges() -> None:
    header = (
        'Newauth realm="apps", type=1, title="Login to \\"apps\\", please", Basic realm="simple", Negotiate abc+/=='
    )
    newauth, basic, negotiate = parse_challenges(header)
    assert newauth.scheme == "newauth"
    assert dict(newauth.params) == {"realm": "apps", "type": "1", "title": 'Login to "apps", please'}
    assert (basic.scheme, basic.realm) == ("basic", "simple")
    assert (negotiate.scheme, negotiate.token68) == ("negotiate", "abc+/==")
    assert [c.scheme for c in parse_challenges("Basic, Bearer REALM=x")] == ["basic", "bearer"]
    assert parse_challenges("Bearer REALM=x")[0].realm == "x"


@pytest.mark.parametrize(
    "header", ['Bearer realm="unterminated', "Bearer realm=a scope=b", '"quoted"', 'Bearer realm="x",,=y']
)
def test_parse_challenges_rejects(header: str) -> None:
    with pytest.raises(ValueError, match="WWW-Authenticate"):
        parse_challenges(header)


@given(st.text(alphabet=st.sampled_from('Bearer realm="\\,= \tx'), max_size=60) | st.text(max_size=40))
def test_parse_challenges_fails_only_with_value_error(header: str) -> None:
    with contextlib.suppress(ValueError):
        parse_challenges(header)


# --- stored credentials ---------------------------------------------------------------------


def _write_json(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_credentials_from_the_environment_come_first(tmp_path: Path) -> None:
    _write_json(tmp_path / ".docker" / "config.json", {"auths": {"r.example": {"auth": _b64("file:pw")}}})
    env = {"VIGIL_REGISTRY_USERNAME": "env", "VIGIL_REGISTRY_PASSWORD": "envpw"}
    assert find_credentials("r.example", env=env, home=tmp_path) == Credentials("env", "envpw")
    assert find_credentials("r.example", env={}, home=tmp_path) == Credentials("file", "pw")


def test_credentials_from_docker_config(tmp_path: Path) -> None:
    config = {
        "auths": {
            "https://r.example:5000/v2/": {"auth": _b64("alice:pa:ss")},
            "plain.example": {"username": "bob", "password": "pw"},
            "https://index.docker.io/v1/": {"auth": _b64("hubuser:hubpw")},
            "tokens.example": {"auth": _b64("<token>:"), "identitytoken": "refresh"},
            "store.example": {},
        },
        "credHelpers": {"helped.example": "ecr-login"},
    }
    env = {"DOCKER_CONFIG": str(tmp_path / "dockercfg")}
    _write_json(tmp_path / "dockercfg" / "config.json", config)
    _write_json(tmp_path / ".docker" / "config.json", {"auths": {"plain.example": {"auth": _b64("wrong:file")}}})

    assert find_credentials("r.example:5000", env=env, home=tmp_path) == Credentials("alice", "pa:ss")
    assert find_credentials("plain.example", env=env, home=tmp_path) == Credentials("bob", "pw")
    assert find_credentials(DOCKER_HUB, env=env, home=tmp_path) == Credentials("hubuser", "hubpw")
    assert find_credentials("tokens.example", env=env, home=tmp_path) == Credentials("<token>", "", "refresh")
    assert find_credentials("store.example", env=env, home=tmp_path) is None
    assert find_credentials("helped.example", env=env, home=tmp_path) is None
    assert find_credentials("r.example", env=env, home=tmp_path) is None  # the port is part of the key


def test_credentials_from_containers_auth_json(tmp_path: Path) -> None:
    auth_json = {"auths": {"q.example": {"auth": _b64("podman:pw")}, "q.example/team": {"auth": _b64("team:pw")}}}
    runtime = tmp_path / "run"
    _write_json(runtime / "containers" / "auth.json", auth_json)
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    assert find_credentials("q.example", env=env, home=tmp_path) == Credentials("podman", "pw")
    assert find_credentials("q.example", "team/app", env=env, home=tmp_path) == Credentials("team", "pw")
    hub = {"auths": {"docker.io": {"auth": _b64("hub:pw")}, "docker.io/library/alpine": {"auth": _b64("lib:pw")}}}
    hub_file = _write_json(tmp_path / "hub.json", hub)
    env = {"REGISTRY_AUTH_FILE": str(hub_file)}
    assert find_credentials(DOCKER_HUB, "library/alpine", env=env, home=tmp_path) == Credentials("lib", "pw")
    assert find_credentials(DOCKER_HUB, "team/app", env=env, home=tmp_path) == Credentials("hub", "pw")
    other = _write_json(tmp_path / "elsewhere.json", {"auths": {"q.example": {"username": "u", "password": "p"}}})
    assert find_credentials("q.example", env={"REGISTRY_AUTH_FILE": str(other)}, home=tmp_path) == Credentials("u", "p")


def test_unreadable_credential_files_say_which(tmp_path: Path) -> None:
    bad = tmp_path / ".docker" / "config.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=str(bad)):
        find_credentials("r.example", env={}, home=tmp_path)
    _write_json(bad, {"auths": {"r.example": {"auth": "!!!"}}})
    with pytest.raises(ValueError, match="base64"):
        find_credentials("r.example", env={}, home=tmp_path)


def test_credentials_repr_hides_secrets() -> None:
    assert "s3cret" not in repr(Credentials("alice", "s3cret", "tok3n"))
    assert "tok3n" not in repr(Credentials("alice", "s3cret", "tok3n"))
