"""Scan jobs against hostile images and failing registries end failed, with a reason a user can read.

Images are pushed raw (tests.support.push) into a real docker-registry; the
job is recorded the way a webhook records it and run in-process. After every
job the work dir is empty and nothing was written beside it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import socket
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from django.test import override_settings

from scans.choices import ScanState
from scans.engine.manifests import OCI_INDEX, OCI_MANIFEST
from scans.models import Registry, ScanJob
from scans.services.scanning import PushEvent, RetryLater, record_push, run_scan
from scans.tasks import analyze_image
from tests.support.flaky_proxy import FlakyProxy, flip_last_byte
from tests.support.images import Entry, F, H, L, oci_layout
from tests.support.push import layer_bytes, push_layout, replace_layer
from tests.support.registry import RunningRegistry, start_registry, tools_missing

pytestmark = pytest.mark.skipif(bool(tools_missing()), reason=tools_missing() or "tools present")

STATUS = "var/lib/dpkg/status"
OS_RELEASE = F("etc/os-release", "ID=debian\nVERSION_ID=12\n")
USER = ("vigil", "the-right-password")


def dpkg_entry(name: str, version: str) -> str:
    return f"Package: {name}\nStatus: install ok installed\nVersion: {version}\nArchitecture: amd64\n\n"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with start_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with start_registry(tmp_path_factory.mktemp("auth-registry"), htpasswd=USER) as running:
        yield running


@pytest.fixture
def layout(tmp_path: Path) -> Callable[..., Path]:
    """Build an OCI layout of the given layers in this test's tmp dir (outside the work dir)."""
    counter = iter(range(100))

    def build(*layers: list[Entry] | bytes, **options: Any) -> Path:
        return oci_layout(tmp_path / f"image-{next(counter)}", list(layers), **options)

    return build


@pytest.fixture
def run_job(make_registry: Callable[..., Registry], work_dir: Path) -> Callable[..., ScanJob]:
    """Record a push of `digest` to `url` (a Registry row) and run its scan job in-process."""

    def run(url: str, repository: str, digest: str, *, media_type: str = OCI_MANIFEST, **registry: Any) -> ScanJob:
        row = Registry.objects.filter(url=url).first() or make_registry(f"r{Registry.objects.count()}", url, **registry)
        job = record_push(row, PushEvent(repository, digest, "1.0", media_type))
        assert job is not None
        run_scan(job.id)
        job.refresh_from_db()
        return job

    return run


def assert_failed(job: ScanJob, *fragments: str) -> None:
    assert job.state == ScanState.FAILED, (job.state, job.reason)
    reason = job.reason
    assert reason
    assert "\n" not in reason
    assert "Traceback" not in reason
    assert not reason.startswith("internal error"), reason
    for fragment in fragments:
        assert fragment in reason, reason
    assert job.finished_at is not None


def assert_work_dir_clean(work_dir: Path) -> None:
    """The work dir is empty (or was never made) and nothing was written beside it."""
    if not work_dir.parent.exists():
        return
    assert list(work_dir.iterdir()) == []
    # An entry escaping the job's dir would land beside the work dir.
    assert list(work_dir.parent.iterdir()) == [work_dir]


# -- a good image, to show the harness works ---------------------------------------------------


def test_a_good_image_is_analysed_and_the_work_dir_emptied(registry, layout, run_job, work_dir):
    digest = push_layout(registry.url, "team/good", layout([F(STATUS, dpkg_entry("bash", "5.2")), OS_RELEASE]))
    job = run_job(registry.url, "team/good", digest)
    assert (job.state, job.reason) == (ScanState.DONE, "")
    assert [p.purl for p in job.image.packages.all()] == ["pkg:deb/debian/bash@5.2?arch=amd64&distro=debian-12"]
    assert job.attempts == 1
    assert_work_dir_clean(work_dir)


