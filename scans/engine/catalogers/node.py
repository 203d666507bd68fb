"""npm packages: installed node_modules trees, and npm, yarn and pnpm lockfiles.

Files read:

- `…/node_modules/<name>/package.json` and `…/node_modules/@scope/<name>/package.json`
  at any nesting depth (and pnpm's `node_modules/.pnpm/<id>/node_modules/<name>`):
  one package per installed copy, whatever tool installed it. Deeper files
  (`node_modules/x/lib/package.json`, test fixtures) are not packages.
- `package-lock.json` / `npm-shrinkwrap.json` (v1 tree, v2/v3 `packages` map),
  `yarn.lock` (v1 and berry), `pnpm-lock.yaml` (v5, v6, v9), outside node_modules;
  lockfiles published inside a package describe its author's machine, not this one.
- `package.json` outside node_modules: the project manifest. It is not a
  package; `merge` reads it for direct and dev flags.

Decisions:

- The installed tree is the truth where it exists. A lockfile whose directory
  also holds installed packages adds nothing (`merge` drops its packages), since
  it may list packages that were never installed (`npm ci --omit=dev`).
  Without installed packages (a source tree), the lockfile is reported.
- node_modules/.package-lock.json is not read: npm itself trusts it only while
  it is newer than every folder in node_modules, which a layer does not show,
  and the package.json files are what Node loads.
- Packages marked `"private": true` are first-party code (npm refuses to
  publish them), so their purl could only ever match someone else's package.
- Copies of one name@version at several node_modules paths are one package per
  path, as Trivy reports them; within one lockfile they are one package.
- Workspace members and `file:`/`link:` dependencies are first-party and skipped.

`parse` reads one file; what needs several (dropping lockfiles beside an
installed tree, the graph of an installed tree, flags from the project
manifest) is done by `merge`, which the analyzer calls once with all of this
cataloger's packages and the kept files. Without it, installed packages keep
no dependencies and open direct flags, and lockfiles are reported beside them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import yaml

from scans.engine.catalogers.base import FileContent
from scans.engine.catalogers.reading import MAX_LOCKFILE_BYTES, decode, load_json, read_limited
from scans.engine.errors import ParseError
from scans.engine.models import Package
from scans.engine.purls import language_purl

MANIFEST = "package.json"
NPM_LOCKS = frozenset({"package-lock.json", "npm-shrinkwrap.json"})
YARN_LOCK = "yarn.lock"
PNPM_LOCK = "pnpm-lock.yaml"
_LOCKFILES = NPM_LOCKS | {YARN_LOCK, PNPM_LOCK}
_ENDINGS = (MANIFEST, *sorted(_LOCKFILES))
_NM = "node_modules/"
_MANIFEST_SUFFIX = "/" + MANIFEST

# Installed manifests of old npm releases embed the README; 4 MiB is far past any real one.
_MAX_MANIFEST = 4 << 20
_MAX_LOCK = MAX_LOCKFILE_BYTES
# PyYAML builds about 1 MB a second even with libyaml; the largest real pnpm-lock.yaml files are near 10 MB.
_MAX_YAML = 16 << 20
_LOCAL_PROTOCOLS = ("file:", "link:", "portal:", "workspace:", "exec:")
_DEP_FIELDS = ("dependencies", "optionalDependencies", "peerDependencies")
_ROOT_FIELDS = (*_DEP_FIELDS, "devDependencies")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A 20,000-package tree with 15 dependencies each, three folders deep, takes 900,000 steps;
# the bound costs about two seconds.
_MAX_RESOLVE_STEPS = 5_000_000


class NodeCataloger:
    name = "node"
    version = 1

    def wants(self, path: str) -> bool:
        if not path.endswith(_ENDINGS):  # one C call turns away almost every path
            return False
        base = path[path.rfind("/") + 1 :]
        if base == MANIFEST:
            return _NM not in path or _install_location(path) is not None
        return base in _LOCKFILES and _NM not in path

    def parse(self, file: FileContent) -> list[Package]:
        path = file.path
        base = path[path.rfind("/") + 1 :]
        if base == MANIFEST:
            if _NM in path:
                return _installed(file)
            _manifest_roots(_json_object(file, _MAX_MANIFEST, "package.json"))  # validates; not a package
            return []
        if base in NPM_LOCKS:
            return _npm_lock(file)
        if base == YARN_LOCK:
            return _yarn_lock(file)
        if base == PNPM_LOCK:
            return _pnpm_lock(file)
        return []

    def merge(self, packages: list[Package], files: Mapping[str, FileContent]) -> list[Package]:
        """Reconcile one image's packages across files; see the module notes.

        Installed copies win over lockfiles in the same project directory; the
        dependencies of installed copies are resolved as Node resolves them;
        direct and dev flags the files could not give come from the project's
        package.json.
        """
        installed = [p for p in packages if _NM in p.path]
        _link_installed(installed, files)
        by_project: dict[str, list[Package]] = {}
        for package in installed:
            by_project.setdefault(_project_dir(package.path), []).append(package)
        for project, group in by_project.items():
            _apply_manifest(group, _read_manifest(files.get(project + MANIFEST)), compute_dev=True)
        by_lockfile: dict[str, list[Package]] = {}
        seen: set[tuple[str, str, str]] = set()
        for package in sorted((p for p in packages if _NM not in p.path), key=lambda p: p.path):
            project = _project_dir(package.path)
            key = (project, package.name, package.version)  # two lockfiles side by side: the first
            if project not in by_project and key not in seen:
                seen.add(key)
                by_lockfile.setdefault(package.path, []).append(package)
        for lockfile, group in by_lockfile.items():
            manifest = _read_manifest(files.get(_project_dir(lockfile) + MANIFEST))
            # npm and pnpm lockfiles record dev flags; yarn's do not.
            _apply_manifest(group, manifest, compute_dev=lockfile.endswith(YARN_LOCK))
        return installed + [p for group in by_lockfile.values() for p in group]


# -- paths ----------------------------------------------------------------------


def _install_location(path: str) -> str | None:
    """The package directory of an installed package's own package.json, else None.

    Below the first node_modules every step must be a package name, since
    that is all Node and npm look at; pnpm's virtual store adds `.pnpm/<id>`.
    """
    head, found, rest = path.partition(_NM)
    if not found or (head and not head.endswith("/")) or not rest.endswith(_MANIFEST_SUFFIX):
        return None
    segments = rest[: -len(_MANIFEST_SUFFIX)].split("/" + _NM)
    if segments[0].startswith(".pnpm/") and len(segments) > 1 and "/" not in segments[0][6:]:
        segments = segments[1:]
    if all(_is_package_name(s) for s in segments):
        return path[: -len(_MANIFEST_SUFFIX)]
    return None


def _is_package_name(segment: str) -> bool:
    scope, slash, name = segment.partition("/")
    if slash:
        return len(scope) > 1 and scope[0] == "@" and _is_plain_name(name)
    return _is_plain_name(segment)


def _is_plain_name(name: str) -> bool:
    # npm names never start with "." or "_"; `.bin`, `.cache` and `.pnpm` are tool folders.
    return bool(name) and "/" not in name and name[0] not in "._@"


def _project_dir(path: str) -> str:
    """`app/web/` for app/web/package-lock.json and app/web/node_modules/x/package.json."""
    if path.startswith(_NM):
        return ""
    cut = path.find("/" + _NM)
    if cut >= 0:
        return path[: cut + 1]
    return path[: path.rfind("/") + 1]


def _is_nested(location: str) -> bool:
    """Whether a package directory sits inside another package (never a direct dependency)."""
    tail = location[location.find(_NM) + len(_NM) :]
    if tail.startswith(".pnpm/"):
        tail = tail[tail.find("/" + _NM) + len(_NM) + 1 :]
    return _NM in tail


class _Folders:
    """Package folders, to find what `require(name)` loads from one: the nearest
    `node_modules/<name>` walking up, as Node does.

    Each step is one dict lookup, and the steps are counted: a lockfile of
    absurdly deep folders with many dependencies must not keep a worker busy.
    """

    def __init__(self, locations: Iterable[str]) -> None:
        self._parents: dict[str, str] = {}
        self._at: dict[tuple[str, str], str] = {}
        for location in locations:
            cut = location.rfind(_NM)
            self._at[(self._parent(location), location[cut + len(_NM) :])] = location
        self._budget = _MAX_RESOLVE_STEPS

    def resolve(self, location: str, name: str) -> str | None:
        here = location
        while True:
            self._budget -= 1
            if self._budget < 0:
                raise _TooLarge
            found = self._at.get((here, name))
            if found is not None or not here:
                return found
            here = self._parent(here)

    def _parent(self, location: str) -> str:
        """The folder holding `location`: the package above a node_modules, else the directory above."""
        parent = self._parents.get(location)
        if parent is None:
            cut = location.rfind("/" + _NM)
            if cut >= 0:
                parent = location[:cut]
            elif location.startswith(_NM):
                parent = ""
            else:
                parent = location[: max(location.rfind("/"), 0)]
            self._parents[location] = parent
        return parent


class _TooLarge(Exception):
    """The dependency graph needs more resolution steps than any real project."""


# -- reading ----------------------------------------------------------------------


def _json_object(file: FileContent, limit: int, kind: str) -> dict[str, Any]:
    doc = load_json(file, limit)
    if not isinstance(doc, dict):
        raise ParseError(f"{file.path}: a {kind} must be a JSON object")
    return doc


def _yaml_object(file: FileContent, kind: str) -> dict[Any, Any]:
    return _yaml_mapping(decode(read_limited(file, _MAX_YAML), file.path), file.path, kind)


def _yaml_mapping(text: str, path: str, kind: str) -> dict[Any, Any]:
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader (libyaml's when present)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ParseError(f"{path}: not a YAML {kind} ({first})") from None
    if not isinstance(doc, dict):
        raise ParseError(f"{path}: a {kind} must be a YAML mapping")
    _refuse_aliases(doc, path)
    return doc


def _refuse_aliases(doc: dict[Any, Any], path: str) -> None:
    """Refuse YAML that shares one mapping between entries through aliases.

    Lockfile writers never use anchors; a file that does could make the
    entry-by-dependency loops below quadratic in its size (billion laughs).
    """
    seen: set[int] = set()
    for entries in doc.values():
        for entry in _dict(entries).values():
            for value in (entry, *_dict(entry).values()):
                if isinstance(value, dict | list):
                    if id(value) in seen:
                        raise ParseError(f"{path}: YAML aliases are not allowed in a lockfile")
                    seen.add(id(value))


def _dict(value: object) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _names(doc: Mapping[Any, Any], fields: Iterable[str]) -> set[str]:
    return {n for f in fields for n in _dict(doc.get(f)) if isinstance(n, str) and n}


def _licenses(doc: Mapping[str, Any]) -> tuple[str, ...]:
    value = doc.get("license")
    if isinstance(value, dict):  # {"type": "MIT", "url": …}, an old form
        value = value.get("type")
    if isinstance(value, str) and value:
        return (value,)
    legacy = doc.get("licenses")
    if not isinstance(legacy, list):
        return ()
    found = (_str(item.get("type")) if isinstance(item, dict) else _str(item) for item in legacy)
    return tuple(name for name in found if name)


@functools.lru_cache(maxsize=65536)  # packageurl takes ~40 µs a purl; graphs repeat them
def _purl(name: str, version: str) -> str:
    return language_purl("npm", name, version)


def _package(name: str, version: str, path: str, **fields: Any) -> Package:
    return Package(type="npm", name=name, version=version, path=path, purl=_purl(name, version), **fields)


# -- installed packages and project manifests ---------------------------------------------


def _installed(file: FileContent) -> list[Package]:
    doc = _json_object(file, _MAX_MANIFEST, "package.json")
    location = _install_location(file.path)
    if location is None:
        return []
    # An aliased install (`npm i foo@npm:bar`) sits in node_modules/foo but is bar.
    name = _str(doc.get("name")) or location[location.rfind(_NM) + len(_NM) :]
    version = _str(doc.get("version"))
    if not version or doc.get("private") is True:
        return []
    # Its dependencies are the copies Node would load, which only `merge` can see.
    direct = False if _is_nested(location) else None
    return [_package(name, version, file.path, licenses=_licenses(doc), direct=direct)]


@dataclass(frozen=True)
class _Roots:
    """What a project manifest asks for by name."""

    prod: frozenset[str]
    dev: frozenset[str]


def _manifest_roots(doc: Mapping[str, Any]) -> _Roots:
    return _Roots(frozenset(_names(doc, _DEP_FIELDS)), frozenset(_names(doc, ("devDependencies",))))


def _read_manifest(file: FileContent | None) -> _Roots | None:
    if file is None:
        return None
    try:
        return _manifest_roots(_json_object(file, _MAX_MANIFEST, "package.json"))
    except ParseError:  # parse() already warned about this file
        return None


def _link_installed(installed: list[Package], files: Mapping[str, FileContent]) -> None:
    """Each installed package's dependencies: the purls of the copies Node would load for it."""
    tree = {p.path[: -len(_MANIFEST_SUFFIX)]: p for p in installed}
    folders = _Folders(tree)
    for location, package in tree.items():
        file = files.get(package.path)
        try:
            requires = _names(_json_object(file, _MAX_MANIFEST, "package.json"), _DEP_FIELDS) if file else set()
            targets = [folders.resolve(location, name) for name in requires]
        except (ParseError, _TooLarge):  # parse() read it fine; an image this odd keeps no graph
            continue
        package.dependencies = tuple(sorted({tree[t].purl for t in targets if t is not None}))


