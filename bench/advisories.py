"""Advisory import rate into PostgreSQL, and the cost of a no-change re-sync.

    .venv/bin/python bench/advisories.py [--repeat N]

Syncs osv-pypi and osv-go from ../shared/feeds into a scratch PostgreSQL
database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/vigil_bench,
created and migrated here), from empty, --repeat times; reports records per
second of the best run, then the time of a re-sync of the unchanged feeds
as a ratio to the first sync, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FEEDS = REPO.parent / "shared" / "feeds"
sys.path.insert(0, str(REPO))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/vigil_bench")
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scanner_service.settings")

FEED_FILES = [FEEDS / "osv-pypi/pypa-advisory-database-vulns.tar.gz", FEEDS / "osv-go/all.zip"]


def _create_database() -> None:
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    with psycopg.connect(DATABASE_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    _create_database()
    import django

    django.setup()
    from django.core.management import call_command

    from advisories.models import Advisory, FeedSync
    from advisories.sync import sync_feed

    call_command("migrate", verbosity=0)
    first_runs, records = [], 0
    for _ in range(args.repeat):
        Advisory.objects.all().delete()
        FeedSync.objects.all().delete()
        start = time.perf_counter()
        runs = [sync_feed("osv", str(path)) for path in FEED_FILES]
        first_runs.append(time.perf_counter() - start)
        assert all(r.state == "succeeded" for r in runs), [r.error for r in runs]
        records = sum(r.added for r in runs)
    first = min(first_runs)
    resyncs = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        runs = [sync_feed("osv", str(path)) for path in FEED_FILES]
        resyncs.append(time.perf_counter() - start)
        assert all(r.state == "unchanged" for r in runs)
    resync = min(resyncs)
    result = {
        "records": records,
        "first_sync_s": round(first, 3),
        "records_per_s": round(records / first),
        "unchanged_resync_s": round(resync, 4),
        "resync_ratio": round(resync / first, 4),
    }
    print(json.dumps(result, indent=2))  # noqa: T201
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "advisories.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
