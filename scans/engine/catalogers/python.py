"""Python packages: installed distributions, and the lockfiles and pins of projects.

Installed distributions are read from their core metadata wherever they
sit (system site-packages, virtualenvs, `pip install --target` dirs):
`*.dist-info/METADATA`, `*.egg-info/PKG-INFO`, the bare `*.egg-info` file
that distutils writes, and `EGG-INFO/PKG-INFO` of unzipped eggs.

Projects declare packages in requirements*.txt (only `==` pins say which
version), poetry.lock, Pipfile.lock, uv.lock and pylock.toml (PEP 751).
A package both installed and pinned is reported once per file, each with
its own path: the two can disagree, and that disagreement is worth seeing.
Pins and lockfiles inside an installed package's own tree describe how that
package is developed, not what the image runs, so they are not read.

Names are kept as the file writes them; the purl normalises them (PEP 503)
and so does the matcher.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from email.parser import HeaderParser
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from scans.engine.catalogers.base import FileContent
from scans.engine.catalogers.reading import (
    decode,
    load_json,
    load_toml,
    read_head,
    read_limited,
    table_list,
    text_field,
)
from scans.engine.errors import ParseError
from scans.engine.models import Package
from scans.engine.purls import language_purl

# Core metadata headers come before the (possibly huge) description body.
MAX_METADATA_HEAD = 1 << 20
_CANDIDATE_SUFFIXES = ("METADATA", "PKG-INFO", ".egg-info", ".txt", ".lock", ".toml")
_LOCKFILES = frozenset({"poetry.lock", "Pipfile.lock", "uv.lock"})
# Directories whose contents belong to an installed package, not to the image's project.
_PACKAGE_TREES = ("/site-packages/", "/dist-packages/", "/node_modules/")
_VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_VALID_VERSION = re.compile(r"^[^\s\x00-\x1f;,]+$")
_EXTRA_MARKER = re.compile(r"\bextra\b")
# pip: a comment starts at a `#` at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s)#.*$")
# pip: per-requirement options (--hash, --config-settings) follow the requirement.
_OPTION = re.compile(r"\s-{1,2}[A-Za-z]")


class PythonCataloger:
    name = "python"
    version = 1

    def wants(self, path: str) -> bool:
        if not path.endswith(_CANDIDATE_SUFFIXES):
            return False
        base = path[path.rfind("/") + 1 :]
        if base == "METADATA":
            return path.endswith(".dist-info/METADATA")
        if base == "PKG-INFO":
            return path.endswith((".egg-info/PKG-INFO", "EGG-INFO/PKG-INFO"))
        if base.endswith(".egg-info"):
            return True
        return _is_project_file(base, path) and not _in_package_tree(path)

    def parse(self, file: FileContent) -> list[Package]:
        base = file.path[file.path.rfind("/") + 1 :]
        if base in ("METADATA", "PKG-INFO") or base.endswith(".egg-info"):
            return [_installed(file)]
        if base == "poetry.lock":
            return _poetry(file)
        if base == "Pipfile.lock":
            return _pipfile(file)
        if base == "uv.lock":
            return _uv(file)
        if _is_pylock(base):
            return _pylock(file)
        return _requirements(file)


def _is_project_file(base: str, path: str) -> bool:
    if base.endswith(".txt"):
        # requirements.txt, requirements-dev.txt, dev-requirements.txt, requirements/base.txt
        directory = path[: -len(base)]
        return "requirements" in base or directory == "requirements/" or directory.endswith("/requirements/")
    return base in _LOCKFILES or _is_pylock(base)


def _is_pylock(base: str) -> bool:
    # PEP 751: `pylock.toml` or `pylock.<name>.toml`
    return base.startswith("pylock.") and base.endswith(".toml")


def _in_package_tree(path: str) -> bool:
    slashed = "/" + path
    return any(tree in slashed for tree in _PACKAGE_TREES)


def _package(
    name: str,
    version: str,
    path: str,
    *,
    dev: bool = False,
    direct: bool | None = None,
    dependencies: Iterable[str] = (),
    licenses: tuple[str, ...] = (),
) -> Package:
    if not _VALID_NAME.match(name):
        raise ParseError(f"{path}: {name[:80]!r} is not a valid Python distribution name")
    if not _VALID_VERSION.match(version):
        raise ParseError(f"{path}: {name} has an invalid version {version[:80]!r}")
    return Package(
        type="pypi",
        name=name,
        version=version,
        licenses=licenses,
        dev=dev,
        direct=direct,
        dependencies=tuple(sorted(set(dependencies))),
        path=path,
        purl=language_purl("pypi", name, version),
    )


# -- installed distributions -------------------------------------------------------------


def _installed(file: FileContent) -> Package:
    head = read_head(file, MAX_METADATA_HEAD)
    if len(head) == MAX_METADATA_HEAD and b"\n\n" not in head and b"\r\n\r\n" not in head:
        raise ParseError(f"{file.path}: no end of the metadata headers in the first {MAX_METADATA_HEAD} bytes")
    # Core metadata is UTF-8; a stray byte must not cost the whole distribution.
    message = HeaderParser().parsestr(head.decode("utf-8", "replace"))
    name, version = _header(message, "Name"), _header(message, "Version")
    if not name or not version:
        raise ParseError(f"{file.path}: core metadata without Name or Version")
    return _package(
        name,
        version,
        file.path,
        licenses=_licenses(message),
        dependencies=_requires_dist(message.get_all("Requires-Dist") or []),
    )


def _header(message: Any, key: str) -> str:
    value = message.get(key)
    return str(value).strip() if value is not None else ""


def _licenses(message: Any) -> tuple[str, ...]:
    expression = _header(message, "License-Expression")  # PEP 639: an SPDX expression
    if expression:
        return (expression,)
    # Some projects paste the whole licence text into License; that is no licence name.
    text = _header(message, "License")
    if text and text.upper() != "UNKNOWN" and "\n" not in text and len(text) <= 100:
        return (text,)
    names = []
    for classifier in message.get_all("Classifier") or []:
        parts = [part.strip() for part in str(classifier).split("::")]
        if parts[0] == "License" and len(parts) > 1 and parts[-1] != "OSI Approved":
            names.append(parts[-1])
    return tuple(dict.fromkeys(names))


def _requires_dist(values: Iterable[object]) -> Iterator[str]:
    """Version-less purls of the requirements that hold whatever extras are chosen.

    Metadata gives ranges, not the versions installed beside it; a reader of
    the graph pairs each purl with the installed package of that name.
    """
    for value in values:
        try:
            requirement = Requirement(str(value))
        except InvalidRequirement:
            continue
        if requirement.marker is None or not _EXTRA_MARKER.search(str(requirement.marker)):
            yield language_purl("pypi", requirement.name, "")


# -- requirements*.txt ---------------------------------------------------------------------


def _requirements(file: FileContent) -> list[Package]:
    """`==` (and `===`) pins. Other lines are not errors: pip accepts much that names no version.

    `-r`/`-c` includes are not followed: an included file named like a
    requirements file is read on its own, and any other lies outside what
    was declared before the layers were read.
    """
    text = decode(read_limited(file), file.path)
    packages: dict[tuple[str, str], Package] = {}
    understood, first_bad = 0, 0
    for number, line in _logical_lines(text):
        valid, requirement = _requirement(line)
        understood += valid
        first_bad = first_bad or (0 if valid else number)
        version = _pinned_version(requirement) if requirement is not None else ""
        if requirement is not None and version:
            package = _package(requirement.name, version, file.path)
            packages.setdefault((canonicalize_name(package.name), version), package)
    if first_bad and not understood:
        raise ParseError(f"{file.path}: line {first_bad} is not a requirement, and no line is")
    return list(packages.values())


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, line) with comments dropped and `\\` continuations joined."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw)
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        joined = " ".join([*pending, line]).strip()
        pending = []
        if joined:
            yield start, joined
    if pending and " ".join(pending).strip():
        yield start, " ".join(pending).strip()


def _requirement(line: str) -> tuple[bool, Requirement | None]:
    """(whether pip would accept the line, the requirement it names if any)."""
    if line.startswith("-"):  # -r, -c, -e, --index-url ...
        return True, None
    try:
        return True, Requirement(_OPTION.split(line, maxsplit=1)[0].strip())
    except InvalidRequirement:
        # `./pkg`, `/wheels/x.whl`, `git+https://…`: installable, but no registry package.
        return line.startswith((".", "/", "~")) or "://" in line, None


def _pinned_version(requirement: Requirement) -> str:
    specs = list(requirement.specifier)
    if len(specs) != 1 or requirement.url:
        return ""
    spec = specs[0]
    if spec.operator == "===" or (spec.operator == "==" and not spec.version.endswith(".*")):
        return spec.version
    return ""


# -- poetry.lock, Pipfile.lock -------------------------------------------------------------


def _poetry(file: FileContent) -> list[Package]:
    doc = load_toml(file)
    entries = table_list(doc.get("package"), "package", file.path)
    versions = _versions_by_name(entries)
    packages = []
    for entry in entries:
        name, version = _name_version(entry, file.path)
        requires = entry.get("dependencies")
        names = requires.keys() if isinstance(requires, dict) else ()
        packages.append(
            _package(name, version, file.path, dev=_poetry_dev(entry), dependencies=_resolved(names, versions))
        )
    return packages


def _poetry_dev(entry: dict[str, Any]) -> bool:
    # Lock format 1.x: category = "main" | "dev". Poetry 2: groups = [...]. Lock 2.0 says neither.
    if text_field(entry, "category") == "dev":
        return True
    groups = entry.get("groups")
    return isinstance(groups, list) and bool(groups) and "main" not in groups


def _pipfile(file: FileContent) -> list[Package]:
    doc = load_json(file)
    if not isinstance(doc, dict):
        raise ParseError(f"{file.path}: a Pipfile.lock is a JSON object")
    packages: dict[str, Package] = {}
    for section, dev in (("default", False), ("develop", True)):
        entries = doc.get(section) or {}
        if not isinstance(entries, dict):
            raise ParseError(f"{file.path}: `{section}` is not an object")
        for name, entry in entries.items():
            # Entries without a version are VCS, path or editable installs.
            version = text_field(entry, "version") if isinstance(entry, dict) else ""
            if version.startswith("=="):
                key = canonicalize_name(name)
                if key not in packages:  # in both sections: production wins
                    packages[key] = _package(name, version[2:].strip(), file.path, dev=dev)
    return list(packages.values())


def _name_version(entry: dict[str, Any], path: str) -> tuple[str, str]:
    name, version = text_field(entry, "name"), text_field(entry, "version")
    if not name or not version:
        raise ParseError(f"{path}: a package entry lacks a name or a version ({name or '?'})")
    return name, version


def _versions_by_name(entries: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    versions: dict[str, list[str]] = {}
    for entry in entries:
        name, version = text_field(entry, "name"), text_field(entry, "version")
        if name and version:
            versions.setdefault(canonicalize_name(name), []).append(version)
    return versions


def _resolved(names: Iterable[str], versions: dict[str, list[str]]) -> Iterator[str]:
    """Purls of the named dependencies that the same lockfile pins to one version."""
    for name in names:
        if not isinstance(name, str):
            continue
        found = versions.get(canonicalize_name(name), [])
        if len(found) == 1:
            yield language_purl("pypi", name, found[0])


# -- uv.lock --------------------------------------------------------------------------------

_Key = tuple[str, str]  # (canonical name, version)


def _uv(file: FileContent) -> list[Package]:
    """uv.lock: the project (and workspace members) are entries too; they give direct and dev.

    A package is dev when only the projects' dev groups reach it.
    """
    doc = load_toml(file)
    entries = table_list(doc.get("package"), "package", file.path)
    index = _uv_index(entries, file.path)
    roots = [entry for entry in entries if _is_local_project(entry)]
    prod_refs = [ref for root in roots for ref in _uv_refs(root, "dependencies", "optional-dependencies")]
    dev_refs = [ref for root in roots for ref in _uv_refs(root, "dev-dependencies")]
    prod = _reach(prod_refs, index)
    dev_only = _reach(dev_refs, index) - prod
    direct = {_ref_key(ref, index) for ref in prod_refs + dev_refs}
    packages = []
    for entry in entries:
        if _is_local_project(entry) or not text_field(entry, "version"):
            continue
        name, version = _name_version(entry, file.path)
        key = (canonicalize_name(name), version)
        dependencies = (_purl_of(_ref_key(ref, index), index) for ref in _uv_refs(entry, "dependencies"))
        packages.append(
            _package(
                name,
                version,
                file.path,
                dev=key in dev_only,
                direct=(key in direct) if roots else None,
                dependencies=(purl for purl in dependencies if purl),
            )
        )
    return packages


def _is_local_project(entry: dict[str, Any]) -> bool:
    source = entry.get("source")
    return isinstance(source, dict) and ("editable" in source or "virtual" in source)


def _uv_index(entries: list[dict[str, Any]], path: str) -> dict[str, dict[str, dict[str, Any]]]:
    """canonical name -> version -> entry."""
    index: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in entries:
        name = text_field(entry, "name")
        if not name:
            raise ParseError(f"{path}: a package entry has no name")
        index.setdefault(canonicalize_name(name), {})[text_field(entry, "version")] = entry
    return index


def _uv_refs(entry: dict[str, Any], *keys: str) -> list[dict[str, Any]]:
    """Dependency references under `keys`; grouped keys (optional, dev) map group -> list."""
    refs: list[dict[str, Any]] = []
    for key in keys:
        value = entry.get(key)
        groups = value.values() if isinstance(value, dict) else [value]
        for group in groups:
            if isinstance(group, list):
                refs.extend(ref for ref in group if isinstance(ref, dict) and text_field(ref, "name"))
    return refs


def _ref_key(ref: dict[str, Any], index: dict[str, dict[str, dict[str, Any]]]) -> _Key | None:
    name = canonicalize_name(text_field(ref, "name"))
    versions = index.get(name, {})
    version = text_field(ref, "version")
    if not version and len(versions) == 1:
        version = next(iter(versions))
    return (name, version) if version in versions else None


def _purl_of(key: _Key | None, index: dict[str, dict[str, dict[str, Any]]]) -> str:
    if key is None or not key[1]:
        return ""
    return language_purl("pypi", text_field(index[key[0]][key[1]], "name"), key[1])


def _reach(refs: list[dict[str, Any]], index: dict[str, dict[str, dict[str, Any]]]) -> set[_Key]:
    """Every entry reachable from `refs`, following extras into optional dependencies."""
    seen: set[_Key] = set()
    queue = list(refs)
    while queue:
        ref = queue.pop()
        key = _ref_key(ref, index)
        if key is None or key in seen:
            continue
        seen.add(key)
        entry = index[key[0]][key[1]]
        queue.extend(_uv_refs(entry, "dependencies"))
        extras = ref.get("extra")
        optional = entry.get("optional-dependencies")
        if isinstance(extras, list) and isinstance(optional, dict):
            for extra in extras:
                group = optional.get(extra) if isinstance(extra, str) else None
                if isinstance(group, list):
                    queue.extend(item for item in group if isinstance(item, dict))
    return seen


# -- pylock.toml (PEP 751) -------------------------------------------------------------------


def _pylock(file: FileContent) -> list[Package]:
    doc = load_toml(file)
    if "lock-version" not in doc:
        raise ParseError(f"{file.path}: no lock-version, so not a PEP 751 lock file")
    entries = table_list(doc.get("packages"), "packages", file.path)
    versions = _versions_by_name(entries)
    default_groups = _string_set(doc.get("default-groups"))
    all_groups = default_groups | _string_set(doc.get("dependency-groups"))
    packages = []
    for entry in entries:
        if not text_field(entry, "version"):  # optional for VCS and directory sources
            continue
        name, version = _name_version(entry, file.path)
        refs = table_list(entry.get("dependencies"), f"{name}.dependencies", file.path)
        packages.append(
            _package(
                name,
                version,
                file.path,
                dev=_only_in_extra_groups(text_field(entry, "marker"), default_groups, all_groups),
                dependencies=_resolved((text_field(ref, "name") for ref in refs), versions),
            )
        )
    return packages


def _string_set(value: object) -> frozenset[str]:
    return frozenset(v for v in value if isinstance(v, str)) if isinstance(value, list) else frozenset()


def _only_in_extra_groups(marker: str, default_groups: frozenset[str], all_groups: frozenset[str]) -> bool:
    """A package whose marker holds with every dependency group but not with the default ones."""
    if "dependency_groups" not in marker:
        return False
    try:
        parsed = Marker(marker)

        def holds(groups: frozenset[str]) -> bool:
            return parsed.evaluate({"dependency_groups": groups, "extras": frozenset()}, context="lock_file")

        return holds(all_groups) and not holds(default_groups)
    except Exception:  # packaging raises several kinds on odd markers; none makes a package dev
        return False
