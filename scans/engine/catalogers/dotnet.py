"""NuGet packages of .NET applications: `*.deps.json` and `packages.lock.json`.

`<App>.deps.json` sits beside every built or published application and is
what the host loads assemblies by: it is the installed truth. Its
`libraries` name each `Name/Version` with a type:

- `package`: a NuGet package, reported;
- `runtimepack`: the .NET runtime a self-contained app carries
  (`runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/8.0.0`), reported under
  the NuGet name without the `runtimepack.` prefix, since that is the name the
  runtime's advisories use;
- `project` (the app and its project references) and `reference` (bare
  assemblies): first-party or unidentified, skipped.

Packages whose only target entries are `compileOnly` (reference assemblies
kept for runtime compilation) are not loaded at run time and are skipped. The
dependency graph comes from the runtime target's entries; what `project`
entries depend on is direct.

`packages.lock.json` (and `packages.<project>.lock.json`) is the NuGet
lockfile of one project, listed per target framework (`net8.0`,
`net8.0/linux-x64`). Entries are `Direct`, `Transitive`, `CentralTransitive`
or `Project` (a project reference, skipped); their dependency ranges resolve
to the version locked in the same framework. One package per name@version
across frameworks. Neither file says what is a development dependency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scans.engine.catalogers.base import FileContent
from scans.engine.catalogers.reading import load_json
from scans.engine.errors import ParseError
from scans.engine.models import Package
from scans.engine.purls import language_purl

DEPS_SUFFIX = ".deps.json"
LOCK = "packages.lock.json"
_LOCK_PREFIX = "packages."
_LOCK_SUFFIX = ".lock.json"
_ENDINGS = (DEPS_SUFFIX, _LOCK_SUFFIX)
# deps.json of large applications reach a few MB.
_MAX_BYTES = 16 << 20
_RUNTIME_PACK = "runtimepack."
_REPORTED = frozenset({"package", "runtimepack"})


class DotnetCataloger:
    name = "dotnet"
    version = 1

    def wants(self, path: str) -> bool:
        if not path.endswith(_ENDINGS):  # one C call turns away almost every path
            return False
        return path.endswith(DEPS_SUFFIX) or path[path.rfind("/") + 1 :].startswith(_LOCK_PREFIX)

    def parse(self, file: FileContent) -> list[Package]:
        if file.path.endswith(DEPS_SUFFIX):
            return _deps_json(file)
        return _lockfile(file)


@dataclass
class _Found:
    name: str
    version: str
    direct: bool = False
    dependencies: set[str] = field(default_factory=set)


def _object(file: FileContent) -> dict[str, Any]:
    doc = load_json(file, _MAX_BYTES)
    if not isinstance(doc, dict):
        raise ParseError(f"{file.path}: must be a JSON object")
    return doc


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _purl(name: str, version: str) -> str:
    return language_purl("nuget", name, version)


def _packages(path: str, found: Iterable[_Found]) -> list[Package]:
    return [
        Package(
            type="nuget",
            name=f.name,
            version=f.version,
            direct=f.direct,
            dependencies=tuple(sorted(f.dependencies)),
            path=path,
            purl=_purl(f.name, f.version),
        )
        for f in found
    ]


# -- deps.json ------------------------------------------------------------------------


def _deps_json(file: FileContent) -> list[Package]:
    doc = _object(file)
    libraries = doc.get("libraries")
    if not isinstance(libraries, dict):
        raise ParseError(f"{file.path}: no `libraries` object; not a .deps.json")
    entries = _runtime_entries(doc)
    # NuGet ids are case-insensitive; a dependency may spell one differently from its library key.
    found: dict[str, _Found] = {}
    for key, raw in libraries.items():
        kind = _str(_dict(raw).get("type"))
        name, _, version = key.partition("/")
        if kind in _REPORTED and name and version and not _compile_only(entries.get(key.lower())):
            found[key.lower()] = _Found(name.removeprefix(_RUNTIME_PACK), version)
    for key, raw in libraries.items():
        is_project = _str(_dict(raw).get("type")) == "project"
        source = found.get(key.lower())
        for target in _targets(entries.get(key.lower()), found):
            if source is not None:
                source.dependencies.add(_purl(target.name, target.version))
            if is_project:
                target.direct = True
    return _packages(file.path, found.values())


def _runtime_entries(doc: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Target entries by lowercased `Name/Version`: the runtime target's, or every target's when it is not named."""
    targets = _dict(doc.get("targets"))
    runtime = _str(_dict(doc.get("runtimeTarget")).get("name"))
    chosen = [targets[runtime]] if isinstance(targets.get(runtime), dict) else list(targets.values())
    entries: dict[str, list[dict[str, Any]]] = {}
    for target in chosen:
        for key, entry in _dict(target).items():
            if isinstance(entry, dict):
                entries.setdefault(key.lower(), []).append(entry)
    return entries


def _compile_only(entries: list[dict[str, Any]] | None) -> bool:
    return bool(entries) and all(e.get("compileOnly") is True for e in entries or ())


def _targets(entries: list[dict[str, Any]] | None, found: Mapping[str, _Found]) -> Iterable[_Found]:
    for entry in entries or ():
        for name, version in _dict(entry.get("dependencies")).items():
            target = found.get(f"{name}/{_str(version)}".lower())
            if target is not None:
                yield target


# -- packages.lock.json -----------------------------------------------------------------


def _lockfile(file: FileContent) -> list[Package]:
    doc = _object(file)
    frameworks = doc.get("dependencies")
    if not isinstance(frameworks, dict):
        raise ParseError(f"{file.path}: no `dependencies` object; not a NuGet packages.lock.json")
    found: dict[tuple[str, str], _Found] = {}
    for entries in frameworks.values():
        _read_framework(_dict(entries), found)
    return _packages(file.path, found.values())


def _read_framework(entries: dict[str, Any], found: dict[tuple[str, str], _Found]) -> None:
    """One target framework's packages, folded into `found` by (lowercased name, version)."""
    locked = {
        name.lower(): (name, _str(_dict(raw).get("resolved")))
        for name, raw in entries.items()
        if _str(_dict(raw).get("type")) != "Project" and _str(_dict(raw).get("resolved"))
    }
    for lower, (name, version) in locked.items():
        raw = _dict(entries[name])
        package = found.setdefault((lower, version), _Found(name, version))
        package.direct = package.direct or _str(raw.get("type")) == "Direct"
        for dependency in _dict(raw.get("dependencies")):
            target = locked.get(dependency.lower())
            if target is not None:  # a range resolves to what this framework locked
                package.dependencies.add(_purl(*target))
