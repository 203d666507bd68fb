"""The engine, the feed parsers and version semantics run without Django (CLI, workers, tests)."""

import subprocess
import sys
from pathlib import Path

DJANGO_FREE = (
    "scans.engine.targets",
    "scans.engine.sbom",
    "scans.engine.catalogers",
    "advisories.importers.osv",
    "advisories.importers.alpine_secdb",
    "advisories.importers.debian_tracker",
    "advisories.importers.ubuntu",
    "advisories.importers.redhat_csaf",
    "advisories.importers.nvd",
    "advisories.importers.kev",
    "advisories.importers.epss",
    "advisories.importers.fetch",
    "advisories.versions",
)


def test_django_free_packages_import_no_django():
    code = (
        f"import importlib, sys\nfor m in {DJANGO_FREE!r}: importlib.import_module(m)\n"
        "leaked = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not leaked, leaked"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
