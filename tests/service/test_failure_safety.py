"""Failure safety (issue 6): workers that die, webhooks twice or out of order, registries down,
poison and huge images, backpressure, and what the queue holds.

The end-to-end tests run on real parts: Debian's docker-registry notifying
the live test server, real Celery workers and beat (tests.support.worker) on
Redis, PostgreSQL. A worker is made slow with the test hook
VIGIL_TEST_SCAN_DELAY (seconds a scan sleeps between analysing and storing),
and killed or stopped while it sleeps. The other tests run jobs in-process
against a real registry.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from django.contrib.auth.models import User
from django.db.models import Count
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from advisories.findings import match_analysis
from advisories.sync import sync_feed
from scans.choices import STICKY_FAILURES, ScanFailure, ScanState
from scans.engine.manifests import OCI_MANIFEST
from scans.engine.targets import scan
from scans.models import Finding, Image, Package, Registry, ScanJob, Tag, TagEvent
from scans.services import backpressure, scanning
from scans.services.backpressure import RegistryBusy
from scans.services.scanning import PushEvent, record_push, run_scan
from scans.tasks import analyze_image, reap_stale_jobs, retry_countdown
from tests.advisories.test_sync import feed_path
from tests.conftest import corpus_file
from tests.support.images import F, oci_layout
from tests.support.push import push_layout
from tests.support.registry import RunningRegistry, skopeo_push, start_registry, tools_missing
from tests.support.worker import beat, celery_env, purge_queues, wait_for, worker

pytestmark = pytest.mark.skipif(bool(tools_missing()), reason=tools_missing() or "tools present")

SECRET = "failure-safety-webhook-secret-0123"
STATUS = "var/lib/dpkg/status"
OS_RELEASE = F("etc/os-release", "ID=debian\nVERSION_ID=12\n")
V1 = "application/vnd.docker.distribution.events.v1+json"


def dpkg_image(name: str) -> list:
    return [
        F(STATUS, f"Package: {name}\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\n"),
        OS_RELEASE,
    ]


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with start_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture
def registry(registry_server: RunningRegistry, make_registry: Callable[..., Registry]) -> Registry:
    return make_registry("local", registry_server.url, secret=SECRET, repositories=["team/*"])


@pytest.fixture
def push(registry_server: RunningRegistry, tmp_path: Path) -> Callable[..., str]:
    """Push a small dpkg image built from `name` to team/<repository>; returns its digest."""

    def push(repository: str, name: str = "bash") -> str:
        layout = oci_layout(tmp_path / f"{repository}-{name}", [dpkg_image(name)])
        return push_layout(registry_server.url, f"team/{repository}", layout)

    return push


@pytest.fixture
def slots() -> Iterator[redis.Redis]:
    """Redis of the test broker, with no registry slots left over before or after."""
    client = backpressure.redis_client()
    assert client is not None

    def clear() -> None:
        for key in client.scan_iter("vigil:registry-slots:*"):
            client.delete(key)

    clear()
    yield client
    clear()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float | None]]:
    """Messages the code sends for scan jobs: (job id, countdown), instead of publishing them."""
    messages: list[tuple[int, float | None]] = []
    monkeypatch.setattr(analyze_image, "delay", lambda job_id: messages.append((job_id, None)))
    monkeypatch.setattr(
        analyze_image, "apply_async", lambda args, countdown=None, **kw: messages.append((args[0], countdown))
    )
    return messages


def running_job(image_digest: str, *, lease: timedelta, lost: int = 0, registry: Registry | None = None) -> ScanJob:
    """A job some worker claimed; its lease runs out `lease` from now (negative: already out)."""
    image, _ = Image.objects.get_or_create(digest=image_digest)
    repository = registry.repository_set.get_or_create(name="team/app")[0] if registry else None
    return ScanJob.objects.create(
        image=image, repository=repository, reference=f"team/app@{image_digest}", state=ScanState.RUNNING,
        attempts=1, started_at=timezone.now() - timedelta(minutes=5), lease_owner="gone:4242:cafe",
        lease_expires_at=timezone.now() + lease, lost_workers=lost,
    )  # fmt: skip


def digest(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


# == the lease reaper ==============================================================================


@pytest.mark.django_db
def test_the_reaper_is_scheduled_every_minute_by_default():
    task = PeriodicTask.objects.get(name="Reap stale scan jobs")
    assert (task.task, task.queue, task.enabled) == ("scans.reap_stale_jobs", "default", True)
    assert (task.interval.every, task.interval.period) == (1, "minutes")


@pytest.mark.django_db
def test_the_reaper_requeues_a_job_whose_worker_stopped_renewing_its_lease(sent):
    dead = running_job(digest(1), lease=timedelta(seconds=-1))
    alive = running_job(digest(2), lease=timedelta(seconds=60))
    assert reap_stale_jobs() == {"requeued": [dead.id], "failed": [], "resent": []}
    assert sent == [(dead.id, None)]
    dead.refresh_from_db()
    assert (dead.state, dead.lost_workers, dead.lease_owner) == (ScanState.QUEUED, 1, "")
    assert dead.lease_expires_at > timezone.now() + timedelta(minutes=30)  # now the queued lease
    assert "stopped mid-scan" in dead.reason
    alive.refresh_from_db()
    assert (alive.state, alive.lost_workers, alive.lease_owner) == (ScanState.RUNNING, 0, "gone:4242:cafe")


@pytest.mark.django_db
def test_a_job_whose_worker_dies_too_often_fails_and_is_not_scanned_again(sent, settings, registry):
    settings.VIGIL_SCAN_MAX_LOST_WORKERS = 2
    job = running_job(digest(3), lease=timedelta(seconds=-1), lost=2, registry=registry)
    assert reap_stale_jobs() == {"requeued": [], "failed": [job.id], "resent": []}
    assert sent == []
    job.refresh_from_db()
    assert (job.state, job.failure, job.lost_workers) == (ScanState.FAILED, ScanFailure.WORKER_LOST, 3)
    assert "stopped 3 times" in job.reason
    assert f"/api/v1/scans/{job.id}/retry" in job.reason
    # A poison image that kills its workers never loops: its next push does not queue it again.
    assert record_push(registry, PushEvent("team/app", digest(3), "again", OCI_MANIFEST)) is None


@pytest.mark.django_db
def test_the_reaper_sends_again_a_queued_job_whose_message_was_lost(sent, registry):
    lost = record_push(registry, PushEvent("team/app", digest(4), "1", OCI_MANIFEST))
    waiting = record_push(registry, PushEvent("team/app", digest(5), "2", OCI_MANIFEST))
    ScanJob.objects.filter(id=lost.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert reap_stale_jobs() == {"requeued": [], "failed": [], "resent": [lost.id]}
    assert sent == [(lost.id, None)]
    lost.refresh_from_db()
    assert lost.state == ScanState.QUEUED
    assert lost.lease_expires_at > timezone.now()
    assert reap_stale_jobs()["resent"] == []  # not again until its new lease runs out
    waiting.refresh_from_db()
    assert waiting.state == ScanState.QUEUED


@pytest.mark.django_db
def test_jobs_from_before_leases_are_reaped_by_the_old_rules(sent, settings):
    old = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    running = running_job(digest(6), lease=timedelta(0))
    ScanJob.objects.filter(id=running.id).update(lease_expires_at=None, started_at=old)
    queued = ScanJob.objects.create(image=Image.objects.create(digest=digest(7)), reference="x")
    ScanJob.objects.filter(id=queued.id).update(created_at=old - timedelta(hours=1))
    fresh = ScanJob.objects.create(image=Image.objects.create(digest=digest(8)), reference="y")
    ScanJob.objects.filter(id=fresh.id).update(lease_expires_at=None)
    assert reap_stale_jobs() == {"requeued": [running.id], "failed": [], "resent": [queued.id]}


@pytest.mark.django_db
def test_a_redelivered_message_for_a_dead_workers_job_runs_it_once(registry, push, work_dir, slots):
    """acks_late: the broker hands a dead worker's message out again; it may come before the reaper."""
    image_digest = push("redelivered")
    job = record_push(registry, PushEvent("team/redelivered", image_digest, "1.0", OCI_MANIFEST))
    ScanJob.objects.filter(id=job.id).update(
        state=ScanState.RUNNING, attempts=1, lease_owner="gone:1:dead", lease_expires_at=timezone.now()
    )
    run_scan(job.id)
    job.refresh_from_db()
    assert (job.state, job.attempts, job.lost_workers, job.lease_owner) == (ScanState.DONE, 2, 1, "")
    assert job.lease_expires_at is None
    assert job.image.packages.count() == 1
    run_scan(job.id)  # the reaper's message arriving afterwards: nothing to do
    job.refresh_from_db()
    assert (job.state, job.attempts) == (ScanState.DONE, 2)