def test_an_index_is_analysed_for_the_configured_platform(registry, layout, run_job, work_dir, tmp_path):
    amd64 = layout([F(STATUS, dpkg_entry("amd", "1")), OS_RELEASE])
    arm64 = layout([F(STATUS, dpkg_entry("arm", "1")), OS_RELEASE], arch="arm64")
    index = _index_layout(tmp_path / "index", amd64, arm64)
    digest = push_layout(registry.url, "team/multi", index, tag="multi")
    job = run_job(registry.url, "team/multi", digest, media_type=OCI_INDEX)
    assert job.state == ScanState.DONE, job.reason
    assert [p.name for p in job.image.packages.all()] == ["amd"]
    assert (job.image.kind, job.image.platform) == ("index", "linux/amd64")
    assert_work_dir_clean(work_dir)


def _index_layout(dest: Path, *images: Path) -> Path:
    """One layout holding an OCI index of the given single-image layouts."""
    (dest / "blobs" / "sha256").mkdir(parents=True)
    entries = []
    for image in images:
        for blob in (image / "blobs" / "sha256").iterdir():
            shutil.copy(blob, dest / "blobs" / "sha256" / blob.name)
        (entry,) = json.loads((image / "index.json").read_text())["manifests"]
        entry.pop("annotations")
        entries.append(entry)
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    digest = hashlib.sha256(raw).hexdigest()
    (dest / "blobs" / "sha256" / digest).write_bytes(raw)
    top = {"mediaType": OCI_INDEX, "digest": f"sha256:{digest}", "size": len(raw)}
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return dest


# -- hostile content ------------------------------------------------------------------------------


def test_a_truncated_gzip_layer(registry, layout, run_job, work_dir):
    image = layout([F(STATUS, dpkg_entry("a", "1") * 50), OS_RELEASE])
    replace_layer(image, 0, layer_bytes(image)[:-40])  # named by the digest of the truncated bytes
    job = run_job(registry.url, "team/truncated", push_layout(registry.url, "team/truncated", image))
    assert_failed(job, "layer")
    assert_work_dir_clean(work_dir)


@pytest.mark.parametrize("name", ["../../etc/x", "a/../../../etc/x", "/../../etc/x"])
def test_path_traversal_entries(registry, layout, run_job, work_dir, name):
    image = layout([OS_RELEASE, F(name, "owned")])
    job = run_job(registry.url, "team/traversal", push_layout(registry.url, "team/traversal", image))
    assert_failed(job, "escapes the image root")
    assert_work_dir_clean(work_dir)
    assert not (work_dir.parent / "etc").exists()


def test_a_symlink_escaping_the_root(registry, layout, run_job, work_dir):
    image = layout([OS_RELEASE, L(STATUS, "../../../../etc/passwd")])
    job = run_job(registry.url, "team/symlink", push_layout(registry.url, "team/symlink", image))
    assert_failed(job, "escapes the image root")
    assert_work_dir_clean(work_dir)


def test_a_hard_link_escaping_the_root(registry, layout, run_job, work_dir):
    image = layout([OS_RELEASE, H(STATUS, "../../../../etc/passwd")])
    job = run_job(registry.url, "team/hardlink", push_layout(registry.url, "team/hardlink", image))
    assert_failed(job, "escapes the image root")
    assert_work_dir_clean(work_dir)


def test_a_gzip_bomb(registry, layout, run_job, work_dir, settings):
    settings.VIGIL_LIMITS = {**settings.VIGIL_LIMITS, "max_ratio": 20, "ratio_floor_bytes": 1 << 20}
    header = tarfile.TarInfo("bomb")
    header.size = 16 << 20
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as out:
        out.addfile(header, io.BytesIO(bytes(header.size)))
    image = layout(tar.getvalue())
    assert len(layer_bytes(image)) * 20 < header.size
    job = run_job(registry.url, "team/bomb", push_layout(registry.url, "team/bomb", image))
    assert_failed(job, "decompression bomb")
    assert_work_dir_clean(work_dir)


def test_too_many_entries(registry, layout, run_job, work_dir, settings):
    settings.VIGIL_LIMITS = {**settings.VIGIL_LIMITS, "max_entries": 50}
    image = layout([F(f"f{i}") for i in range(60)])
    job = run_job(registry.url, "team/entries", push_layout(registry.url, "team/entries", image))
    assert_failed(job, "more than 50 entries")
    assert_work_dir_clean(work_dir)


