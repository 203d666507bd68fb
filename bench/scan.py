"""`scan` of debian12-app with a warm advisory database, as a ratio to analysis alone (target: <= 1.3x).

    .venv/bin/python bench/scan.py [--repeat N]

Analysis is the engine's work on ../shared/corpus/debian12-app.docker.tar
with every cataloger; the scan adds matching against PostgreSQL holding
osv-pypi, osv-go, osv-ghsa, the alpine-secdb YAML, debian-tracker-derived and
KEV (BENCH_SCAN_DATABASE_URL, default the matching benchmark's database
postgres://postgres@127.0.0.1:5432/vigil_bench_matching; feeds already
imported are found unchanged and skipped). Both are timed interleaved, best
of --repeat, after one warm-up scan.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scratch_db  # noqa: E402

FEEDS = [
    ("osv", "feeds/osv-pypi/pypa-advisory-database-vulns.tar.gz"),
    ("osv", "feeds/osv-go/all.zip"),
    ("osv", "feeds/osv-ghsa/ghsa-advisories.tar.gz"),
    ("alpine-secdb", "feeds/alpine-secdb/yaml"),
    ("debian-tracker", "feeds/debian-tracker-derived/bookworm.json"),
    ("kev", "feeds/kev/known_exploited_vulnerabilities.json"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    scratch_db.setup("BENCH_SCAN_DATABASE_URL", "vigil_bench_matching")

    from advisories.findings import match_analysis
    from advisories.sync import sync_feed
    from scans.engine.targets import scan

    for source, path in FEEDS:
        run = sync_feed(source, str(SHARED / path))
        assert run.state in ("succeeded", "unchanged"), run.error
    image = str(SHARED / "corpus" / "debian12-app.docker.tar")
    with tempfile.TemporaryDirectory() as work:
        findings = len(match_analysis(scan(image, workdir=Path(work))).findings)  # warm-up
        analysis_runs, scan_runs = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            scan(image, workdir=Path(work))
            analysis_runs.append(time.perf_counter() - start)
            start = time.perf_counter()
            match_analysis(scan(image, workdir=Path(work)))
            scan_runs.append(time.perf_counter() - start)
    result = {
        "image": "debian12-app.docker.tar",
        "findings": findings,
        "analysis_s": round(min(analysis_runs), 3),
        "scan_s": round(min(scan_runs), 3),
        "ratio": round(min(scan_runs) / min(analysis_runs), 3),
        "target": 1.3,
    }
    print(json.dumps(result, indent=2))  # noqa: T201
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "scan.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