def _apply_manifest(group: list[Package], roots: _Roots | None, *, compute_dev: bool) -> None:
    """Direct and dev flags from the project manifest, where the files left them open.

    Direct: a package the manifest names that is not nested in another. Dev:
    reached only from devDependencies through the dependency graph.
    """
    if roots is None:
        return
    named = roots.prod | roots.dev
    for package in group:
        if package.direct is None:
            package.direct = _wanted_as(package) in named
    if not compute_dev:
        return
    edges: dict[str, set[str]] = {}
    for package in group:
        edges.setdefault(package.purl, set()).update(package.dependencies)
    prod = _reachable((p.purl for p in group if p.direct and _wanted_as(p) in roots.prod), edges)
    dev = _reachable((p.purl for p in group if p.direct and _wanted_as(p) in roots.dev), edges)
    for package in group:
        package.dev = package.purl in dev and package.purl not in prod


def _wanted_as(package: Package) -> str:
    """The name a manifest asks for: an installed copy's folder (`legacy-ms` holding ms), else its name."""
    if _NM in package.path:
        location = package.path[: -len(_MANIFEST_SUFFIX)]
        return location[location.rfind(_NM) + len(_NM) :]
    return package.name


def _reachable(starts: Iterable[str], edges: Mapping[str, Iterable[str]]) -> set[str]:
    seen = set(starts)
    todo = list(seen)
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


