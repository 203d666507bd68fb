"""`manage.py advisories_import FILE`: replace the advisory database with an exported one."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from advisories.bundle import BundleError, file_sha256, import_bundle


class Command(BaseCommand):
    help = "Replace the advisory data with FILE (made by advisories_export), after verifying its digests."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--sha256", help="Also check the whole file against this digest (as export printed it)")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if options["sha256"]:
            actual = file_sha256(path)
            if actual != options["sha256"].lower():
                raise CommandError(f"{path} has sha256 {actual}, not {options['sha256']}")
        try:
            manifest = import_bundle(path)
        except BundleError as exc:
            raise CommandError(str(exc)) from None
        counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
        self.stdout.write(f"imported {path} ({manifest['created']}): {counts}")