@pytest.mark.django_db
def test_a_worker_that_lost_its_lease_stores_nothing(registry, push, work_dir, tmp_path):
    """The fence: a stalled worker whose job another worker took over cannot write its results."""
    image_digest = push("fenced")
    job = record_push(registry, PushEvent("team/fenced", image_digest, "1.0", OCI_MANIFEST))
    assert scanning.claim(job.id, "first:1:aaaa") is not None
    (tmp_path / "work").mkdir()
    analysis = scan(f"oci:{tmp_path / 'fenced-bash'}", workdir=tmp_path / "work")
    ScanJob.objects.filter(id=job.id).update(lease_owner="second:2:bbbb")  # reaped and claimed again
    assert not scanning.store_results(job, "first:1:aaaa", analysis)
    job.refresh_from_db()
    assert (job.state, job.lease_owner) == (ScanState.RUNNING, "second:2:bbbb")
    assert Package.objects.count() == 0
    scanning.fail_job(job.id, "late failure", owner="first:1:aaaa")  # fenced the same way
    job.refresh_from_db()
    assert job.state == ScanState.RUNNING
    assert scanning.store_results(job, "second:2:bbbb", analysis)
    job.refresh_from_db()
    assert job.state == ScanState.DONE
    assert Package.objects.count() == 1