# -- npm lockfiles --------------------------------------------------------------------


@dataclass
class _Entry:
    """One resolved package of a lockfile, before copies are folded together."""

    name: str
    version: str
    dev: bool = False
    direct: bool | None = None
    licenses: tuple[str, ...] = ()
    requires: list[str] = field(default_factory=list)  # names (npm) or lockfile keys (yarn, pnpm)
    dependencies: set[str] = field(default_factory=set)  # purls, once resolved


def _npm_lock(file: FileContent) -> list[Package]:
    doc = _json_object(file, _MAX_LOCK, "npm lockfile")
    if isinstance(doc.get("packages"), dict):
        tree, roots = _npm_packages_map(doc["packages"])
    elif isinstance(doc.get("dependencies"), dict):
        tree, roots = _npm_v1_tree(doc["dependencies"]), None
    elif "lockfileVersion" in doc:
        return []  # a project without dependencies
    else:
        raise ParseError(f"{file.path}: no lockfileVersion, packages or dependencies; not an npm lockfile")
    try:
        _npm_link(tree, roots)
    except _TooLarge:
        raise ParseError(f"{file.path}: dependency tree too large or deep to resolve") from None
    return _fold(file.path, (e for e in tree.values() if e is not None))


def _npm_link(tree: dict[str, _Entry | None], roots: dict[str, set[str]] | None) -> None:
    """Dependencies resolved as Node would from each folder; direct ones from the root folders."""
    folders = _Folders(tree)
    for location, entry in tree.items():
        if entry is None:
            continue
        for name in entry.requires:
            target = tree.get(folders.resolve(location, name) or "")
            if target is not None:
                entry.dependencies.add(_purl(target.name, target.version))
    if roots is None:
        return
    direct = {folders.resolve(root, name) for root, names in roots.items() for name in names}
    for location, entry in tree.items():
        if entry is not None:
            entry.direct = location in direct


