"""`manage.py scan TARGET`: analyse an image without any service running."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from scans.engine import sbom
from scans.engine.errors import AnalysisError
from scans.engine.layers import Limits
from scans.engine.models import Platform
from scans.engine.targets import scan

# Distinct from 1 (reserved for "findings over the threshold" in the CI gate);
# usage errors exit 2 as well, so that a CI gate never reads them as findings.
EXIT_SCAN_FAILED = 2


class Command(BaseCommand):
    help = (
        "Analyse an image and print its package inventory. TARGET is a docker archive, an OCI archive or "
        "layout, a root file system directory, or a registry reference (host[:port]/repo:tag or @sha256:...)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target")
        parser.add_argument("--format", choices=sbom.FORMATS, default="table")
        parser.add_argument("--output", "-o", help="Write the report to this file instead of standard output")
        parser.add_argument(
            "--platform", default=settings.VIGIL_PLATFORM, help="os/arch[/variant] to pick from an index"
        )
        parser.add_argument("--insecure", action="store_true", help="Allow plain-HTTP registries")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            platform = Platform.parse(options["platform"])
        except ValueError as exc:
            raise CommandError(str(exc), returncode=EXIT_SCAN_FAILED) from None
        work_root = Path(settings.VIGIL_WORK_DIR)
        work_root.mkdir(parents=True, exist_ok=True)
        try:
            analysis = scan(
                options["target"],
                platform=platform,
                workdir=work_root,
                limits=Limits(**settings.VIGIL_LIMITS),
                insecure=options["insecure"],
            )
        except AnalysisError as exc:
            self.stderr.write(f"scan failed: {exc}")
            sys.exit(EXIT_SCAN_FAILED)
        report = sbom.render(analysis, options["format"])
        if options["output"]:
            try:
                Path(options["output"]).write_text(report)
            except OSError as exc:
                raise CommandError(
                    f"cannot write the report to {options['output']}: {exc.strerror}", returncode=EXIT_SCAN_FAILED
                ) from None
        else:
            self.stdout.write(report, ending="")
