"""`manage.py scan TARGET`: analyse an image, match it, report, and gate a CI pipeline.

Runs without any service: the advisory database is the configured one, or
the embedded SQLite one that `make demo` loads from ../shared/feeds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from advisories.findings import match_analysis
from scans.engine import policy, reports, sbom
from scans.engine.errors import AnalysisError
from scans.engine.findings import Report
from scans.engine.layers import Limits
from scans.engine.models import Analysis, Platform
from scans.engine.targets import scan

# 1 is the usual --exit-code for "findings over the threshold"; a failed scan
# (and a usage error) exits 2, so that a CI gate never reads one as the other.
EXIT_SCAN_FAILED = policy.SCAN_FAILED_EXIT
DEFAULT_IGNOREFILE = ".vigilignore"
FORMATS = (*reports.FORMATS, "spdx")


class Command(BaseCommand):
    help = (
        "Analyse an image, match its packages against the advisory database and report the findings. "
        "TARGET is a docker archive, an OCI archive or layout, a root file system directory, or a registry "
        "reference (host[:port]/repo:tag or @sha256:...). With --severity and --exit-code it gates a pipeline."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", nargs="?", help="What to scan (or use --fs / --sbom)")
        parser.add_argument(
            "--fs", metavar="DIR", help="Scan a source tree or any directory: lockfiles and installed packages"
        )
        parser.add_argument("--sbom", metavar="FILE", help="Scan an existing CycloneDX or SPDX JSON SBOM")
        parser.add_argument("--format", choices=FORMATS, default="table")
        parser.add_argument("--output", "-o", help="Write the report to this file instead of standard output")
        parser.add_argument("--platform", default=settings.VIGIL_PLATFORM, help="os/arch[/variant] from an index")
        parser.add_argument("--insecure", action="store_true", help="Allow plain-HTTP registries")
        parser.add_argument("--severity", help="Severities that fail the gate, e.g. HIGH,CRITICAL (default: all)")
        parser.add_argument("--exit-code", type=int, default=0, help="Exit status when findings fail the gate")
        parser.add_argument("--ignore-unfixed", action="store_true", help="Findings without a fix do not fail")
        parser.add_argument("--ignorefile", help=f"YAML ignore list (default: {DEFAULT_IGNOREFILE} if present)")
        parser.add_argument("--vex", action="append", default=[], help="OpenVEX or CycloneDX VEX file (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            severities = policy.parse_severities(options["severity"]) if options["severity"] else frozenset()
            ignore, vex = self._policy_files(options)
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc), returncode=EXIT_SCAN_FAILED) from None
        analysis = self._analyse(options)
        report = policy.apply_policy(self._match(analysis), ignore=ignore, vex=vex, today=timezone.localdate())
        self._warn_about_database(report)
        text = (
            sbom.to_spdx(analysis) if options["format"] == "spdx" else reports.render_report(report, options["format"])
        )
        self._write(text, options["output"])
        failing = policy.gate(report, severities, ignore_unfixed=options["ignore_unfixed"])
        if failing and options["exit_code"]:
            sys.exit(options["exit_code"])

    @staticmethod
    def _policy_files(options: dict[str, Any]) -> tuple[list[policy.IgnoreEntry], list[policy.VexStatement]]:
        ignorefile = options["ignorefile"]
        if ignorefile is None and Path(DEFAULT_IGNOREFILE).is_file():
            ignorefile = DEFAULT_IGNOREFILE
        ignore = policy.load_ignorefile(ignorefile) if ignorefile else []
        vex = [statement for path in options["vex"] for statement in policy.load_vex(path)]
        return ignore, vex

    def _analyse(self, options: dict[str, Any]) -> Analysis:
        targets = [t for t in (options["target"], options["fs"], options["sbom"]) if t]
        if len(targets) != 1:
            raise CommandError("give exactly one of TARGET, --fs DIR or --sbom FILE", returncode=EXIT_SCAN_FAILED)
        try:
            if options["sbom"]:
                return sbom.read_sbom(Path(options["sbom"]))
            platform = Platform.parse(options["platform"])
            work_root = Path(settings.VIGIL_WORK_DIR)
            work_root.mkdir(parents=True, exist_ok=True)
            return scan(
                f"dir:{options['fs']}" if options["fs"] else targets[0],
                platform=platform,
                workdir=work_root,
                limits=Limits(**settings.VIGIL_LIMITS),
                insecure=options["insecure"],
            )
        except ValueError as exc:
            raise CommandError(str(exc), returncode=EXIT_SCAN_FAILED) from None
        except AnalysisError as exc:
            self.stderr.write(f"scan failed: {exc}")
            sys.exit(EXIT_SCAN_FAILED)

    def _match(self, analysis: Analysis) -> Report:
        try:
            return match_analysis(analysis)
        except DatabaseError as exc:
            # No database (not migrated, unreachable): still report the inventory, and say so.
            self.stderr.write(f"warning: the advisory database cannot be read ({exc}); packages were not matched")
            return Report(analysis=analysis, notes=["the advisory database could not be read; nothing was matched"])

    def _warn_about_database(self, report: Report) -> None:
        database = report.database
        if database.empty:
            self.stderr.write("warning: the advisory database is empty; run `manage.py sync_advisories` first")
        elif database.stale:
            self.stderr.write(f"warning: the advisory database is {database.age_hours:.0f} hours old")
        if report.unsupported:
            self.stderr.write(f"warning: {report.unsupported}")

    def _write(self, text: str, output: str | None) -> None:
        if not output:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text)
        except OSError as exc:
            raise CommandError(
                f"cannot write the report to {output}: {exc.strerror}", returncode=EXIT_SCAN_FAILED
            ) from None