def _npm_packages_map(packages: dict[str, Any]) -> tuple[dict[str, _Entry | None], dict[str, set[str]]]:
    """Lockfile v2/v3: `packages` keyed by folder. Folders outside node_modules are the
    root ("") and workspace members; links point at them and resolve to nothing reported."""
    tree: dict[str, _Entry | None] = {}
    roots: dict[str, set[str]] = {}
    for location, raw in packages.items():
        entry = _dict(raw)
        if not location.startswith(_NM) and f"/{_NM}" not in location:
            roots[location] = _names(entry, _ROOT_FIELDS)
        elif entry.get("link") is True:
            tree[location] = None
        else:
            tree[location] = _npm_entry(location, entry)
    return tree, roots


def _npm_entry(location: str, entry: dict[str, Any]) -> _Entry | None:
    name = _str(entry.get("name")) or location[location.rfind(_NM) + len(_NM) :]
    version = _str(entry.get("version"))
    if not version or version.startswith(_LOCAL_PROTOCOLS):
        return None
    return _Entry(
        name,
        version,
        dev=entry.get("dev") is True,
        licenses=_licenses(entry),
        requires=sorted(_names(entry, _DEP_FIELDS)),
    )


def _npm_v1_tree(dependencies: dict[str, Any]) -> dict[str, _Entry | None]:
    """Lockfile v1: a nested `dependencies` tree, flattened into node_modules folders."""
    tree: dict[str, _Entry | None] = {}
    todo: list[tuple[str, dict[str, Any]]] = [("", dependencies)]
    while todo:
        parent, children = todo.pop()
        for name, raw in children.items():
            entry = _dict(raw)
            location = f"{parent}/{_NM}{name}" if parent else _NM + name
            tree[location] = _npm_v1_entry(name, location, entry)
            if isinstance(entry.get("dependencies"), dict):
                todo.append((location, entry["dependencies"]))
    return tree