# == duplicate and out-of-order webhooks ===========================================================


def event(image_digest: str, tag: str, timestamp: str | None) -> dict[str, Any]:
    target = {"mediaType": OCI_MANIFEST, "size": 525, "digest": image_digest, "repository": "team/app", "tag": tag}
    body: dict[str, Any] = {"id": f"e-{image_digest[-6:]}-{tag}", "action": "push", "target": target}
    if timestamp is not None:
        body["timestamp"] = timestamp
    return body


def deliver(client: Client, *events: dict[str, Any]) -> dict[str, int]:
    response = client.post(
        "/webhooks/distribution/", json.dumps({"events": list(events)}), content_type=V1,
        HTTP_AUTHORIZATION=f"Bearer {SECRET}",
    )  # fmt: skip
    assert response.status_code == 202, response.content
    return response.json()


def tag_target() -> str:
    return Tag.objects.get(repository__name="team/app", name="1.0").image.digest


@pytest.mark.django_db
def test_an_older_push_arriving_late_does_not_move_the_tag_back(client, registry):
    old, new = digest(0x10), digest(0x11)
    deliver(client, event(new, "1.0", "2026-11-27T10:00:02.000000001Z"))
    result = deliver(client, event(old, "1.0", "2026-11-27T10:00:01.999999999Z"))
    assert tag_target() == new
    assert list(TagEvent.objects.values_list("image__digest", flat=True)) == [new]
    # The older digest was pushed all the same: it is recorded and scanned.
    assert result["queued"] == 1
    assert ScanJob.objects.filter(image__digest=old).count() == 1


@pytest.mark.django_db
def test_a_digest_pushed_again_later_keeps_the_tag_against_an_older_push_in_between(client, registry):
    a, b = digest(0x12), digest(0x13)
    deliver(client, event(a, "1.0", "2026-11-27T10:00:01Z"))
    deliver(client, event(a, "1.0", "2026-11-27T10:00:03Z"))  # a again, after b
    deliver(client, event(b, "1.0", "2026-11-27T10:00:02Z"))  # b's notification comes last
    assert tag_target() == a
    assert Tag.objects.get(name="1.0").pushed_at == datetime(2026, 11, 27, 10, 0, 3, tzinfo=UTC)


@pytest.mark.django_db
def test_pushes_in_order_move_the_tag_and_keep_its_history(client, registry):
    a, b = digest(0x14), digest(0x15)
    deliver(client, event(a, "1.0", "2026-11-27T10:00:01+00:00"), event(b, "1.0", "2026-11-27T10:00:05Z"))
    assert tag_target() == b
    # 11:00:01+01:00 is 10:00:01Z: older than b's push, whatever the offset says.
    deliver(client, event(a, "1.0", "2026-11-27T11:00:01+01:00"))
    assert tag_target() == b
    # The same time: no order to go by, so arrival decides.
    deliver(client, event(a, "1.0", "2026-11-27T10:00:05Z"))
    assert tag_target() == a
    assert sorted(TagEvent.objects.values_list("image__digest", flat=True)) == [a, a, b]


@pytest.mark.parametrize("timestamp", [None, "yesterday", "2026-11-27T10:00:00", "0001-01-01T00:00:00+14:00"])
@pytest.mark.django_db
def test_an_event_without_a_usable_time_moves_the_tag_as_it_arrives(client, registry, timestamp):
    a, b = digest(0x16), digest(0x17)
    deliver(client, event(a, "1.0", "2026-11-27T10:00:05Z"))
    deliver(client, event(b, "1.0", timestamp))
    assert tag_target() == b


