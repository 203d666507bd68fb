"""Ruby gems: installed specifications and Bundler's Gemfile.lock.

RubyGems records every installed gem as Ruby source in
`<gem dir>/specifications/<name>-<version>[-<platform>].gemspec` (default
gems that ship with Ruby in `specifications/default/`), whatever the gem dir
is: /usr/local/lib/ruby/gems/3.3.0, /usr/local/bundle, vendor/bundle/ruby/3.3.0.
Those files are code; they are read with regular expressions for the few
literal assignments RubyGems writes (`s.name = "rack".freeze`), never run.

Gemfile.lock (or gems.locked) lists the resolved gems of a project under its
GEM, GIT and PATH sources; DEPENDENCIES names the ones the Gemfile asks for.
It does not record Gemfile groups, so no gem is marked dev.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from scans.engine.catalogers.base import FileContent
from scans.engine.catalogers.reading import decode, read_limited
from scans.engine.errors import ParseError
from scans.engine.models import Package
from scans.engine.purls import language_purl

MAX_GEMSPEC_BYTES = 4 << 20
_LOCKFILES = ("Gemfile.lock", "gems.locked")
# A Ruby string literal as RubyGems writes one: "x", 'x', %q{x} (and <>, (), []), %Q too.
_LITERAL = (
    r"""(?:"([^"\\\n]*)"|'([^'\\\n]*)'|%[qQ]\{([^}\n]*)\}|%[qQ]<([^>\n]*)>|%[qQ]\(([^)\n]*)\)|%[qQ]\[([^\]\n]*)\])"""
)
_LITERAL_RE = re.compile(_LITERAL)
_ASSIGNMENT = re.compile(r"^\s*\w+\.(name|version|licenses?)\s*=\s*(.*)$")
_DEPENDENCY = re.compile(r"^\s*\w+\.add_(runtime_dependency|dependency|development_dependency)[\s(]+" + _LITERAL)
_STUB = re.compile(r"^# stub: (\S+) (\S+) ")
_GEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_GEM_VERSION = re.compile(r"^[0-9][0-9A-Za-z.-]*$")
# Gemfile.lock lines, by their indentation as Bundler writes them.
_SOURCES = frozenset({"GEM", "GIT", "PATH", "PLUGIN SOURCE"})
_SECTIONS = _SOURCES | {"DEPENDENCIES", "PLATFORMS", "BUNDLED WITH", "RUBY VERSION", "CHECKSUMS"}
_SPEC = re.compile(r"^    ([^ ()!]+) \(([^()\s]+)\)$")
_SPEC_DEPENDENCY = re.compile(r"^      ([^ ()!]+)(?: \([^()]*\))?$")
_DIRECT = re.compile(r"^  ([^ ()!]+)!?(?: \([^()]*\))?$")


class RubyCataloger:
    name = "ruby"
    version = 1

    def wants(self, path: str) -> bool:
        if path.endswith(".gemspec"):
            # specifications/x.gemspec and specifications/default/x.gemspec; a gemspec anywhere
            # else is a gem's source tree, whose version is often code rather than a literal.
            directory = "/" + path[: path.rfind("/") + 1]
            return directory.endswith(("/specifications/", "/specifications/default/"))
        if not path.endswith(_LOCKFILES) or path[path.rfind("/") + 1 :] not in _LOCKFILES:
            return False
        # Installed gems and Bundler's git checkouts (…/gems/<name>-<version>/) may ship their own
        # lock, which records how the gem is developed, not what the image runs.
        slashed = "/" + path
        return "/gems/" not in slashed and "/node_modules/" not in slashed

    def parse(self, file: FileContent) -> list[Package]:
        if file.path.endswith(".gemspec"):
            return [_gemspec(file)]
        return _gemfile_lock(file)


def _gem(
    name: str,
    version: str,
    path: str,
    *,
    licenses: tuple[str, ...] = (),
    direct: bool | None = None,
    deps: Iterable[str] = (),
) -> Package:
    if not _GEM_NAME.match(name) or not _GEM_VERSION.match(version):
        raise ParseError(f"{path}: {name[:80]!r} {version[:80]!r} is not a gem name and version")
    return Package(
        type="gem",
        name=name,
        version=version,
        licenses=licenses,
        direct=direct,
        dependencies=tuple(sorted(set(deps))),
        path=path,
        purl=language_purl("gem", name, version),
    )


# -- specifications/*.gemspec ----------------------------------------------------------------