def _npm_v1_entry(name: str, location: str, entry: dict[str, Any]) -> _Entry | None:
    version = _str(entry.get("version"))
    if version.startswith("npm:"):  # an alias: "npm:real-name@1.2.3"
        name, version = _split_at_version(version[4:])
    if not name or not version or version.startswith(_LOCAL_PROTOCOLS):
        return None
    return _Entry(
        name,
        version,
        dev=entry.get("dev") is True,
        direct=False if f"/{_NM}" in location else None,  # v1 does not record the root's own wants
        requires=sorted(_names(entry, ("requires",))),
    )


def _split_at_version(spec: str) -> tuple[str, str]:
    """`@scope/name@1.2.3` -> (`@scope/name`, `1.2.3`)."""
    at = spec.find("@", 1)
    return (spec[:at], spec[at + 1 :]) if at > 0 else (spec, "")


def _fold(path: str, entries: Iterable[_Entry]) -> list[Package]:
    """One package per name@version of a lockfile: direct if any copy is, dev if all are."""
    folded: dict[tuple[str, str], _Entry] = {}
    for entry in entries:
        first = folded.setdefault((entry.name, entry.version), entry)
        if first is not entry:
            first.dev = first.dev and entry.dev
            first.direct = _either(first.direct, entry.direct)
            first.dependencies |= entry.dependencies
    return [
        _package(
            e.name,
            e.version,
            path,
            dev=e.dev,
            direct=e.direct,
            licenses=e.licenses,
            dependencies=tuple(sorted(e.dependencies)),
        )
        for e in folded.values()
    ]


def _either(a: bool | None, b: bool | None) -> bool | None:
    if a or b:
        return True
    return None if a is None or b is None else False


# -- yarn -------------------------------------------------------------------------------


def _yarn_lock(file: FileContent) -> list[Package]:
    text = decode(read_limited(file, _MAX_YAML), file.path)
    if text.startswith("__metadata:") or "\n__metadata:" in text:
        return _yarn_berry(file.path, _yaml_mapping(text, file.path, "yarn.lock"))
    return _yarn_v1(file.path, text)


def _yarn_v1(path: str, text: str) -> list[Package]:
    """yarn.lock v1: blocks of `spec, spec:` followed by indented fields."""
    by_spec = _yarn_v1_blocks(path, text)
    entries: dict[int, _Entry] = {}  # by block: the specs of one block share it
    for spec, block in by_spec.items():
        if id(block) in entries or spec.find("@", 1) < 0:
            continue
        name, wanted = _split_at_version(spec)
        if wanted.startswith("npm:"):  # an alias: `foo@npm:bar@^1`
            name = _split_at_version(wanted[4:])[0]
        version = block.get("version", "")
        if version and not wanted.startswith(_LOCAL_PROTOCOLS):
            requires = [f"{dep[1:]}@{spec_range}" for dep, spec_range in block.items() if dep.startswith("\0")]
            entries[id(block)] = _Entry(name, version, requires=requires)
    for entry in entries.values():
        for spec in entry.requires:
            target = entries.get(id(by_spec.get(spec)))
            if target is not None:
                entry.dependencies.add(_purl(target.name, target.version))
    return _fold(path, entries.values())