@pytest.mark.django_db
def test_the_same_event_twice_in_one_delivery_queues_one_scan(client, registry):
    push_event = event(digest(0x18), "1.0", "2026-11-27T10:00:00Z")
    assert deliver(client, push_event, push_event) == {"queued": 1, "already_known": 1, "ignored": 0}
    assert ScanJob.objects.count() == 1
    assert TagEvent.objects.count() == 1


def post_at_once(url: str, body: str, copies: int) -> list[requests.Response]:
    """POST `body` from `copies` threads released together."""
    barrier = threading.Barrier(copies)

    def post(_: int) -> requests.Response:
        barrier.wait(timeout=10)
        headers = {"Content-Type": V1, "Authorization": f"Bearer {SECRET}"}
        return requests.post(url, data=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=copies) as pool:
        return list(pool.map(post, range(copies)))


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_concurrently_queues_one_scan(live_server, registry, tmp_path):
    """Registries deliver at least once, and retry on a timeout while the first delivery is still running."""
    copies, rounds = 4, 5
    try:
        for n in range(rounds):
            body = json.dumps({"events": [event(digest(0x20 + n), f"r{n}", "2026-11-27T10:00:00Z")]})
            answers = post_at_once(f"{live_server.url}/webhooks/distribution/", body, copies)
            assert [a.status_code for a in answers] == [202] * copies, [a.text for a in answers]
            assert sum(a.json()["queued"] for a in answers) == 1
            assert sum(a.json()["already_known"] for a in answers) == copies - 1
        per_image = dict(ScanJob.objects.values_list("image__digest").annotate(n=Count("id")))
        assert per_image == {digest(0x20 + n): 1 for n in range(rounds)}
        assert TagEvent.objects.count() == rounds
        assert Image.objects.count() == rounds
    finally:
        purge_queues(celery_env(tmp_path))  # the live server published each new job; no worker takes them here


# == registry down, poison images, retry ===========================================================


def test_retries_back_off_exponentially_up_to_a_cap(settings):
    settings.VIGIL_SCAN_RETRY_BACKOFF, settings.VIGIL_SCAN_RETRY_BACKOFF_MAX = 10, 600
    assert [retry_countdown(n) for n in range(8)] == [10, 20, 40, 80, 160, 320, 600, 600]


@pytest.mark.django_db
def test_a_registry_down_past_the_retry_cap_fails_with_a_reason_and_the_next_push_tries_again(
    make_registry, work_dir, settings, sent
):
    down = make_registry("down", f"http://127.0.0.1:{_closed_port()}")
    job = record_push(down, PushEvent("team/app", digest(0x30), "1.0", OCI_MANIFEST))
    result = analyze_image.apply(args=[job.id], retries=settings.VIGIL_SCAN_MAX_RETRIES)
    assert result.successful()
    job.refresh_from_db()
    assert (job.state, job.failure) == (ScanState.FAILED, ScanFailure.REGISTRY)
    assert "could not be reached" in job.reason
    assert f"gave up after {settings.VIGIL_SCAN_MAX_RETRIES} retries" in job.reason
    assert sent == []
    # Registry trouble is not the image's fault: the next push scans it.
    assert record_push(down, PushEvent("team/app", digest(0x30), "1.1", OCI_MANIFEST)) is not None


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.django_db
def test_a_poison_image_fails_once_and_repeated_pushes_do_not_rescan_it(
    registry, registry_server, tmp_path, work_dir, sent
):
    layout = oci_layout(tmp_path / "poison", [[OS_RELEASE, F("../../etc/x", "owned")]])
    image_digest = push_layout(registry_server.url, "team/poison", layout)
    job = record_push(registry, PushEvent("team/poison", image_digest, "1.0", OCI_MANIFEST))
    assert analyze_image.apply(args=[job.id]).successful()
    job.refresh_from_db()
    assert (job.state, job.failure, job.attempts) == (ScanState.FAILED, ScanFailure.IMAGE, 1)
    assert "escapes the image root" in job.reason
    assert sent == []  # no retry: the task does not come back by itself
    for tag in ("1.0", "1.1", "latest"):
        assert record_push(registry, PushEvent("team/poison", image_digest, tag, OCI_MANIFEST)) is None
    assert ScanJob.objects.filter(image__digest=image_digest).count() == 1
    assert Tag.objects.filter(image__digest=image_digest).count() == 3  # the tags are still recorded
    # Forced, it is scanned again (and fails again, the same way).
    forced = record_push(registry, PushEvent("team/poison", image_digest, "1.0", OCI_MANIFEST), force=True)
    assert forced is not None
    assert forced.force


