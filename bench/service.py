"""The service end to end: push-to-report latency and the scans per minute one worker sustains.

    .venv/bin/python bench/service.py [--pushes 5] [--burst 10]

Real parts only: Debian's docker-registry notifies gunicorn running Vigil,
which queues on Redis (BENCH_SERVICE_BROKER_URL, default database 13) for one
Celery worker process (prefork, concurrency 1); PostgreSQL holds everything
(BENCH_SERVICE_DATABASE_URL, default vigil_bench_service, with the
debian-tracker and osv-pypi feeds).

Each push is ../shared/corpus/debian12-app.docker.tar under a new tag, with
a label of its own in the image config so that its digest is new and it is
really scanned (the same digest under a second tag is recorded, not scanned
again). The layers are uploaded once; every scan still pulls them all.

- latency: `skopeo copy` returning (the manifest is in the registry) to the
  report answering at GET /api/v1/images/{digest}/report, pushes one at a
  time; p50 and max over --pushes.
- throughput: --burst pushes back to back, then scans per minute from the
  first job's start to the last job's end (the worker's sustained rate) and
  from the first push to the last report (what a user sees).

Baseline, measured in the same run: `scan` of the same archive in-process
with matching against the same database (bench/scan.py's "scan"), the work
a worker cannot avoid. Ratios are latency / baseline and
baseline rate / sustained rate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scratch_db  # noqa: E402

IMAGE = SHARED / "corpus" / "debian12-app.docker.tar"
FEEDS = [
    ("debian-tracker", "feeds/debian-tracker-derived/bookworm.json"),
    ("osv", "feeds/osv-pypi/pypa-advisory-database-vulns.tar.gz"),
]
REPOSITORY = "bench/app"


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _read(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def make_variants(layout: Path, count: int, run_id: str) -> list[str]:
    """Tags of `count` images in the OCI layout, each debian12-app with its own config label."""
    subprocess.run(["skopeo", "copy", "--quiet", f"docker-archive:{IMAGE}", f"oci:{layout}:base"], check=True)
    index = json.loads((layout / "index.json").read_text())
    base = next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "base")
    manifest = json.loads(_read(layout, base["digest"]))
    config = json.loads(_read(layout, manifest["config"]["digest"]))
    tags = []
    for number in range(count):
        tag = f"{run_id}-{number}"
        config.setdefault("config", {}).setdefault("Labels", {})["vigil.bench"] = tag
        manifest["config"] = {**manifest["config"], **_blob(layout, json.dumps(config).encode())}
        descriptor = {"mediaType": base["mediaType"], **_blob(layout, json.dumps(manifest).encode())}
        index["manifests"].append({**descriptor, "annotations": {"org.opencontainers.image.ref.name": tag}})
        tags.append(tag)
    (layout / "index.json").write_text(json.dumps(index))
    return tags


def push(layout: Path, tag: str, registry_host: str) -> str:
    digest_file = layout.parent / f"{tag}.digest"
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--digestfile", str(digest_file),
         f"oci:{layout}:{tag}", f"docker://{registry_host}/{REPOSITORY}:{tag}"],
        check=True,
    )  # fmt: skip
    return digest_file.read_text().strip()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(command: list[str], env: dict[str, str], log: Path, ready: Any) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        deadline = time.monotonic() + 60
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Service:
    """Vigil's web and one worker, a registry notifying the web, and an API session to read reports."""

    web: str
    registry_host: str
    layout: Path
    api: Any
    worker_log: Path

    def push(self, tag: str) -> str:
        return push(self.layout, tag, self.registry_host)

    def wait_report(self, digest: str, timeout: float = 300) -> float:
        """perf_counter() when the image's report first answers (404 until it has a completed scan).

        Until the job is done, its row is watched in the database: polling the API as often would
        spend the CPU that the worker is measured on (every request runs Django in gunicorn).
        """
        from scans.choices import ScanState
        from scans.models import ScanJob

        deadline = time.monotonic() + timeout
        finished = ScanJob.objects.filter(image__digest=digest, state__in=[ScanState.DONE, ScanState.FAILED])
        url = f"{self.web}/api/v1/images/{digest}/report"
        while not finished.exists() or self.api.get(url, params={"limit": 1}, timeout=10).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no report for {digest}; worker log:\n{self.worker_log.read_text()[-3000:]}")
            time.sleep(0.02)
        return time.perf_counter()


