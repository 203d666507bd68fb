"""Rust crates: Cargo.lock files, and binaries built with cargo-auditable.

Cargo.lock, versions 1 to 4, is TOML (tomllib reads it). Each `[[package]]`
has a name, a version, a `source` for crates fetched from a registry or git,
and `dependencies` written `name`, `name version` or, in version 1 always,
`name version (source)`. Crates without a source are the workspace's own
(the project being scanned, and path dependencies inside it) and are not
reported; a crate one of them depends on is marked direct.

cargo-auditable embeds the dependency tree in an ELF section `.dep-v0`:
zlib-compressed JSON, `{"packages": [{"name", "version", "source", "kind",
"dependencies": [indices], "root"}]}`. The root crate (the binary's own)
is reported with its version; other `local` crates are left out as above;
`kind: build` crates run at build time only and are reported as dev.
Binaries built without cargo-auditable record no dependencies and give
nothing. PE and Mach-O binaries are not read.
"""

from __future__ import annotations

import json
import struct
import tomllib
import zlib
from collections.abc import Callable
from typing import Any

from scans.engine.catalogers.base import FileContent
from scans.engine.errors import ParseError
from scans.engine.executables import ELF_MAGIC, BinaryFormatError, Elf
from scans.engine.models import Package
from scans.engine.purls import language_purl

LOCKFILE = "Cargo.lock"
SECTION = ".dep-v0"
_MAX_LOCKFILE = 32 << 20
_MAX_COMPRESSED = 4 << 20
_MAX_JSON = 32 << 20  # decompressed; the JSON of a few thousand crates is a few hundred KiB
_SKIPPED_DIRS = ("/.cargo/registry/", "/.cargo/git/")  # crate sources fetched by cargo, not the project


class RustCataloger:
    name = "rust"
    version = 1

    def wants(self, path: str) -> bool:
        if path != LOCKFILE and not path.endswith("/" + LOCKFILE):
            return False
        return not any(d in "/" + path for d in _SKIPPED_DIRS)

    def wants_executable(self, path: str, size: int) -> bool:
        return True

    def parse(self, file: FileContent) -> list[Package]:
        if file.path.rsplit("/", 1)[-1] == LOCKFILE:
            return parse_cargo_lock(file)
        return parse_auditable(file)


def _package(name: str, version: str, path: str, **fields: Any) -> Package:
    return Package(
        type="cargo", name=name, version=version, path=path, purl=language_purl("cargo", name, version), **fields
    )


# --------------------------------------------------------------------------
# Cargo.lock


def parse_cargo_lock(file: FileContent) -> list[Package]:
    if file.size > _MAX_LOCKFILE:
        raise ParseError(f"{file.path}: {file.size} bytes is too large for a Cargo.lock")
    try:
        doc = tomllib.loads(file.read_bytes().decode("utf-8"))
        crates = [_crate(entry) for entry in _list(doc.get("package", []), "package")]
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ParseError(f"{file.path}: malformed Cargo.lock ({exc})") from None
    purls = _resolver(crates)
    direct: set[str] = set()
    for crate in crates:
        if crate["source"] is None:
            direct.update(purls(dep) for dep in crate["dependencies"])
    packages = []
    for crate in crates:
        if crate["source"] is None:
            continue
        package = _package(crate["name"], crate["version"], file.path)
        package.direct = package.purl in direct
        package.dependencies = tuple(sorted(filter(None, (purls(dep) for dep in crate["dependencies"]))))
        packages.append(package)
    return packages


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} is not an array")
    return value


def _crate(entry: object) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ValueError("a [[package]] is not a table")
    name, version, source = entry.get("name"), entry.get("version"), entry.get("source")
    if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
        raise ValueError(f"a [[package]] lacks a name or version: {sorted(entry)}")
    if source is not None and not isinstance(source, str):
        raise ValueError(f"{name}: source is not a string")
    dependencies = _list(entry.get("dependencies", []), f"{name}: dependencies")
    if not all(isinstance(d, str) and d.strip() for d in dependencies):
        raise ValueError(f"{name}: a dependency is not a string")
    return {"name": name, "version": version, "source": source, "dependencies": dependencies}


def _resolver(crates: list[dict[str, Any]]) -> Callable[[str], str]:
    """A function from a dependency as Cargo.lock writes it to the purl of the crate it names ("" if none)."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for crate in crates:
        by_name.setdefault(crate["name"], []).append(crate)

    def purl(dependency: str) -> str:
        name, _, rest = dependency.strip().partition(" ")
        version, _, source = rest.partition(" ")
        found = [
            c
            for c in by_name.get(name, [])
            if (not version or c["version"] == version) and (not source or c["source"] == source.strip("()"))
        ]
        if not found or found[0]["source"] is None:
            return ""
        return language_purl("cargo", name, found[0]["version"])

    return purl


# --------------------------------------------------------------------------
# cargo-auditable


def parse_auditable(file: FileContent) -> list[Package]:
    with file.open() as stream:
        if stream.read(4) != ELF_MAGIC:
            return []
        try:
            elf = Elf(stream, file.size)
            section = elf.section(SECTION)
            if section is None:
                return []
            compressed = elf.section_data(section, _MAX_COMPRESSED)
        except (BinaryFormatError, struct.error) as exc:
            raise ParseError(f"{file.path}: malformed ELF file ({exc})") from None
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, _MAX_JSON)
        if inflater.unconsumed_tail:
            raise ValueError(f"dependency data inflates past {_MAX_JSON} bytes")
        doc = json.loads(raw)
        return _auditable_packages(doc, file.path)
    except (zlib.error, ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ParseError(f"{file.path}: malformed {SECTION} section ({exc})") from None


def _auditable_packages(doc: object, path: str) -> list[Package]:
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    entries = [_auditable_entry(e) for e in _list(doc.get("packages"), "packages")]
    purls = [language_purl("cargo", e["name"], e["version"]) for e in entries]
    roots = [e for e in entries if e["root"]]
    direct = {i for root in roots for i in root["dependencies"]}
    packages = []
    for index, entry in enumerate(entries):
        if entry["source"] == "local" and not entry["root"]:
            continue
        if any(i >= len(entries) for i in entry["dependencies"]):
            raise ValueError(f"{entry['name']}: a dependency index is out of range")
        package = _package(entry["name"], entry["version"], path, dev=entry["kind"] == "build")
        package.direct = None if not roots or entry["root"] else index in direct
        package.dependencies = tuple(
            sorted({purls[i] for i in entry["dependencies"] if entries[i]["source"] != "local"})
        )
        packages.append(package)
    return packages


def _auditable_entry(entry: object) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ValueError("a package is not an object")
    name, version = entry.get("name"), entry.get("version")
    if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
        raise ValueError("a package lacks a name or version")
    dependencies = _list(entry.get("dependencies", []), f"{name}: dependencies")
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in dependencies):
        raise ValueError(f"{name}: dependencies are not package indices")
    return {
        "name": name,
        "version": version,
        "source": entry.get("source", ""),
        "kind": entry.get("kind", "runtime"),
        "root": entry.get("root") is True,
        "dependencies": dependencies,
    }
