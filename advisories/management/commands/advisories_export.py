"""`manage.py advisories_export FILE`: the whole advisory database as one verified file."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from advisories.bundle import export_bundle, file_sha256


class Command(BaseCommand):
    help = "Write the advisory database (advisories, KEV, EPSS, feed states) to FILE for advisories_import."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        manifest = export_bundle(path)
        digest = file_sha256(path)
        counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
        self.stdout.write(f"{path}: {counts}; sha256 {digest}")