def _yarn_v1_blocks(path: str, text: str) -> dict[str, dict[str, str]]:
    """Each spec mapped to its block's fields; dependencies are kept as "\\0name" -> range."""
    by_spec: dict[str, dict[str, str]] = {}
    block: dict[str, str] | None = None
    section = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        if indent == 0:
            if not line.endswith(":"):
                raise ParseError(f"{path}: line {number}: expected `spec, spec:`, not {line[:60]!r}")
            block, section = {}, ""
            for spec in line[:-1].split(","):
                by_spec[_unquote(spec.strip())] = block
        elif block is None:
            raise ParseError(f"{path}: line {number}: indented line before any entry")
        elif indent == 2:
            key, _, value = stripped.partition(" ")
            section = key[:-1] if not value and key.endswith(":") else ""
            if not section:
                block.setdefault(_unquote(key), _unquote(value))
        elif section in ("dependencies", "optionalDependencies"):
            dep, _, wanted = stripped.partition(" ")
            block["\0" + _unquote(dep)] = _unquote(wanted)
    return by_spec


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


def _yarn_berry(path: str, doc: dict[Any, Any]) -> list[Package]:
    """yarn.lock of yarn 2+ (YAML): entries keyed by descriptors, `resolution` names the package."""
    lock = _Berry(doc)
    roots: list[dict[Any, Any]] = []
    for raw in lock.by_descriptor.values():
        entry = lock.entries.get(id(raw))
        if entry is None:
            if "@workspace:" in _str(raw.get("resolution")):
                roots.append(raw)
            continue
        entry.dependencies.update(_purl(t.name, t.version) for t in lock.targets(raw))
    # Workspace entries list what each workspace wants, dev dependencies among them.
    direct = {id(t) for root in roots for t in lock.targets(root)}
    for entry in lock.entries.values():
        entry.direct = id(entry) in direct if roots else None
    return _fold(path, lock.entries.values())


class _Berry:
    def __init__(self, doc: dict[Any, Any]) -> None:
        self.by_descriptor: dict[str, dict[Any, Any]] = {}
        for key, raw in doc.items():
            if isinstance(key, str) and key != "__metadata" and isinstance(raw, dict):
                for descriptor in key.split(","):
                    self.by_descriptor[descriptor.strip()] = raw
        self.by_resolution = {_str(raw.get("resolution")): raw for raw in self.by_descriptor.values()}
        self.entries: dict[int, _Entry] = {}  # by id of the raw entry, which descriptors share
        for raw in self.by_descriptor.values():
            entry = _berry_entry(raw)
            if entry is not None:
                self.entries.setdefault(id(raw), entry)

    def targets(self, raw: dict[Any, Any]) -> list[_Entry]:
        found = (self.lookup(_str(name), _str(wanted)) for name, wanted in _dict(raw.get("dependencies")).items())
        return [self.entries[id(t)] for t in found if t is not None and id(t) in self.entries]

    def lookup(self, name: str, wanted: str) -> dict[Any, Any] | None:
        """The entry a dependency `name: wanted` resolves to.

        Older lockfiles leave the `npm:` protocol out of dependency ranges;
        patch entries are followed to the package they patch.
        """
        raw = self.by_descriptor.get(f"{name}@{wanted}") or self.by_descriptor.get(f"{name}@npm:{wanted}")
        if raw is None:
            return None
        resolution = _str(raw.get("resolution"))
        if "@patch:" in resolution:
            base = unquote(resolution.split("@patch:", 1)[1].split("#", 1)[0])
            return self.by_resolution.get(base)
        return raw


def _berry_entry(raw: dict[Any, Any]) -> _Entry | None:
    resolution = _str(raw.get("resolution"))
    name, locator = _split_at_version(resolution)
    version = raw.get("version")
    version = str(version) if isinstance(version, str | int | float) and not isinstance(version, bool) else ""
    # Patched packages repeat the package they patch; local ones are first-party.
    if not name or not version or locator.startswith(("patch:", *_LOCAL_PROTOCOLS)):
        return None
    return _Entry(name, version)


