"""Analysis time against the floor, and peak memory.

The floor is reading and decompressing every layer blob of the same image
once (zlib, 1 MiB steps, one thread), measured in the same run. Analysis is
the engine's full work on that image: layers read and applied, files kept,
distro detected, packages catalogued; measured with the OS catalogers only
and with every cataloger, so the cost of the language catalogers shows too. Each figure is the best of --repeat
runs; peak RSS is measured in a fresh process per image.

    .venv/bin/python bench/analysis.py [--large PATH] [--repeat N]

The large image is built by ../shared/corpus/make-debian-large.sh (root,
network access to a Debian mirror, about 2 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scans.engine.analyzer import Analyzer  # noqa: E402
from scans.engine.catalogers import os_catalogers  # noqa: E402
from scans.engine.catalogers.base import Cataloger  # noqa: E402
from scans.engine.models import Platform  # noqa: E402
from scans.engine.sources import open_local  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
DEFAULT_LARGE = REPO.parent / "bench-data" / "debian-large.docker.tar"


def floor(archive: Path) -> float:
    """Read and decompress every layer blob once."""
    start = time.perf_counter()
    with open_local(str(archive), Platform()) as source:
        for spec in source.blobs:
            with spec.open() as raw:
                head = raw.read(2)
                d = zlib.decompressobj(47) if head == b"\x1f\x8b" else None
                data = head
                while data:
                    if d is not None:
                        while data:
                            d.decompress(data, 1 << 20)
                            data = d.unconsumed_tail
                    data = raw.read(1 << 20)
    return time.perf_counter() - start


def analyse(archive: Path, catalogers: tuple[Cataloger, ...] | None = None) -> tuple[float, int]:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work, open_local(str(archive), Platform()) as source:
        packages = len(Analyzer(Path(work), catalogers=catalogers).run(source).packages)
    return time.perf_counter() - start, packages


def peak_rss_mb(archive: Path) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(archive)], capture_output=True, text=True, check=True
    ).stdout
    return float(out.strip())


def measure(archive: Path, repeat: int) -> dict[str, object]:
    floors, os_runs, runs = [], [], []
    packages = os_packages = 0
    for _ in range(repeat):  # interleaved, so all three see the same machine load
        floors.append(floor(archive))
        seconds, os_packages = analyse(archive, os_catalogers())
        os_runs.append(seconds)
        seconds, packages = analyse(archive)
        runs.append(seconds)
    best_floor, best_os, best = min(floors), min(os_runs), min(runs)
    return {
        "image": archive.name,
        "os_packages": os_packages,
        "packages": packages,
        "floor_s": round(best_floor, 3),
        "os_only_s": round(best_os, 3),
        "os_only_ratio": round(best_os / best_floor, 2),
        "analysis_s": round(best, 3),
        "ratio": round(best / best_floor, 2),
        "language_overhead": round(best / best_os - 1, 3),
        "peak_rss_mb": round(peak_rss_mb(archive), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=Path, default=Path(os.environ.get("VIGIL_BENCH_LARGE", DEFAULT_LARGE)))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        analyse(args.child)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # noqa: T201 - kB on Linux
        return
    images = [CORPUS / "debian12-app.docker.tar"]
    if args.large.exists():
        images.append(args.large)
    else:
        print(f"# {args.large} not found: build it with sudo {CORPUS / 'make-debian-large.sh'} {args.large}")  # noqa: T201
    results = [measure(image, args.repeat) for image in images]
    columns = ("image", "os_packages", "packages", "floor_s", "os_only_s", "os_only_ratio", "analysis_s", "ratio",
               "language_overhead", "peak_rss_mb")  # fmt: skip
    print("  ".join(columns))  # noqa: T201
    for r in results:
        print("  ".join(str(r[c]) for c in columns))  # noqa: T201
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "analysis.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
