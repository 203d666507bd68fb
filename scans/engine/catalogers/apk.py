"""Alpine packages from apk's installed database.

The format is a few lines of `K:value` per package, records separated by a
blank line (apk-tools' "installed" database). No maintained Python library
reads it, and it is simple enough to read here.
"""

from __future__ import annotations

from scans.engine.catalogers.base import FileContent
from scans.engine.errors import ParseError
from scans.engine.models import Package

INSTALLED = "lib/apk/db/installed"


class ApkCataloger:
    name = "apk"
    version = 1
    paths = (INSTALLED,)

    def wants(self, path: str) -> bool:
        return path == INSTALLED

    def owned_files(self, file: FileContent) -> set[str]:
        return owned_files(file.read_bytes().decode("utf-8", "replace"))

    def parse(self, file: FileContent) -> list[Package]:
        packages = []
        for record in _records(file.read_bytes().decode("utf-8", "replace")):
            name, version = record.get("P", ""), record.get("V", "")
            if not name or not version:
                raise ParseError(f"{file.path}: a package record lacks P: or V: ({sorted(record)})")
            packages.append(
                Package(
                    type="apk",
                    name=name,
                    version=version,
                    arch=record.get("A", ""),
                    source_name=record.get("o", name),
                    source_version=version,
                    licenses=(record["L"],) if record.get("L") else (),
                    path=file.path,
                )
            )
        return packages


def owned_files(text: str) -> set[str]:
    """Files apk installed: each `R:` line names a file in the latest `F:` directory."""
    owned: set[str] = set()
    directory = ""
    for line in text.splitlines():
        if line.startswith("F:"):
            directory = line[2:].strip("/")
        elif line.startswith("R:"):
            owned.add(f"{directory}/{line[2:]}" if directory else line[2:])
    return owned


def _records(text: str) -> list[dict[str, str]]:
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                records.append(current)
            current = {}
            continue
        key, sep, value = line.partition(":")
        # File lists (F:, R:, Z:, a:, M:) repeat; only the first of each key matters here.
        if sep and len(key) == 1:
            current.setdefault(key, value)
    if current:
        records.append(current)
    return records