@contextmanager
def running_service(database_url: str, broker_url: str, api: Any) -> Iterator[Service]:
    import requests

    from scans.models import Registry
    from tests.support.registry import start_registry

    web = f"http://127.0.0.1:{free_port()}"

    def answers() -> bool:
        try:
            return bool(api.get(f"{web}/api/v1/feeds/", timeout=5).ok)
        except requests.RequestException:
            return False

    bin_dir = Path(sys.executable).parent
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vigil-bench-service-")))
        worker_log = work / "worker.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "scanner_service.settings",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "VIGIL_WORK_DIR": str(work / "work"),
            "ALLOWED_HOSTS": "127.0.0.1",
        }
        stack.enter_context(process(
            [str(bin_dir / "gunicorn"), "scanner_service.wsgi", "-b", web.removeprefix("http://"), "-w", "2"],
            env, work / "web.log", answers,
        ))  # fmt: skip
        stack.enter_context(process(
            [str(bin_dir / "celery"), "-A", "scanner_service", "worker", "-Q", "scans,default", "--concurrency=1",
             "--prefetch-multiplier=1", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            env, worker_log, lambda: b"ready." in worker_log.read_bytes(),
        ))  # fmt: skip
        secret = secrets.token_urlsafe(24)
        registry = stack.enter_context(start_registry(
            work / "registry", notify_url=f"{web}/webhooks/distribution/",
            notify_headers={"Authorization": f"Bearer {secret}"},
        ))  # fmt: skip
        Registry.objects.filter(name="bench").delete()
        entry = Registry(name="bench", url=registry.url, repositories=["bench/*"])
        entry.webhook_secret = secret
        entry.save()
        yield Service(web, registry.host, work / "layout", api, worker_log)


def latencies(service: Service, tags: list[str]) -> tuple[list[float], list[float], dict[str, float]]:
    """Push one tag at a time: seconds from each push's end to its report, the pushes' own seconds, and
    the median of each stage (from the job's timestamps; one clock, this machine's)."""
    from scans.models import ScanJob

    waits, pushes, stages = [], [], []
    for tag in tags:
        start = time.perf_counter()
        digest = service.push(tag)
        pushed, pushed_wall = time.perf_counter(), time.time()
        reported = service.wait_report(digest)
        waits.append(reported - pushed)
        pushes.append(pushed - start)
        job = ScanJob.objects.get(image__digest=digest)
        stages.append({
            "notified_s": job.created_at.timestamp() - pushed_wall,  # registry -> webhook -> job row
            "queued_s": (job.started_at - job.created_at).total_seconds(),  # broker -> worker claims it
            "scan_s": (job.finished_at - job.started_at).total_seconds(),  # pull, analyse, match, store
        })  # fmt: skip
    return waits, pushes, {name: round(statistics.median(s[name] for s in stages), 3) for name in stages[0]}


def burst(service: Service, tags: list[str]) -> tuple[float, float]:
    """Push every tag back to back; scans per minute between the first job's start and the last job's end,
    and between the first push and the last report."""
    from scans.models import ScanJob

    start = time.perf_counter()
    digests = [service.push(tag) for tag in tags]
    end = max(service.wait_report(digest, timeout=120 + 60 * len(digests)) for digest in digests)
    jobs = list(ScanJob.objects.filter(image__digest__in=digests))
    assert len(jobs) == len(digests), "one scan per pushed digest"
    busy = max(job.finished_at for job in jobs) - min(job.started_at for job in jobs)
    return len(jobs) / busy.total_seconds() * 60, len(jobs) / (end - start) * 60


def in_process_scan_seconds(repeat: int = 3) -> float:
    """Best time of `scan` + matching of the image in this process: the work a worker cannot avoid."""
    from advisories.findings import match_analysis
    from scans.engine.targets import scan

    with tempfile.TemporaryDirectory() as tmp:
        match_analysis(scan(str(IMAGE), workdir=Path(tmp)))  # warm-up
        runs = []
        for _ in range(repeat):
            began = time.perf_counter()
            match_analysis(scan(str(IMAGE), workdir=Path(tmp)))
            runs.append(time.perf_counter() - began)
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=5)
    parser.add_argument("--burst", type=int, default=10)
    args = parser.parse_args()
    missing = [tool for tool in ("docker-registry", "skopeo") if shutil.which(tool) is None]
    if missing or not IMAGE.exists():
        sys.exit(f"needs {', '.join(missing) or IMAGE} (apt-get install docker-registry skopeo; ../shared/corpus)")

    database_url = scratch_db.setup("BENCH_SERVICE_DATABASE_URL", "vigil_bench_service")
    broker_url = os.environ.get("BENCH_SERVICE_BROKER_URL", "redis://127.0.0.1:6379/13")
    import redis
    import requests
    from django.contrib.auth.models import User

    from accounts.services import create_token
    from advisories.sync import sync_feed

    for source, path in FEEDS:
        run = sync_feed(source, str(SHARED / path))
        assert run.state in ("succeeded", "unchanged"), run.error
    redis.Redis.from_url(broker_url).flushdb()
    user, _ = User.objects.get_or_create(username="bench")
    api = requests.Session()
    api.headers["Authorization"] = f"Token {create_token(user.id, 'viewer', name='bench')[1]}"

    with running_service(database_url, broker_url, api) as service:
        tags = make_variants(service.layout, 1 + args.pushes + args.burst, f"r{int(time.time())}")
        service.wait_report(service.push(tags[0]))  # warm-up: uploads the layers, warms worker and database
        waits, pushes, stages = latencies(service, tags[1 : 1 + args.pushes])
        sustained, seen = burst(service, tags[1 + args.pushes :])
    baseline = in_process_scan_seconds()
    p50 = statistics.median(waits)
    result = {
        "image": IMAGE.name,
        "pushes": len(waits),
        "latency_s": [round(value, 3) for value in waits],
        "latency_p50_s": round(p50, 3),
        "latency_max_s": round(max(waits), 3),
        "push_p50_s": round(statistics.median(pushes), 3),
        "stages_p50": stages,
        "baseline_scan_s": round(baseline, 3),
        "latency_p50_ratio": round(p50 / baseline, 2),
        "burst": args.burst,
        "scans_per_min_sustained": round(sustained, 1),
        "scans_per_min_push_to_report": round(seen, 1),
        "baseline_scans_per_min": round(60 / baseline, 1),
        "sustained_ratio": round(60 / baseline / sustained, 2),
    }
    print(json.dumps(result, indent=2))  # noqa: T201
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "service.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