@pytest.mark.parametrize("failure", [*STICKY_FAILURES, ScanFailure.REGISTRY, ""])
@pytest.mark.django_db
def test_which_failures_stick_to_the_digest(registry, failure):
    image = Image.objects.create(digest=digest(0x31))
    ScanJob.objects.create(image=image, reference="x", state=ScanState.FAILED, failure=failure, reason="r")
    job = record_push(registry, PushEvent("team/app", image.digest, "1.0", OCI_MANIFEST))
    assert (job is None) == (failure in STICKY_FAILURES)


@pytest.fixture
def admin_api() -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_superuser("ops", password="unused-password"))
    return client


@pytest.mark.django_db
def test_retry_over_the_api_queues_a_forced_scan_of_a_failed_job(
    admin_api, registry, django_capture_on_commit_callbacks
):
    image = Image.objects.create(digest=digest(0x32))
    repository = registry.repository_set.create(name="team/app")
    failed = ScanJob.objects.create(
        image=image, repository=repository, reference="team/app@x", state=ScanState.FAILED,
        failure=ScanFailure.IMAGE, reason="bad layer",
    )  # fmt: skip
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_api.post(f"/api/v1/scans/{failed.id}/retry")
    assert response.status_code == 202, response.content
    new = ScanJob.objects.get(id=response.json()["id"])
    assert (new.state, new.force, new.image_id, new.repository_id) == (ScanState.QUEUED, True, image.id, repository.id)
    assert len(callbacks) == 1  # the new job is sent to the workers once committed
    failed.refresh_from_db()
    assert (failed.state, failed.reason) == (ScanState.FAILED, "bad layer")  # kept as history
    # Asked again while the retry is queued: that job, not another.
    again = admin_api.post(f"/api/v1/scans/{failed.id}/retry")
    assert (again.status_code, again.json()["id"]) == (200, new.id)
    # Only a failed job can be retried.
    conflict = admin_api.post(f"/api/v1/scans/{new.id}/retry")
    assert conflict.status_code == 409
    assert "only a failed scan" in conflict.json()["detail"]
    assert admin_api.post("/api/v1/scans/999999/retry").status_code == 404


@pytest.mark.django_db
def test_the_admin_retry_action(client, registry, django_capture_on_commit_callbacks):
    client.force_login(User.objects.create_superuser("ops", password="unused-password"))
    repository = registry.repository_set.create(name="team/app")
    failed = ScanJob.objects.create(
        image=Image.objects.create(digest=digest(0x33)), repository=repository, reference="r",
        state=ScanState.FAILED, failure=ScanFailure.TIMEOUT,
    )  # fmt: skip
    done = ScanJob.objects.create(
        image=Image.objects.create(digest=digest(0x34)), repository=repository, reference="r", state=ScanState.DONE
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/admin/scans/scanjob/",
            {"action": "retry", "_selected_action": [failed.id, done.id]},
            follow=True,
        )
    assert response.status_code == 200
    assert "1 scan(s) queued again; 1 not failed, left alone." in response.content.decode()
    assert ScanJob.objects.filter(image=failed.image, state=ScanState.QUEUED, force=True).count() == 1
    assert ScanJob.objects.filter(image=done.image).count() == 1
    assert len(callbacks) == 1


# == huge images: per-size time limits =============================================================


