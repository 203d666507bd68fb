"""Real Celery processes for tests: workers and beat on the suite's Redis broker and test database.

Each runs as its own subprocess (`celery -A scanner_service ...`) with the
test settings, so tests can kill, stop and resume them like an operator's
signal or the kernel's OOM killer would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection

CELERY = str(Path(sys.executable).with_name("celery"))
REPO = Path(__file__).resolve().parents[2]


def wait_for(check: Callable[[], Any], timeout: float, what: str, *, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def celery_env(work_dir: Path, **extra: str) -> dict[str, str]:
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "VIGIL_WORK_DIR": str(work_dir),
        **extra,
    }


def purge_queues(env: dict[str, str]) -> None:
    """Messages left over from other tests must not reach this test's workers."""
    subprocess.run(
        [CELERY, "-A", "scanner_service", "purge", "-f", "-Q", "scans,default"],
        env=env, cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip


@dataclass
class CeleryProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def celery_process(
    name: str, args: list[str], env: dict[str, str], log_dir: Path, ready: bytes
) -> Iterator[CeleryProcess]:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [CELERY, "-A", "scanner_service", *args], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
    running = CeleryProcess(name, process, log_path)
    try:
        wait_for(lambda: ready in log_path.read_bytes() or process.poll() is not None, 30, f"{name} to start")
        assert process.poll() is None, running.log()
        yield running
    finally:
        running.stop()


@contextmanager
def worker(name: str, env: dict[str, str], log_dir: Path, *, pool: str = "solo") -> Iterator[CeleryProcess]:
    args = ["worker", "-n", f"{name}@%h", "-Q", "scans,default", f"--pool={pool}", "--loglevel=INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    if pool == "prefork":
        args.append("--concurrency=1")
    with celery_process(name, args, env, log_dir, b"ready.") as running:
        yield running


@contextmanager
def beat(env: dict[str, str], log_dir: Path) -> Iterator[CeleryProcess]:
    args = ["beat", "--loglevel=INFO", f"--pidfile={log_dir / 'beat.pid'}", f"--schedule={log_dir / 'beat-schedule'}"]
    with celery_process("beat", args, env, log_dir, b"beat: Starting") as running:
        yield running