# -- pnpm -------------------------------------------------------------------------------


def _pnpm_lock(file: FileContent) -> list[Package]:
    """pnpm-lock.yaml v5 (`/name/1.0.0`), v6 (`/name@1.0.0`) and v9 (`name@1.0.0`, with
    the graph in `snapshots`). Keys may carry peer suffixes: `_peer@1` (v5), `(peer@1)`."""
    doc = _yaml_object(file, "pnpm-lock.yaml")
    major = _pnpm_major(doc.get("lockfileVersion"), file.path)
    metadata = _dict(doc.get("packages"))
    # v9 keeps the graph in `snapshots` (peer-suffixed keys) and names in `packages`.
    raw_packages = (_dict(doc.get("snapshots")) if major >= 9 else {}) or metadata
    entries: dict[str, _Entry] = {}
    for key, raw in raw_packages.items():
        if isinstance(key, str):
            entry = _pnpm_entry(key, _dict(raw), _dict(metadata.get(_strip_peers(key))), major)
            if entry is not None:
                entries[key] = entry
    edges: dict[str, list[str]] = {}
    for key, raw in raw_packages.items():
        if key in entries:
            deps = _dict(raw).get("dependencies"), _dict(raw).get("optionalDependencies")
            edges[key] = [t for d in deps for n, v in _dict(d).items() if (t := _pnpm_key(n, v, major)) in entries]
            entries[key].dependencies = {_purl(entries[t].name, entries[t].version) for t in edges[key]}
    prod, dev = _pnpm_importer_keys(doc, major, entries)
    reached_prod, reached_dev = _reachable(prod, edges), _reachable(dev, edges)
    for key, entry in entries.items():
        entry.direct = key in prod or key in dev
        entry.dev = key in reached_dev and key not in reached_prod
    return _fold(file.path, entries.values())


def _pnpm_major(value: object, path: str) -> int:
    try:
        return int(str(value).split(".", 1)[0])
    except ValueError:
        raise ParseError(f"{path}: lockfileVersion {value!r} is not a pnpm lockfile version") from None


def _strip_peers(key: str) -> str:
    return key.split("(", 1)[0]


def _pnpm_entry(key: str, raw: dict[Any, Any], metadata: dict[Any, Any], major: int) -> _Entry | None:
    # Tarball and git packages carry their name and version as fields; registry ones in the key.
    name = _str(raw.get("name")) or _str(metadata.get("name"))
    version = _str(raw.get("version")) or _str(metadata.get("version"))
    if not (name and version):
        bare = _strip_peers(key).removeprefix("/")
        if major < 6:
            name, _, version = bare.rpartition("/")
            version = version.split("_", 1)[0]
        else:
            name, version = _split_at_version(bare)
    if not name or not version or version.startswith(_LOCAL_PROTOCOLS):
        return None
    return _Entry(name, version)


def _pnpm_key(name: object, value: object, major: int) -> str:
    """The packages/snapshots key a dependency `name: value` points at."""
    version = _str(_dict(value).get("version")) if isinstance(value, dict) else _str(value)
    if not isinstance(name, str) or not version or version.startswith(_LOCAL_PROTOCOLS):
        return ""
    if major < 6:
        return version if version.startswith("/") else f"/{name}/{version}"
    if major < 9:
        return version if version.startswith("/") else f"/{name}@{version}"
    # v9 writes an aliased dependency as the key it points at: `bar@1.0.0`.
    return version if _strip_peers(version).find("@", 1) > 0 else f"{name}@{version}"


def _pnpm_importer_keys(doc: dict[Any, Any], major: int, entries: Mapping[str, _Entry]) -> tuple[set[str], set[str]]:
    """Keys the projects depend on: (dependencies and optionalDependencies, devDependencies).

    Lockfiles of one project (v5, v6) keep these at the top level; workspaces and v9 in `importers`.
    """
    importers = [_dict(i) for i in _dict(doc.get("importers")).values()] or [doc]
    prod: set[str] = set()
    dev: set[str] = set()
    for importer in importers:
        for kind, into in (("dependencies", prod), ("optionalDependencies", prod), ("devDependencies", dev)):
            for name, value in _dict(importer.get(kind)).items():
                key = _pnpm_key(name, value, major)
                if key in entries:
                    into.add(key)
    return prod, dev