def test_the_time_limit_grows_with_the_compressed_size_up_to_the_soft_limit(settings):
    settings.VIGIL_SCAN_TIME_BASE, settings.VIGIL_SCAN_TIME_PER_GB = 60, 120
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 1800
    gib = 1 << 30
    assert scanning.time_limit_for(0) == 60
    assert scanning.time_limit_for(1) == 61  # rounded up
    assert scanning.time_limit_for(gib // 2) == 120
    assert scanning.time_limit_for(4 * gib) == 540
    assert scanning.time_limit_for(100 * gib) == 1800
    settings.VIGIL_SCAN_TIME_BASE, settings.VIGIL_SCAN_TIME_PER_GB = 0, 0
    assert scanning.time_limit_for(gib) == 1


@pytest.mark.django_db
def test_a_scan_over_its_time_limit_fails_with_the_reason_and_leaves_nothing(
    registry, registry_server, tmp_path, work_dir, settings, sent
):
    settings.VIGIL_SCAN_TIME_BASE, settings.VIGIL_SCAN_TIME_PER_GB = 0, 0  # a limit of 1 s
    settings.VIGIL_TEST_SCAN_DELAY = 30  # and a scan that would take 30
    layout = oci_layout(tmp_path / "slow", [dpkg_image("slow")])
    image_digest = push_layout(registry_server.url, "team/slow", layout)
    job = record_push(registry, PushEvent("team/slow", image_digest, "1.0", OCI_MANIFEST))
    started = timezone.now()
    assert analyze_image.apply(args=[job.id]).successful()
    assert timezone.now() - started < timedelta(seconds=10)
    job.refresh_from_db()
    assert (job.state, job.failure, job.time_limit) == (ScanState.FAILED, ScanFailure.TIMEOUT, 1)
    manifest = json.loads((layout / "blobs/sha256" / image_digest.removeprefix("sha256:")).read_bytes())
    assert job.image_size == manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    assert job.reason.startswith("the analysis took longer than its 1 s limit (image 0.00 GiB)")
    assert job.image.packages.count() == 0
    assert list(work_dir.iterdir()) == []
    assert sent == []  # not retried: it would time out again
    assert record_push(registry, PushEvent("team/slow", image_digest, "2.0", OCI_MANIFEST)) is None


# == backpressure ==================================================================================


@pytest.mark.django_db
def test_a_registry_at_its_limit_keeps_the_job_queued_and_the_task_comes_back(
    registry, push, work_dir, settings, slots, sent
):
    settings.VIGIL_REGISTRY_CONCURRENCY = 1
    settings.VIGIL_REGISTRY_BUSY_COUNTDOWN = 4
    image_digest = push("busy")
    job = record_push(registry, PushEvent("team/busy", image_digest, "1.0", OCI_MANIFEST))
    other = backpressure.try_acquire(registry, "another-worker")
    assert other is not None
    with pytest.raises(RegistryBusy, match="already has 1 scans running"):
        run_scan(job.id)
    ScanJob.objects.filter(id=job.id).update(lease_expires_at=timezone.now())
    assert analyze_image.apply(args=[job.id]).successful()
    ((sent_id, countdown),) = sent
    assert sent_id == job.id
    assert 4 <= countdown <= 6
    job.refresh_from_db()
    assert (job.state, job.attempts) == (ScanState.QUEUED, 0)  # never claimed, and no retry spent
    assert job.lease_expires_at > timezone.now() + timedelta(minutes=30)  # the reaper leaves it to the task
    other.release()
    run_scan(job.id)
    job.refresh_from_db()
    assert job.state == ScanState.DONE
    assert backpressure.slots_in_use(registry) == 0


@pytest.mark.django_db
def test_slot_limits_per_registry_and_expiry(registry, make_registry, settings, slots):
    settings.VIGIL_REGISTRY_CONCURRENCY = 2
    settings.VIGIL_REGISTRY_CONCURRENCY_OVERRIDES = {"other": 1}
    other = make_registry("other", "http://127.0.0.1:1")
    held = [backpressure.try_acquire(registry, f"w{n}") for n in range(2)]
    with pytest.raises(RegistryBusy):
        backpressure.try_acquire(registry, "w3")
    assert backpressure.try_acquire(registry, "w1") is not None  # a holder asking again keeps its slot
    assert backpressure.try_acquire(other, "w1") is not None  # each registry has its own
    with pytest.raises(RegistryBusy):
        backpressure.try_acquire(other, "w2")
    # A worker that died leaves its slot behind; it expires with its lease.
    slots.zadd(held[0].key, {"w0": 0})
    assert backpressure.try_acquire(registry, "w3") is not None
    assert backpressure.slots_in_use(registry) == 2
    settings.VIGIL_REGISTRY_CONCURRENCY = 0  # no limit
    assert backpressure.try_acquire(registry, "w9") is None


@pytest.mark.django_db
def test_the_queue_view_counts_jobs_per_registry_and_the_broker_backlog(admin_api, registry, make_registry, slots):
    make_registry("other", "http://127.0.0.1:1")
    states = {ScanState.QUEUED: 3, ScanState.RUNNING: 1, ScanState.FAILED: 2, ScanState.DONE: 4}
    n = 0x40
    for state, count in states.items():
        for _ in range(count):
            repository = registry.repository_set.get_or_create(name="team/app")[0]
            ScanJob.objects.create(image=Image.objects.create(digest=digest(n)), repository=repository,
                                   reference="r", state=state)  # fmt: skip
            n += 1
    ScanJob.objects.create(image=Image.objects.create(digest=digest(n)), reference="sbom", state=ScanState.DONE)
    backpressure.try_acquire(registry, "w1")
    slots.delete("scans", "default")
    for job_id in (1, 2, 3):
        analyze_image.apply_async((10**9 + job_id,))  # published to the broker, never consumed here
    try:
        body = admin_api.get("/api/v1/queue/").json()
        assert body["jobs"] == {"queued": 3, "running": 1, "done": 5, "failed": 2}
        assert body["registries"] == [
            {"registry": "local", "jobs": {"queued": 3, "running": 1, "done": 4, "failed": 2}, "limit": 4,
             "running_slots": 1},
            {"registry": "other", "jobs": {"queued": 0, "running": 0, "done": 0, "failed": 0}, "limit": 4,
             "running_slots": 0},
        ]  # fmt: skip
        assert body["without_registry"] == {"queued": 0, "running": 0, "done": 1, "failed": 0}
        assert body["broker"] == {"scans": 3, "default": 0}
        assert slots.llen("scans") == 3
    finally:
        slots.delete("scans", "default")


@pytest.mark.django_db
def test_the_admin_shows_the_backlog(client, registry, slots):
    client.force_login(User.objects.create_superuser("ops", password="unused-password"))
    repository = registry.repository_set.create(name="team/app")
    ScanJob.objects.create(image=Image.objects.create(digest=digest(0x60)), repository=repository, reference="r")
    page = client.get("/admin/scans/scanjob/").content.decode()
    assert 'id="scan-backlog"' in page
    assert "<td>local</td><td>1</td><td>0</td><td>0</td><td>0</td>" in page
    assert "<code>scans</code>" in page
    filtered = client.get("/admin/scans/scanjob/", {"repository__registry__id__exact": registry.id})
    assert filtered.status_code == 200


# == end to end: workers killed and stalled mid-scan ===============================================


@pytest.fixture
def alpine_feed() -> None:
    run = sync_feed("alpine-secdb", str(feed_path("alpine-secdb/yaml")))
    assert run.state == "succeeded", run.error


@pytest.fixture
def notifying_registry(tmp_path: Path, live_server: Any) -> Iterator[RunningRegistry]:
    with start_registry(
        tmp_path / "registry",
        notify_url=f"{live_server.url}/webhooks/distribution/",
        notify_headers={"Authorization": f"Bearer {SECRET}"},
    ) as running:
        row = Registry(name="local", url=running.url, repositories=["corpus/*"])
        row.webhook_secret = SECRET
        row.save()
        yield running


@pytest.fixture
def reaper_every_second() -> None:
    """The migration's schedule, at a pace a test can wait for (a transactional test flushed the original)."""
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name="Reap stale scan jobs",
        defaults={"task": "scans.reap_stale_jobs", "interval": every_second, "queue": "default"},
    )