def test_an_unknown_layer_media_type(registry, layout, run_job, work_dir):
    image = layout([F("a", "1")], layer_media_type="application/x-mystery")
    job = run_job(registry.url, "team/mystery", push_layout(registry.url, "team/mystery", image))
    assert_failed(job, "application/x-mystery")
    assert_work_dir_clean(work_dir)


def test_a_layer_that_is_not_what_its_media_type_says(registry, layout, run_job, work_dir):
    image = layout([OS_RELEASE])
    replace_layer(image, 0, gzip.compress(b"this is not a tar archive at all" * 40))
    job = run_job(registry.url, "team/nottar", push_layout(registry.url, "team/nottar", image))
    assert_failed(job)
    assert_work_dir_clean(work_dir)


# -- registries that misbehave --------------------------------------------------------------------


def test_a_blob_that_does_not_match_its_digest(registry, layout, run_job, work_dir):
    digest = push_layout(registry.url, "team/tampered", layout([OS_RELEASE]))
    with FlakyProxy(upstream=registry.host, tamper=flip_last_byte) as proxy:
        job = run_job(proxy.url, "team/tampered", digest)
    assert_failed(job, "digest")
    assert_work_dir_clean(work_dir)


def test_an_unknown_digest(registry, layout, run_job, work_dir):
    push_layout(registry.url, "team/known", layout([OS_RELEASE]))
    job = run_job(registry.url, "team/known", "sha256:" + "ab" * 32)
    assert_failed(job, f"manifest team/known@sha256:{'ab' * 32} not found on {registry.host}")
    assert_work_dir_clean(work_dir)


def test_an_image_deleted_before_the_scan(registry, layout, run_job, work_dir):
    digest = push_layout(registry.url, "team/deleted", layout([OS_RELEASE]))
    deleted = requests.delete(f"{registry.url}/v2/team/deleted/manifests/{digest}", timeout=5)
    assert deleted.status_code == 202
    job = run_job(registry.url, "team/deleted", digest)
    assert_failed(job, "not found")
    assert_work_dir_clean(work_dir)


def test_an_unknown_repository(registry, run_job, work_dir):
    job = run_job(registry.url, "team/never-pushed", "sha256:" + "cd" * 32)
    assert_failed(job, "not found")
    assert_work_dir_clean(work_dir)


def test_a_registry_that_is_down_requeues_the_job(make_registry, work_dir):
    """Connection refused is passing trouble: the job goes back to the queue for the task to retry."""
    down = make_registry(url=_closed_port_url())
    job = record_push(down, PushEvent("team/app", "sha256:" + "ef" * 32, "1.0", OCI_MANIFEST))
    with pytest.raises(RetryLater, match="could not be reached"):
        run_scan(job.id)
    job.refresh_from_db()
    assert job.state == ScanState.QUEUED
    assert "could not be reached" in job.reason
    assert "\n" not in job.reason
    assert job.attempts == 1
    assert_work_dir_clean(work_dir)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def unavailable(registry: RunningRegistry) -> Iterator[FlakyProxy]:
    """A registry answering 503 with Retry-After: 0 (so the client's own retries do not sleep)."""
    with FlakyProxy(upstream=registry.host, fail_first=10**6, status=503, retry_after="0") as proxy:
        yield proxy


def test_the_task_gives_up_at_the_retry_cap(make_registry, unavailable, work_dir, settings):
    registry = make_registry(url=unavailable.url)
    job = record_push(registry, PushEvent("team/app", "sha256:" + "0f" * 32, "1.0", OCI_MANIFEST))
    result = analyze_image.apply(args=[job.id], retries=settings.VIGIL_SCAN_MAX_RETRIES)
    assert result.successful()
    job.refresh_from_db()
    assert_failed(job, "HTTP 503", f"(gave up after {settings.VIGIL_SCAN_MAX_RETRIES} retries)")
    assert job.attempts == 1
    assert_work_dir_clean(work_dir)


