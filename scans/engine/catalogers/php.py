"""PHP packages: Composer's composer.lock and vendor/composer/installed.json.

composer.lock is what a project resolved (`packages`, and `packages-dev`
for require-dev); vendor/composer/installed.json is what `composer install`
put into the vendor dir: a plain list of packages in Composer 1, and in
Composer 2 an object whose `dev-package-names` marks the dev ones. The
vendor dir can be renamed (`config.vendor-dir`), so any
`<dir>/composer/installed.json` counts.

Versions are kept as Composer writes them (`v6.4.3`, `1.2.0`, `dev-main`).
Requirements on the platform (`php`, `ext-*`, `lib-*`,
`composer-plugin-api`) are not packages and are left out of the graph.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from scans.engine.catalogers.base import FileContent
from scans.engine.catalogers.reading import load_json, table_list, text_field
from scans.engine.errors import ParseError
from scans.engine.models import Package
from scans.engine.purls import language_purl

INSTALLED = "composer/installed.json"


class PhpCataloger:
    name = "php"
    version = 1

    def wants(self, path: str) -> bool:
        if path.endswith("composer.lock"):
            # A lock inside vendor/ is a library's own, for its development; it was not installed.
            slashed = "/" + path
            return slashed.endswith("/composer.lock") and "/vendor/" not in slashed and "/node_modules/" not in slashed
        return path.endswith(INSTALLED) and (path == INSTALLED or path.endswith("/" + INSTALLED))

    def parse(self, file: FileContent) -> list[Package]:
        doc = load_json(file)
        if file.path.endswith("composer.lock"):
            return _lock(doc, file.path)
        return _installed(doc, file.path)


def _lock(doc: Any, path: str) -> list[Package]:
    if not isinstance(doc, dict) or not ("packages" in doc or "packages-dev" in doc):
        raise ParseError(f"{path}: a composer.lock is an object with `packages`")
    prod = table_list(doc.get("packages"), "packages", path)
    dev = table_list(doc.get("packages-dev"), "packages-dev", path)
    dev_names = {text_field(entry, "name").lower() for entry in dev}
    return _packages(prod + dev, dev_names, path)


def _installed(doc: Any, path: str) -> list[Package]:
    if isinstance(doc, list):  # Composer 1: no record of which packages are dev
        return _packages(table_list(doc, "(top level)", path), set(), path)
    if not isinstance(doc, dict) or "packages" not in doc:
        raise ParseError(f"{path}: installed.json is a list (Composer 1) or an object with `packages`")
    names = doc.get("dev-package-names") or []
    if not isinstance(names, list):
        raise ParseError(f"{path}: `dev-package-names` is not a list")
    dev_names = {name.lower() for name in names if isinstance(name, str)}
    return _packages(table_list(doc["packages"], "packages", path), dev_names, path)


def _packages(entries: list[dict[str, Any]], dev_names: set[str], path: str) -> list[Package]:
    # Composer package names are case-insensitive; the files write them lowercase.
    versions = {text_field(e, "name").lower(): (text_field(e, "name"), text_field(e, "version")) for e in entries}
    packages: dict[tuple[str, str], Package] = {}
    for entry in entries:
        name, version = text_field(entry, "name"), text_field(entry, "version")
        if "/" not in name or not version or any(c.isspace() for c in name + version):
            raise ParseError(f"{path}: a package entry lacks a vendor/name or a version ({name[:80] or '?'})")
        requires = entry.get("require")
        packages.setdefault(
            (name.lower(), version),
            Package(
                type="composer",
                name=name,
                version=version,
                licenses=_licenses(entry.get("license")),
                dev=name.lower() in dev_names,
                dependencies=tuple(sorted(_resolved(requires if isinstance(requires, dict) else {}, versions))),
                path=path,
                purl=language_purl("composer", name, version),
            ),
        )
    return list(packages.values())


def _licenses(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    return tuple(item for item in value if isinstance(item, str) and item) if isinstance(value, list) else ()


def _resolved(requires: dict[str, Any], versions: dict[str, tuple[str, str]]) -> Iterable[str]:
    """Purls of required packages present in the same file; platform requirements have no `/`."""
    for required in requires:
        name, version = versions.get(required.lower(), ("", ""))
        if "/" in name and version:
            yield language_purl("composer", name, version)