def expected_findings(archive: Path, tmp_path: Path) -> int:
    """Findings of the image analysed here, in-process, against the same advisory database."""
    (tmp_path / "local").mkdir(exist_ok=True)
    report = match_analysis(scan(str(archive), workdir=tmp_path / "local"))
    return len(report.findings)


def assert_stored_once(job: ScanJob, *, packages: int, findings: int) -> None:
    assert Package.objects.filter(image=job.image).count() == packages
    assert Package.objects.filter(image=job.image).values("purl", "path").distinct().count() == packages
    assert Finding.objects.filter(scan=job).count() == findings
    assert Finding.objects.values("vulnerability_id", "purl", "path").distinct().count() == findings
    assert Finding.objects.count() == findings  # no findings under any other job


def running_under(image_digest: str, owner_part: str = "") -> ScanJob:
    """The job of `image_digest` once it runs under a lease its worker has renewed at least once."""
    first = wait_for(
        lambda: (
            ScanJob.objects.filter(image__digest=image_digest, state=ScanState.RUNNING).exclude(lease_owner="").first()
        ),
        60,
        "a worker to claim the job",
    )
    wait_for(
        lambda: ScanJob.objects.filter(id=first.id, lease_expires_at__gt=first.lease_expires_at).exists(),
        10,
        "the worker to renew its lease",
    )
    first.refresh_from_db()
    assert owner_part in first.lease_owner
    return first


# alpine 3.7.3: 13 packages, and findings from the v3.7 secdb (its musl is fixed later).
E2E_IMAGE, E2E_PACKAGES = "alpine37.docker.tar", 13
E2E_LEASE = "3"  # seconds: renewed every second, expired 3 s after a worker dies


