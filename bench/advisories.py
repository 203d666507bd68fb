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
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FEEDS = REPO.parent / "shared" / "feeds"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scratch_db  # noqa: E402

FEED_FILES = [FEEDS / "osv-pypi/pypa-advisory-database-vulns.tar.gz", FEEDS / "osv-go/all.zip"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scratch_db.setup("BENCH_DATABASE_URL", "vigil_bench")

    from advisories.models import Advisory, FeedSync
    from advisories.sync import sync_feed

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
