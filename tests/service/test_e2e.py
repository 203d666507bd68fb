"""End to end on real parts.

Debian's docker-registry notifies the live test server; a real Celery
worker (Redis broker) pulls the pushed image, analyses it and writes the
inventory to PostgreSQL; the REST API returns it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.authtoken.models import Token

from scans.choices import ScanState
from scans.engine.targets import scan
from scans.models import Registry, ScanJob, Tag
from tests.conftest import corpus_file
from tests.support.registry import skopeo_push, start_registry, tools_missing

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(bool(tools_missing()), reason=tools_missing() or "tools present"),
]

SECRET = "e2e-webhook-secret-0123456789"
CELERY = str(Path(sys.executable).with_name("celery"))
REPO = Path(__file__).resolve().parents[2]


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Path]:
    """A real Celery worker on the suite's Redis broker and test database."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "VIGIL_WORK_DIR": str(tmp_path / "worker-work"),
    }
    base = [CELERY, "-A", "scanner_service"]
    # Messages left over from other tests must not reach this worker.
    subprocess.run([*base, "purge", "-f", "-Q", "scans,default"], env=env, cwd=REPO, check=True, capture_output=True)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*base, "worker", "-Q", "scans,default", "--pool=solo", "--loglevel=INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: b"ready." in log_path.read_bytes() or process.poll() is not None, 30, "the worker to start")
        assert process.poll() is None, log_path.read_text()
        yield log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def api(live_server) -> requests.Session:
    user = User.objects.create_user("viewer", password="unused-password")
    session = requests.Session()
    session.headers["Authorization"] = f"Token {Token.objects.create(user=user).key}"
    session.base_url = live_server.url  # type: ignore[attr-defined]
    return session


def finished_job(digest: str) -> ScanJob:
    done = (ScanState.DONE, ScanState.FAILED)
    return wait_for(
        lambda: ScanJob.objects.filter(image__digest=digest, state__in=done).first(), 90, f"the scan of {digest}"
    )


def run_push_to_report(tmp_path, live_server, worker_log, *, creds=None) -> None:
    archive = corpus_file("alpine311.docker.tar")
    with start_registry(
        tmp_path / "registry",
        htpasswd=creds,
        notify_url=f"{live_server.url}/webhooks/distribution/",
        notify_headers={"Authorization": f"Bearer {SECRET}"},
    ) as registry:
        row = Registry(name="local", url=registry.url, repositories=["corpus/*"])
        if creds:
            row.username, row.password = creds
        row.webhook_secret = SECRET
        row.save()

        digest = skopeo_push(f"docker-archive:{archive}", f"{registry.host}/corpus/alpine311:3.11", creds=creds)
        job = finished_job(digest)
        assert job.state == ScanState.DONE, f"{job.reason}\n{worker_log.read_text()[-3000:]}"

        session = api(live_server)
        listing = session.get(f"{live_server.url}/api/v1/images/", timeout=10).json()["results"]
        (image,) = [i for i in listing if i["digest"] == digest]
        assert image["scan_state"] == "done"
        assert [t["name"] for t in image["tags"]] == ["3.11"]
        assert image["os"]["id"] == "alpine"

        sbom = session.get(f"{live_server.url}/api/v1/images/{digest}/sbom?format=cyclonedx", timeout=10)
        assert sbom.status_code == 200, sbom.text
        served = sorted(c["purl"] for c in sbom.json()["components"] if c["type"] == "library")
        local = sorted(p.purl for p in scan(str(archive), workdir=tmp_path).packages)
        assert served == local
        assert len(served) == 14

        # The worker matched the stored inventory too: the report answers (empty database, said so).
        report = session.get(f"{live_server.url}/api/v1/images/{digest}/report", timeout=10)
        assert report.status_code == 200, report.text
        assert report.json()["scan"]["database"]["empty"] is True

        # The same digest pushed again under another tag: the tag is recorded, no second scan.
        skopeo_push(f"docker-archive:{archive}", f"{registry.host}/corpus/alpine311:latest", creds=creds)
        wait_for(lambda: Tag.objects.filter(name="latest", image__digest=digest).exists(), 30, "the second push")
        assert ScanJob.objects.filter(image__digest=digest).count() == 1
        # The worker's own pulls come back as notifications too; they are ignored.
        assert ScanJob.objects.count() == 1


def test_push_is_scanned_by_a_worker_into_postgres(tmp_path, live_server, worker):
    run_push_to_report(tmp_path, live_server, worker)


def test_push_to_a_registry_with_basic_auth(tmp_path, live_server, worker):
    run_push_to_report(tmp_path, live_server, worker, creds=("vigil", "registry-password"))