def push_e2e_image(registry: RunningRegistry) -> str:
    return skopeo_push(f"docker-archive:{corpus_file(E2E_IMAGE)}", f"{registry.host}/corpus/alpine:3.7")


def settled(job_id: int, what: str) -> ScanJob:
    """The job once it is done or failed, waiting up to a minute."""
    finished = ScanJob.objects.filter(id=job_id, state__in=(ScanState.DONE, ScanState.FAILED))
    return wait_for(finished.first, 60, what)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_scan_is_replaced_and_the_scan_completes_once(
    tmp_path, live_server, notifying_registry, alpine_feed, reaper_every_second
):
    archive = corpus_file(E2E_IMAGE)
    env = celery_env(tmp_path / "work", VIGIL_SCAN_LEASE_SECONDS=E2E_LEASE)
    purge_queues(env)
    with worker("doomed", {**env, "VIGIL_TEST_SCAN_DELAY": "120"}, tmp_path) as doomed:
        image_digest = push_e2e_image(notifying_registry)
        job = running_under(image_digest, f":{doomed.pid}:")
        doomed.signal(signal.SIGKILL)
        doomed.process.wait(timeout=10)
    assert Package.objects.count() == 0  # it died before storing anything
    # Its lease runs out; beat runs the reaper, which queues the job again for the second worker.
    with beat(env, tmp_path), worker("rescuer", env, tmp_path) as rescuer:
        done = settled(job.id, "the second worker to finish the scan")
        assert done.state == ScanState.DONE, f"{done.reason}\n{rescuer.log()[-3000:]}"
    assert (done.attempts, done.lost_workers, done.lease_owner, done.reason) == (2, 1, "", "")
    assert ScanJob.objects.filter(image__digest=image_digest).count() == 1
    assert_stored_once(done, packages=E2E_PACKAGES, findings=expected_findings(archive, tmp_path))
    assert Finding.objects.count() > 0


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_stalled_worker_that_wakes_after_losing_its_lease_writes_nothing(
    tmp_path, live_server, notifying_registry, alpine_feed, reaper_every_second
):
    """A worker paused past its lease (SIGSTOP: a frozen VM, a long GC) loses the job and, resumed, its results."""
    archive = corpus_file(E2E_IMAGE)
    env = celery_env(tmp_path / "work", VIGIL_SCAN_LEASE_SECONDS=E2E_LEASE)
    purge_queues(env)
    with worker("stalled", {**env, "VIGIL_TEST_SCAN_DELAY": "4"}, tmp_path) as stalled:
        image_digest = push_e2e_image(notifying_registry)
        job = running_under(image_digest, f":{stalled.pid}:")
        stalled.signal(signal.SIGSTOP)
        with beat(env, tmp_path), worker("rescuer", env, tmp_path) as rescuer:
            done = settled(job.id, "the second worker to finish the scan")
            assert done.state == ScanState.DONE, f"{done.reason}\n{rescuer.log()[-3000:]}"
            finished_at = done.finished_at
            stalled.signal(signal.SIGCONT)
            wait_for(lambda: "results dropped" in stalled.log(), 30, "the stalled worker to give up its results")
    done.refresh_from_db()
    assert (done.state, done.attempts, done.lost_workers, done.finished_at) == (ScanState.DONE, 2, 1, finished_at)
    assert ScanJob.objects.filter(image__digest=image_digest).count() == 1
    assert_stored_once(done, packages=E2E_PACKAGES, findings=expected_findings(archive, tmp_path))


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_pool_child_killed_mid_scan_is_rerun_by_its_own_worker(
    tmp_path, live_server, notifying_registry, reaper_every_second
):
    """The out-of-memory case: the kernel kills the pool process, the worker lives on and runs the job again."""
    env = celery_env(tmp_path / "work", VIGIL_SCAN_LEASE_SECONDS=E2E_LEASE)
    purge_queues(env)
    with worker("prefork", {**env, "VIGIL_TEST_SCAN_DELAY": "5"}, tmp_path, pool="prefork") as prefork:
        image_digest = push_e2e_image(notifying_registry)
        job = running_under(image_digest)
        child = int(job.lease_owner.split(":")[1])  # host:pid:token of the pool process scanning
        assert child != prefork.pid
        os.kill(child, signal.SIGKILL)
        with beat(env, tmp_path):
            done = settled(job.id, "the worker's next pool process to finish the scan")
        assert done.state == ScanState.DONE, f"{done.reason}\n{prefork.log()[-3000:]}"
    assert (done.attempts, done.lost_workers) == (2, 1)
    assert Package.objects.filter(image=done.image).count() == E2E_PACKAGES