@pytest.fixture
def eager_retries() -> Iterator[None]:
    """Let apply() run a task's retries in turn, as a worker would, instead of raising the first Retry."""
    conf = analyze_image.app.conf
    saved, conf.task_eager_propagates = conf.task_eager_propagates, False
    yield
    conf.task_eager_propagates = saved


@pytest.mark.usefixtures("eager_retries")
def test_the_task_retries_until_the_cap_then_fails(make_registry, unavailable, work_dir, settings):
    settings.VIGIL_SCAN_MAX_RETRIES = 2
    registry = make_registry(url=unavailable.url)
    job = record_push(registry, PushEvent("team/app", "sha256:" + "0f" * 32, "1.0", OCI_MANIFEST))
    # Eager apply() runs each retry at once, in this process; the countdown is not waited for.
    analyze_image.apply(args=[job.id])
    job.refresh_from_db()
    assert_failed(job, "(gave up after 2 retries)")
    assert job.attempts == 3
    manifest_requests = unavailable.attempts("/manifests/")
    assert len(manifest_requests) == 3 * 5  # three runs, each with the client's five attempts


@pytest.mark.usefixtures("eager_retries")
def test_a_registry_that_recovers_before_the_cap(registry, layout, make_registry, work_dir):
    digest = push_layout(registry.url, "team/recovers", layout([F(STATUS, dpkg_entry("a", "1")), OS_RELEASE]))
    # Eleven failures: the first run's five attempts, the second's five, one of the third's.
    with FlakyProxy(upstream=registry.host, fail_first=11, status=503, retry_after="0") as proxy:
        row = make_registry(url=proxy.url)
        job = record_push(row, PushEvent("team/recovers", digest, "1.0", OCI_MANIFEST))
        analyze_image.apply(args=[job.id])
    job.refresh_from_db()
    assert (job.state, job.reason, job.attempts) == (ScanState.DONE, "", 3)
    assert_work_dir_clean(work_dir)


# -- credentials ---------------------------------------------------------------------------------


def test_a_wrong_stored_password(auth_registry, layout, run_job, work_dir):
    digest = push_layout(auth_registry.url, "team/private", layout([OS_RELEASE]), auth=USER)
    job = run_job(auth_registry.url, "team/private", digest, username="vigil", password="not-the-password")
    assert_failed(job, f"authentication failed for {auth_registry.host}")
    assert_work_dir_clean(work_dir)


def test_no_stored_credentials_for_a_private_registry(auth_registry, layout, run_job, work_dir):
    digest = push_layout(auth_registry.url, "team/private", layout([OS_RELEASE]), auth=USER)
    job = run_job(auth_registry.url, "team/private", digest)
    assert_failed(job, "authentication failed", "no credentials given")
    assert_work_dir_clean(work_dir)


def test_the_right_stored_password(auth_registry, layout, run_job, work_dir):
    image = layout([F(STATUS, dpkg_entry("a", "1")), OS_RELEASE])
    digest = push_layout(auth_registry.url, "team/private", image, auth=USER)
    job = run_job(auth_registry.url, "team/private", digest, username=USER[0], password=USER[1])
    assert job.state == ScanState.DONE, job.reason
    assert_work_dir_clean(work_dir)


def test_a_password_stored_under_another_key(auth_registry, make_registry, run_job, work_dir):
    with override_settings(VIGIL_CREDENTIALS_KEY=Fernet.generate_key().decode()):
        make_registry("stale", auth_registry.url, username="vigil", password=USER[1])
    job = run_job(auth_registry.url, "team/private", "sha256:" + "12" * 32)
    assert_failed(job, "registry stale", "cannot be decrypted")
    assert_work_dir_clean(work_dir)


def test_a_registry_url_the_client_refuses(make_registry, run_job, work_dir):
    make_registry("bad", "https://registry.example.com/some/path")
    job = run_job("https://registry.example.com/some/path", "team/app", "sha256:" + "34" * 32)
    assert_failed(job, "registry bad", "http(s)://host[:port]")
    assert_work_dir_clean(work_dir)
