"""Time to match a 10,000-package SBOM against the full imported feeds in PostgreSQL (target: < 1 s).

    .venv/bin/python bench/matching.py [--packages 10000] [--repeat 5]

Uses a scratch database of its own (BENCH_MATCHING_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/vigil_bench_matching; created and migrated
here) and syncs into it, from ../shared/feeds, osv-pypi, osv-go, osv-ghsa,
the alpine-secdb YAML (v3.3-v3.11), debian-tracker-derived and KEV; a re-run
finds them unchanged and skips the import.

The SBOM is built from real corpus packages: debian12-app's debs and its
language packages (the PyPI and Go ones stated in the corpus README are added
when no cataloger reported them), and alpine37's apks. They are repeated with
varied versions until there are --packages of them, split like an image
fleet: two inventories, a Debian 12 one (debs and language packages) and an
Alpine 3.7 one (apks), since one inventory has one distro. The time is that
of `match_analysis` on both, end to end: queries, matching, findings.

"cold" clears the matcher's parsed-version caches before the run; "warm" is
the median of --repeat runs after it. Results go to bench/out/matching.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scratch_db  # noqa: E402

FEEDS = [
    ("osv", "osv-pypi/pypa-advisory-database-vulns.tar.gz"),
    ("osv", "osv-go/all.zip"),
    ("osv", "osv-ghsa/ghsa-advisories.tar.gz"),
    ("alpine-secdb", "alpine-secdb/yaml"),
    ("debian-tracker", "debian-tracker-derived/bookworm.json"),
    ("kev", "kev/known_exploited_vulnerabilities.json"),
]
# debian12-app's language packages as the corpus README states them, for when no cataloger reports them yet
README_LANGUAGE = [
    ("pypi", "Django", "3.2"), ("pypi", "requests", "2.25.0"), ("pypi", "PyYAML", "5.3.1"),
    ("pypi", "Jinja2", "2.11.2"), ("pypi", "urllib3", "1.26.4"), ("pypi", "Werkzeug", "2.0.0"),
    ("golang", "stdlib", "go1.17.2"), ("golang", "golang.org/x/sys", "v0.0.0-20210908233432-aa78b53d3365"),
    ("golang", "github.com/evanw/esbuild", "(devel)"),
    ("npm", "lodash", "4.17.15"), ("npm", "minimist", "1.2.0"), ("npm", "express", "4.17.1"),
    ("npm", "axios", "0.21.0"), ("npm", "jsonwebtoken", "8.5.1"),
    ("maven", "com.fasterxml.jackson.core:jackson-databind", "2.9.8"), ("maven", "log4j:log4j", "1.2.17"),
    ("maven", "org.yaml:snakeyaml", "1.23"), ("maven", "commons-beanutils:commons-beanutils", "1.9.3"),
]  # fmt: skip


def _sync() -> None:
    from advisories.sync import sync_feed

    for source, relative in FEEDS:
        run = sync_feed(source, str(SHARED / "feeds" / relative))
        assert run.state in ("succeeded", "unchanged"), (relative, run.error)
        print(f"  {relative}: {run.state} ({run.duration:.1f} s)", file=sys.stderr)


def vary(package, k: int):
    """The k-th copy of a package with a different, still well-formed version (k = 0: the original)."""
    if k == 0:
        return package
    version = package.version
    if package.type == "deb":
        source = package.source_version or version
        return replace(package, version=f"{version}~b{k}", source_version=f"{source}~b{k}")  # just below
    if package.type == "apk":
        base, _, revision = version.rpartition("-r")
        return replace(package, version=f"{base}-r{(int(revision or 0) + k) % 20}" if base else version)
    if package.type == "golang" and package.name == "stdlib":
        return replace(package, version=f"go1.{k % 22 + 1}.{k % 9}")
    if package.type in ("pypi", "npm", "maven") and version[:1].isdigit():
        head, _, tail = version.rpartition(".")
        return replace(package, version=f"{head}.{(int(tail) + k) % 30}" if head and tail.isdigit() else version)
    return package


def sbom(total: int):
    from scans.engine.models import Analysis, Distro, Package
    from scans.engine.targets import scan

    debian = scan(str(SHARED / "corpus" / "debian12-app.docker.tar"))
    alpine = scan(str(SHARED / "corpus" / "alpine37.docker.tar"))
    seen = {(p.type, p.name) for p in debian.packages}
    language = [Package(t, n, v) for t, n, v in README_LANGUAGE if (t, n) not in seen]
    base_debian = debian.packages + language
    # the fleet's share of each distro, as in the corpus: a Debian image is the larger
    n_alpine = total * len(alpine.packages) // (len(alpine.packages) + len(base_debian))
    n_debian = total - n_alpine

    def repeated(base, n):
        return [vary(base[i % len(base)], i // len(base)) for i in range(n)]

    return (
        Analysis(debian.image, debian.distro or Distro("debian", "12"), repeated(base_debian, n_debian)),
        Analysis(alpine.image, alpine.distro or Distro("alpine", "3.7.3"), repeated(alpine.packages, n_alpine)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    scratch_db.setup("BENCH_MATCHING_DATABASE_URL", "vigil_bench_matching")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from advisories import matching
    from advisories.findings import match_analysis
    from advisories.models import Advisory, Affected

    print("syncing feeds:", file=sys.stderr)
    _sync()
    inventories = sbom(args.packages)

    def run() -> tuple[float, list]:
        start = time.perf_counter()
        reports = [match_analysis(analysis) for analysis in inventories]
        return time.perf_counter() - start, reports

    matching.parse_version.cache_clear()
    matching._prepare.cache_clear()
    with CaptureQueriesContext(connection) as queries:
        cold, reports = run()
    warm = [run()[0] for _ in range(args.repeat)]
    findings = sum(len(r.findings) for r in reports)
    result = {
        "packages": sum(len(a.packages) for a in inventories),
        "by_type": {
            t: sum(p.type == t for a in inventories for p in a.packages)
            for t in sorted({p.type for a in inventories for p in a.packages})
        },  # fmt: skip
        "advisories": Advisory.objects.count(),
        "affected_rows": Affected.objects.count(),
        "findings": findings,
        "queries": len(queries),
        "cold_s": round(cold, 3),
        "warm_median_s": round(statistics.median(warm), 3),
        "warm_min_s": round(min(warm), 3),
        "target_s": 1.0,
        "load_average": os.getloadavg()[0],  # other work on the machine shows in the timings
    }
    print(json.dumps(result, indent=2))  # noqa: T201
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "matching.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