def _gemspec(file: FileContent) -> Package:
    # The `# stub:` line lists extension paths separated by NUL bytes, and old gemspecs may
    # hold Latin-1 descriptions: neither is a reason to lose the gem.
    text = read_limited(file, MAX_GEMSPEC_BYTES).decode("utf-8", "replace")
    fields: dict[str, list[str]] = {}
    stub: tuple[str, str] | None = None
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line)
        if match:
            fields.setdefault(match.group(1), _literals(match.group(2)))
        elif stub is None and line.startswith("# stub: "):
            found = _STUB.match(line)
            stub = (found.group(1), found.group(2)) if found else None
    name = _first(fields.get("name")) or (stub[0] if stub else "")
    version = _first(fields.get("version")) or (stub[1] if stub else "")
    if not name or not version:
        raise ParseError(f"{file.path}: no literal name and version in this gemspec")
    licenses = tuple(fields.get("licenses") or fields.get("license") or ())
    deps = (language_purl("gem", dep, "") for dep in _runtime_dependencies(text))
    return _gem(name, version, file.path, licenses=licenses, deps=deps)


def _literals(expression: str) -> list[str]:
    """The string literals of a right-hand side: `"x".freeze` or `["MIT".freeze, "Ruby".freeze]`.

    A value that is code (`Foo::VERSION`) yields nothing: it is not evaluated.
    """
    expression = expression.strip()
    if not expression.startswith(("[", '"', "'", "%")):
        return []
    return [next(group for group in m.groups() if group is not None) for m in _LITERAL_RE.finditer(expression)]


def _first(values: list[str] | None) -> str:
    return values[0].strip() if values else ""


def _runtime_dependencies(text: str) -> Iterator[str]:
    """Names of runtime dependencies.

    RubyGems' own writer puts `s.add_runtime_dependency` / `s.add_development_dependency`
    in the branch for RubyGems that tell the two apart, and repeats every one as
    `s.add_dependency` in `else` branches for older RubyGems, development ones
    included. So plain `add_dependency` counts only in gemspecs with neither.
    """
    calls = [match.groups() for match in map(_DEPENDENCY.match, text.splitlines()) if match]
    typed = any(kind != "dependency" for kind, *_ in calls)
    for kind, *literal in calls:
        if kind == "runtime_dependency" or (kind == "dependency" and not typed):
            yield next(group for group in literal if group is not None)


# -- Gemfile.lock --------------------------------------------------------------------------


def _gemfile_lock(file: FileContent) -> list[Package]:
    text = decode(read_limited(file), file.path)
    specs: dict[tuple[str, str], set[str]] = {}  # (name, version) -> names it depends on
    direct: set[str] = set()
    section, current, known = "", None, False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if not line.startswith(" "):
            section = line.strip()
            known = known or section in _SECTIONS
        elif section in _SOURCES:
            current = _source_line(line, number, file.path, specs, current)
        elif section == "DEPENDENCIES":
            match = _DIRECT.match(line)
            if not match:
                raise ParseError(f"{file.path}: line {number} is not a dependency: {line[:80]!r}")
            direct.add(match.group(1))
    if not known:
        raise ParseError(f"{file.path}: no GEM, GIT, PATH or DEPENDENCIES section, so not a Gemfile.lock")
    versions = {name: version for name, version in specs}
    return [
        _gem(
            name,
            version,
            file.path,
            direct=(name in direct) if direct else None,
            deps=(language_purl("gem", dep, versions[dep]) for dep in deps if dep in versions),
        )
        for (name, version), deps in specs.items()
    ]


def _source_line(
    line: str, number: int, path: str, specs: dict[tuple[str, str], set[str]], current: tuple[str, str] | None
) -> tuple[str, str] | None:
    """Records one line of a GEM/GIT/PATH section; returns the spec that following lines belong to."""
    if not line.startswith("    "):  # remote:, revision:, specs: ...
        return None
    if line.startswith("      "):
        match = _SPEC_DEPENDENCY.match(line)
        if current is None or not match:
            raise ParseError(f"{path}: line {number} is not a dependency of a gem: {line[:80]!r}")
        specs[current].add(match.group(1))
        return current
    match = _SPEC.match(line)
    if not match:
        raise ParseError(f"{path}: line {number} is not `name (version)`: {line[:80]!r}")
    # Bundler writes `nokogiri (1.15.4-x86_64-linux)`: the platform follows the first dash.
    key = (match.group(1), match.group(2).split("-", 1)[0])
    specs.setdefault(key, set())
    return key
