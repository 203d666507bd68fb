"""`manage.py sync_advisories [--source NAME ...] [--path FILE_OR_DIR_OR_URL]`."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from advisories.importers import IMPORTERS
from advisories.ingest import Counts
from advisories.models import SyncState
from advisories.sync import default_locations, sync_feed


class Command(BaseCommand):
    help = (
        "Sync advisory feeds into the database. Without --path each source reads its published URL; "
        "--path reads a local file, directory, archive, or file:// or http(s) URL instead (air-gapped sites)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", action="append", choices=sorted(IMPORTERS), help="Repeat for several sources")
        parser.add_argument("--path", help="Feed file, directory, zip, tar.gz or URL (needs exactly one --source)")

    def handle(self, *args: Any, **options: Any) -> None:
        sources = options["source"] or sorted(IMPORTERS)
        if options["path"] and len(sources) != 1:
            raise CommandError("--path needs exactly one --source")
        failed = 0
        feeds = (
            [(s, options["path"]) for s in sources]
            if options["path"]
            else [(s, location) for s in sources for location in default_locations(s)]
        )
        for source, location in feeds:
            run = sync_feed(source, location, progress=self._progress(source))
            if self.stdout.isatty():
                self.stdout.write("\r\033[K", ending="")
            if run.state == SyncState.FAILED:
                failed += 1
                self.stderr.write(f"{source}: failed: {run.error}")
                continue
            self.stdout.write(
                f"{source}: {run.state} in {run.duration:.1f}s - added {run.added}, updated {run.updated}, "
                f"unchanged {run.unchanged}, removed {run.removed}, withdrawn {run.withdrawn}, rejected {run.rejected}"
            )
        if failed:
            sys.exit(1)

    def _progress(self, source: str) -> Any:
        if not self.stdout.isatty():
            return None

        def show(counts: Counts) -> None:
            self.stdout.write(f"\r{source}: {counts.records} records, {counts.rejected} rejected", ending="")
            self.stdout.flush()

        return show
