"""Matching an inventory against advisories: pure functions over plain data, no Django.

advisories.findings loads the candidate rows and enrichment from the
database and calls these in three steps:

1. `plan(packages, distro)`: how each package is looked up, a `Lookup`
   (ecosystem, distro, release, names, compared version), and which
   packages cannot be looked up at all.
2. `evaluate(lookups, candidates)`: which candidate rows affect which
   package, with OSV range semantics (`Match`), and notes for what could not
   be decided (a version that does not parse is never guessed at).
3. `build_findings(matched, enrichment)`: one Finding per (package,
   vulnerability), aliases merged, with severity, CVSS, KEV and EPSS.

How packages are looked up (what the feeds key their rows by):

- deb: by SOURCE package and source version (the Debian tracker and Ubuntu
  key rows so), release = VERSION_ID major for Debian ("12"; the codename's
  number when VERSION_ID is missing, as on testing) and VERSION_ID for Ubuntu
  ("22.04").
- apk: by origin (secdb is keyed by it) and the package version; Alpine
  release "3.11" from "3.11.13", "edge" for edge; Wolfi and Chainguard are
  "rolling", whatever their VERSION_ID.
- rpm: by package name and source name (Red Hat lists fixed binaries and
  unfixed sources), release = VERSION_ID major; CentOS is matched with Red
  Hat's data, which it rebuilds. The version is "[epoch:]version-release"
  with the epoch written only when it is not 0, as Red Hat and its rebuilds
  write fixed versions; rpm reads a missing epoch as 0, so both spellings
  compare equal. A row naming a module stream applies only to packages built
  from that stream.
- language packages: OSV ecosystem, no distro, name normalised with
  `normalize_name`. Go versions lose their "v" (OSV's Go data has none), and
  the toolchain version of "stdlib" becomes SemVer: "go1.17.2" -> "1.17.2",
  "go1.17" -> "1.17.0", "go1.21rc2" -> "1.21.0-rc.2", as golang/vulndb
  writes them.

Rules that keep findings honest:

- Distro packages match only rows of their own distro and release; language
  packages only rows without a distro. NVD records never match (NVD ranges
  describe upstream releases, and distros backport fixes). Withdrawn
  records never match.
- Distro status: `not_affected` never matches; affected, will_not_fix and
  deferred rows without ranges match every version and are reported unfixed
  with that status.
- GIT ranges are ignored: an installed version is not a commit.

Merging: the records that matched one package are grouped by their own ids
and ALIAS ids (union-find); `upstream` and `related` ids are not merged (a USN
or an RHSA names many CVEs). Two exceptions, both to keep one finding per
vulnerability: a distro's "<PREFIX>-CVE-Y" record (UBUNTU-CVE-, DEBIAN-CVE-,
ALPINE-CVE-) is merged with CVE-Y when it names CVE-Y upstream; and a group
never holds two different CVE ids, because an id shared by several CVEs
(Alpine writes "CVE-2017-10920 XSA-224" and "CVE-2017-10921 XSA-224") names
a bundle, not one vulnerability. The finding's id is the CVE, else the GHSA,
else the first id; every other id is an alias.

Severity, by source preference: for distro packages the distro's own rating
(the row's urgency/priority/impact, then the distro's rating of the
advisory), then GHSA/OSV (GitHub's rating, then CVSS of GHSA and OSV
records), then NVD's CVSS; for language packages the last two. Words map to
SEVERITIES (SEVERITY_WORDS); a word that rates nothing ("not yet assigned")
leaves the choice to the next source, and UNKNOWN means no source rated it.
The CVSS vector and score are those of the most preferred source with one.
KEV and EPSS attach by any CVE id of the finding.

Cost: versions are parsed once per string and ranges once per record
(lru caches), packages sharing a lookup (the binaries of one source) are
evaluated once, and a vulnerability's description is made once per report.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, NamedTuple

from univers.versions import PypiVersion

from advisories import versions
from advisories.importers.base import DISTRO_ECOSYSTEMS, ECOSYSTEMS, SeverityScore, SeverityType, Status, normalize_name
from advisories.importers.debian_tracker import CODENAMES as DEBIAN_CODENAMES
from scans.engine.findings import Evidence, Finding, FixState
from scans.engine.models import Distro, Package

ROLLING = "rolling"  # the release of Wolfi and Chainguard rows, as the importers write it
SEMVER = "SEMVER"
NVD = "nvd"

# os-release ID -> (OSV ecosystem, the distro as rows name it) for each OS package type.
_DEB_DISTROS = {"debian": ("Debian", "debian"), "ubuntu": ("Ubuntu", "ubuntu")}
_APK_DISTROS = {"alpine": ("Alpine", "alpine"), "wolfi": ("Wolfi", "wolfi"), "chainguard": ("Chainguard", "chainguard")}
_RPM_DISTROS = {
    "rhel": ("Red Hat", "rhel"),
    "centos": ("Red Hat", "rhel"),  # CentOS rebuilds RHEL and has no data of its own
    "rocky": ("Rocky Linux", "rocky"),
    "almalinux": ("AlmaLinux", "almalinux"),
    "amzn": ("Amazon Linux", "amzn"),
    "ol": ("Oracle Linux", "ol"),
    "sles": ("SUSE", "sles"),
    "opensuse-leap": ("openSUSE", "opensuse-leap"),
    "opensuse-tumbleweed": ("openSUSE", "opensuse-tumbleweed"),
}
OS_DISTROS = {"deb": _DEB_DISTROS, "apk": _APK_DISTROS, "rpm": _RPM_DISTROS}
# purl type -> OSV ecosystem, for language packages
LANGUAGE_ECOSYSTEMS = {purl: eco for eco, purl in ECOSYSTEMS.items() if eco not in DISTRO_ECOSYSTEMS}
# Whose own rating counts first for a distro's packages (the `source` of a severity, see importers.osv._RATERS).
DISTRO_RATERS = {
    "Debian": "debian",
    "Ubuntu": "ubuntu",
    "Alpine": "alpine",
    "Wolfi": "wolfi",
    "Chainguard": "chainguard",
    "Red Hat": "redhat",
    "Rocky Linux": "rocky",
    "AlmaLinux": "almalinux",
    "Amazon Linux": "amazon",
    "Oracle Linux": "oracle",
    "SUSE": "suse",
    "openSUSE": "suse",
}
# Severity sources of the second tier: GitHub's reviewed advisories and OSV databases (PYSEC, GO ...).
ECOSYSTEM_RATERS = frozenset({"ghsa", "osv"})

# Every publisher's words, to SEVERITIES. "unimportant" (Debian: not treated as a security issue) and "negligible"
# (Ubuntu) are LOW: someone rated them, lowest. Words that rate nothing ("not yet assigned", "end-of-life",
# "untriaged", "unknown") are absent, so the next source decides, and UNKNOWN is left for when no source rated it.
SEVERITY_WORDS = {
    "critical": "CRITICAL",
    "important": "HIGH",
    "high": "HIGH",
    "moderate": "MEDIUM",
    "medium": "MEDIUM",
    "low": "LOW",
    "negligible": "LOW",
    "unimportant": "LOW",
    "none": "LOW",  # CVSS "None" (score 0.0)
}
_SEVERITY_RANK = {"CRITICAL": 4, "HIGH": 3, "MEDIUM": 2, "LOW": 1}
# v3.x first: it is what most policies and readers use; v4.0 is still rare in the feeds.
_CVSS_PREFERENCE = (SeverityType.CVSS_V3, SeverityType.CVSS_V4, SeverityType.CVSS_V2)
_UNFIXED = (Status.AFFECTED, Status.DEFERRED, Status.WILL_NOT_FIX)
_FIX_STATE_ORDER = (FixState.FIXED, FixState.AFFECTED, FixState.DEFERRED, FixState.WILL_NOT_FIX)
_DISTRO_CVE = re.compile(r"[A-Z]+-(CVE-\d{4}-\d+)")
_GO_TOOLCHAIN = re.compile(r"go(\d+)\.(\d+)(?:\.(\d+))?(?:(beta|rc)(\d+))?")


# -- the data --------------------------------------------------------------------------------------------------------


class RangeSpec(NamedTuple):
    """An OSV range as stored: type and (kind, version) events in the order given."""

    type: str
    events: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Record:
    """An advisory as the matcher needs it; `pk` keys what is loaded for it later (details)."""

    pk: int
    id: str
    source: str  # the importer: osv, alpine-secdb, debian-tracker, nvd ...
    feed: str = ""
    aliases: tuple[str, ...] = ()  # ids of the same vulnerability (kind ALIAS)
    upstream: tuple[str, ...] = ()
    withdrawn: bool = False
    summary: str = ""
    references: tuple[str, ...] = ()
    cwes: tuple[str, ...] = ()

    @functools.cached_property
    def same_ids(self) -> tuple[str, ...]:
        """The ids that name the same vulnerability: its own, its aliases, and for "<PREFIX>-CVE-Y" CVE-Y."""
        ids = [self.id, *sorted(self.aliases)]  # sorted: which of two CVEs a record joins must not depend on order
        distro_cve = _DISTRO_CVE.fullmatch(self.id)
        if distro_cve and distro_cve.group(1) in self.upstream:
            ids.append(distro_cve.group(1))
        return tuple(dict.fromkeys(ids))


@dataclass(frozen=True)
class Candidate:
    """An affected-package row that may apply to a package."""

    record: Record
    ecosystem: str
    package: str
    distro: str = ""
    release: str = ""
    ranges: tuple[RangeSpec, ...] = ()
    versions: tuple[str, ...] = ()
    status: str = ""
    severity: str = ""  # the distro's own rating of this package, as written
    module: str = ""


class Lookup(NamedTuple):  # a NamedTuple: made once per package, and a dict key
    """How one package is looked up: rows of (ecosystem, distro, release) naming one of `names`."""

    ecosystem: str
    distro: str = ""
    release: str = ""
    names: tuple[str, ...] = ()
    version: str = ""  # the version compared with the rows' versions
    module: str = ""  # rpm module stream, "nodejs:18"

    @property
    def key(self) -> tuple[str, str, str]:
        return self.ecosystem, self.distro, self.release

    @property
    def is_distro(self) -> bool:
        return bool(self.distro)


@dataclass
class Plan:
    lookups: list[tuple[Package, Lookup]] = field(default_factory=list)
    # OS packages that cannot be looked up, by reason: never to be read as "no vulnerabilities"
    unsupported: dict[str, int] = field(default_factory=dict)
    unmatched_types: dict[str, int] = field(default_factory=dict)  # package types no feed covers


@dataclass(frozen=True)
class Match:
    """One candidate row that affects the installed version."""

    candidate: Candidate
    fix_state: str
    fixed_versions: tuple[str, ...]
    reason: str  # the range or status that matched, in words

    @property
    def record(self) -> Record:
        return self.candidate.record


@dataclass
class PackageMatches:
    package: Package
    lookup: Lookup
    matches: tuple[Match, ...] = ()  # shared by the packages of one lookup (binaries of one source)


@dataclass(frozen=True)
class Enrichment:
    """What the findings take from beyond the matching rows, by vulnerability id."""

    severities: Mapping[str, Sequence[SeverityScore]] = field(default_factory=dict)  # any record's, by its ids
    kev: Mapping[str, date | None] = field(default_factory=dict)  # CVE id -> date added
    epss: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # CVE id -> (score, percentile)
    details: Mapping[int, str] = field(default_factory=dict)  # Record.pk -> details


@dataclass
class Result:
    findings: list[Finding]
    notes: list[str]


# -- 1. lookups ------------------------------------------------------------------------------------------------------


def go_version(version: str) -> str:
    """A Go module or toolchain version as OSV's Go data writes it: no "v", and SemVer for toolchains."""
    version = version.strip().split(" ", 1)[0]  # "go1.22.0 X:nocoverageredesign"
    m = _GO_TOOLCHAIN.fullmatch(version)
    if m is None:
        return version.removeprefix("v")
    major, minor, patch, pre, pre_no = m.groups()
    semver = f"{major}.{minor}.{patch or 0}"
    return f"{semver}-{pre}.{pre_no}" if pre else semver


def _release(ecosystem: str, distro: Distro) -> str:
    if ecosystem in ("Wolfi", "Chainguard"):
        return ROLLING
    if ecosystem == "Alpine":
        if "_alpha" in distro.version_id or "edge" in distro.pretty_name.lower():
            return "edge"
        return ".".join(distro.version_id.split(".")[:2])
    if ecosystem in ("Ubuntu", "SUSE", "openSUSE"):
        return ROLLING if distro.id == "opensuse-tumbleweed" else distro.version_id
    if ecosystem == "Debian" and not distro.version_id:
        return DEBIAN_CODENAMES.get(distro.codename, "")
    return distro.major


def _os_lookup(package: Package, ecosystem: str, distro_id: str, release: str) -> Lookup:
    if package.type == "rpm":
        evr = package.version if not package.epoch else f"{package.epoch}:{package.version}"
        names = tuple(dict.fromkeys(n for n in (package.name, package.source_name) if n))
        module = ":".join(package.modularity_label.split(":")[:2]) if package.modularity_label else ""
        return Lookup(ecosystem, distro_id, release, names, evr, module)
    if package.type == "deb":
        return Lookup(ecosystem, distro_id, release, (package.source_name or package.name,),
                      package.source_version or package.version)  # fmt: skip
    return Lookup(ecosystem, distro_id, release, (package.source_name or package.name,), package.version)


def lookup(package: Package, distro: Distro | None) -> Lookup | str | None:
    """How `package` is looked up; a reason (str) when it is an OS package that cannot be; None when no feed covers
    its type."""
    if package.type in LANGUAGE_ECOSYSTEMS:
        ecosystem = LANGUAGE_ECOSYSTEMS[package.type]
        version = go_version(package.version) if ecosystem == "Go" else package.version
        return Lookup(ecosystem, names=(normalize_name(ecosystem, package.name),), version=version)
    distros = OS_DISTROS.get(package.type)
    if distros is None:
        return None
    if distro is None:
        return f"{package.type} packages in an image whose distribution is unknown"
    if distro.id not in distros:
        return f"{package.type} packages on {distro.id} {distro.version_id}".rstrip()
    ecosystem, distro_id = distros[distro.id]
    release = _release(ecosystem, distro)
    if not release:
        return f"{distro.id} without a release version"
    return _os_lookup(package, ecosystem, distro_id, release)


def plan(packages: Iterable[Package], distro: Distro | None) -> Plan:
    result = Plan()
    for package in packages:
        found = lookup(package, distro)
        if isinstance(found, Lookup):
            result.lookups.append((package, found))
        elif isinstance(found, str):
            result.unsupported[found] = result.unsupported.get(found, 0) + 1
        else:
            result.unmatched_types[package.type] = result.unmatched_types.get(package.type, 0) + 1
    return result


# -- 2. ranges -------------------------------------------------------------------------------------------------------


class Unparsable(Exception):
    """A version that is not one of its scheme: the caller turns it into a note, never into a guess."""

    def __init__(self, version: str, scheme: str) -> None:
        super().__init__(f"{version!r} is not a {scheme} version")
        self.version = version
        self.scheme = scheme


# What parse_version gives: a univers Version of advisories.versions, or for PyPI the packaging Version inside one.
Comparable = Any


@functools.lru_cache(maxsize=1 << 16)
def parse_version(scheme: str, text: str) -> Comparable | None:
    """A comparable version, None when `text` is not one; cached, since a feed repeats its versions everywhere."""
    try:
        # SEMVER ranges are SemVer 2.0 whatever the ecosystem; npm's scheme is exactly that.
        parsed = versions.parse("npm" if scheme == SEMVER else scheme, text)
    except Exception:  # ValueError, and univers' own InvalidNuGetVersion that versions.parse lets through
        return None
    # univers' PypiVersion compares through attrs on the packaging Version it holds: comparing that directly
    # orders the same at a fraction of the cost (a PyPI record lists up to hundreds of versions).
    return parsed.value if isinstance(parsed, PypiVersion) else parsed


def _parsed(scheme: str, text: str) -> Comparable:
    parsed = parse_version(scheme, text)
    if parsed is None:
        raise Unparsable(text, scheme)
    return parsed


def _event_order(a: tuple[str, Comparable | None], b: tuple[str, Comparable | None]) -> int:
    if a[1] is None or b[1] is None:  # introduced "0": before everything
        return (b[1] is None) - (a[1] is None)
    return versions.cmp_versions(a[1], b[1])


class _Prepared(NamedTuple):
    limits: tuple[Comparable | None, ...]  # None: "*", no limit
    events: tuple[tuple[str, Comparable | None], ...]  # introduced/fixed/last_affected in version order
    fixes: tuple[tuple[Comparable, str], ...]


@functools.lru_cache(maxsize=1 << 15)
def _prepare(scheme: str, events: tuple[tuple[str, str], ...]) -> _Prepared:
    """A range's versions parsed once; raises Unparsable (not cached: it is raised again on the next call)."""
    ordered: list[tuple[str, Comparable | None]] = []
    limits: list[Comparable | None] = []
    fixes: list[tuple[Comparable, str]] = []
    for kind, text in events:
        if kind == "limit":
            limits.append(None if text == "*" else _parsed(scheme, text))
        elif kind in ("introduced", "fixed", "last_affected"):
            ordered.append((kind, None if kind == "introduced" and text == "0" else _parsed(scheme, text)))
            fixes += [(_parsed(scheme, text), text)] if kind == "fixed" else []
    ordered.sort(key=functools.cmp_to_key(_event_order))  # stable: equal versions keep the record's order
    return _Prepared(tuple(limits), tuple(ordered), tuple(fixes))


def in_range(scheme: str, version: Comparable, events: tuple[tuple[str, str], ...]) -> bool:
    """OSV's IncludedInRanges for one range; raises Unparsable for an event version not of `scheme`."""
    prepared = _prepare(scheme, events)
    if prepared.limits and not any(limit is None or version < limit for limit in prepared.limits):
        return False
    affected = False
    for kind, bound in prepared.events:
        if kind == "introduced":
            affected = affected or bound is None or version >= bound
        elif bound is not None and (version > bound if kind == "last_affected" else version >= bound):
            affected = False  # fixed, or past the last affected version
    return affected


def _next_fix(scheme: str, version: Comparable, events: tuple[tuple[str, str], ...]) -> str:
    """The lowest fixed event above the installed version: what to upgrade to."""
    above = [fix for fix in _prepare(scheme, events).fixes if fix[0] > version]
    return min(above, key=lambda fix: fix[0])[1] if above else ""


def _words(spec: RangeSpec) -> str:
    words = ", ".join(f"{kind} {text}" for kind, text in spec.events)
    return f"{words} ({SEMVER})" if spec.type == SEMVER else words


@functools.lru_cache(maxsize=1 << 12)
def _listed_versions(scheme: str, listed: tuple[str, ...]) -> frozenset[Comparable]:
    return frozenset(p for p in (parse_version(scheme, v) for v in listed) if p is not None)


def _listed(scheme: str, version: str, listed: tuple[str, ...]) -> bool:
    """Listed as written, or as an equal version ("3.2" and "3.2.0" in PEP 440)."""
    if version in listed:
        return True
    parsed = parse_version(scheme, version)
    return parsed is not None and parsed in _listed_versions(scheme, listed)


# -- 2. candidates ---------------------------------------------------------------------------------------------------


def applies(found: Lookup, candidate: Candidate) -> bool:
    """Whether the row is about this package at all, before versions are compared."""
    record = candidate.record
    if record.withdrawn or record.source == NVD or candidate.status == Status.NOT_AFFECTED:
        return False
    if (candidate.ecosystem, candidate.distro, candidate.release) != found.key or candidate.package not in found.names:
        return False  # another release's rows, or upstream (distro-less) rows for a distro package
    return not candidate.module or candidate.module == found.module


def _fix_state(candidate: Candidate, fixed: Sequence[str]) -> str:
    if fixed:
        return FixState.FIXED
    return candidate.status if candidate.status in _UNFIXED else FixState.AFFECTED


def _ranges_match(found: Lookup, candidate: Candidate) -> tuple[list[str], list[str]]:
    """(fixed versions, reasons) of the ranges holding the installed version; raises Unparsable."""
    fixed: list[str] = []
    reasons: list[str] = []
    for spec in candidate.ranges:
        if spec.type not in (SEMVER, "ECOSYSTEM"):
            continue  # GIT: commits, not versions
        scheme = SEMVER if spec.type == SEMVER else found.ecosystem
        version = _parsed(scheme, found.version)
        if in_range(scheme, version, spec.events):
            fix = _next_fix(scheme, version, spec.events)
            fixed += [fix] if fix and fix not in fixed else []
            reasons.append(_words(spec))
    return fixed, reasons


def match_candidate(found: Lookup, candidate: Candidate) -> Match | None:
    """The match if the row affects the installed version; raises Unparsable when a version cannot be read."""
    if not applies(found, candidate):
        return None
    if not candidate.ranges and not candidate.versions:
        if candidate.status in _UNFIXED:
            return Match(candidate, candidate.status, (), f"status {candidate.status}, no fixed version")
        return None
    listed = bool(candidate.versions) and _listed(found.ecosystem, found.version, candidate.versions)
    try:
        fixed, reasons = _ranges_match(found, candidate)  # also when listed: the ranges know the fix
    except Unparsable:
        if not listed:
            raise
        fixed, reasons = [], []  # listed as written: affected, whatever the ranges hold
    if listed and not reasons:
        reasons = [f"version {found.version} listed"]
    if not reasons:
        return None
    return Match(candidate, _fix_state(candidate, fixed), tuple(fixed), "; ".join(reasons))


@dataclass(frozen=True)
class Outcome:
    """What one lookup's candidates say; the same for every package of that lookup."""

    matches: tuple[Match, ...] = ()
    unchecked: tuple[str, ...] = ()  # records not checked: the installed version does not parse
    bad_ranges: tuple[tuple[str, str], ...] = ()  # (record, reason): a range version does not parse


def evaluate_lookup(found: Lookup, candidates: Iterable[Candidate]) -> Outcome:
    matches: list[Match] = []
    unchecked: list[str] = []
    bad_ranges: list[tuple[str, str]] = []
    for candidate in candidates:
        try:
            match = match_candidate(found, candidate)
        except Unparsable as exc:
            if exc.version == found.version:
                unchecked.append(candidate.record.id)
            else:
                bad_ranges.append((candidate.record.id, str(exc)))
            continue
        if match is not None:
            matches.append(match)
    return Outcome(tuple(matches), tuple(sorted(set(unchecked))), tuple(bad_ranges))


def _note(package: Package, found: Lookup, outcome: Outcome, notes: set[str]) -> None:
    notes.update(f"{record}: range version {reason}; not applied to {package.name}"
                 for record, reason in outcome.bad_ranges)  # fmt: skip
    if outcome.unchecked:
        ids = outcome.unchecked
        more = f" and {len(ids) - 3} more" if len(ids) > 3 else ""
        notes.add(f"{package.type} {package.name} {found.version!r} is not a {found.ecosystem} version: "
                  f"{', '.join(ids[:3])}{more} not checked")  # fmt: skip


def evaluate_package(
    package: Package, found: Lookup, candidates: Iterable[Candidate], notes: set[str]
) -> PackageMatches:
    outcome = evaluate_lookup(found, candidates)
    _note(package, found, outcome, notes)
    return PackageMatches(package, found, outcome.matches)


def evaluate(
    lookups: Iterable[tuple[Package, Lookup]], candidates: Callable[[Lookup], Iterable[Candidate]]
) -> tuple[list[PackageMatches], list[str]]:
    """Every package's matches, and notes on what could not be decided.

    Packages with the same lookup (the binaries of one source package, one library in many images) are
    evaluated once.
    """
    notes: set[str] = set()
    outcomes: dict[Lookup, Outcome] = {}
    matched = []
    for package, found in lookups:
        outcome = outcomes.get(found)
        if outcome is None:
            outcome = outcomes[found] = evaluate_lookup(found, candidates(found))
        _note(package, found, outcome, notes)
        matched.append(PackageMatches(package, found, outcome.matches))
    return matched, sorted(notes)


def candidates_by_name(rows: Iterable[Candidate]) -> Callable[[Lookup], list[Candidate]]:
    """A candidate source for `evaluate` from rows held in memory."""
    index: dict[tuple[str, str, str, str], list[Candidate]] = defaultdict(list)
    for row in rows:
        index[(row.ecosystem, row.distro, row.release, row.package)].append(row)
    return lambda found: [row for name in found.names for row in index.get((*found.key, name), ())]


# -- 3. grouping -----------------------------------------------------------------------------------------------------


class _Groups:
    """Union-find over ids that refuses to join two different CVEs."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.cve: dict[str, str] = {}

    def find(self, node: str) -> str:
        if node not in self.parent:
            self.parent[node] = node
            if node.startswith("CVE-"):
                self.cve[node] = node
        while self.parent[node] != node:
            self.parent[node] = self.parent[self.parent[node]]
            node = self.parent[node]
        return node

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        ca, cb = self.cve.get(ra), self.cve.get(rb)
        if ca and cb and ca != cb:
            return
        self.parent[rb] = ra
        if cb:
            self.cve[ra] = cb


def group(matches: Sequence[Match]) -> list[tuple[list[Match], list[str]]]:
    """The matches of one package by vulnerability, each with its ids (the group's, then unclaimed aliases)."""
    keys = tuple((m.record.feed, m.record.same_ids) for m in matches)
    return [([matches[i] for i in members], list(ids)) for members, ids in _grouping(keys)]


@functools.lru_cache(maxsize=1 << 12)
def _grouping(records: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[tuple[tuple[int, ...], tuple[str, ...]], ...]:
    """`group` by position, from each record's (feed, same_ids); cached, since every version of a package tends to
    match the same records."""
    ordered = sorted(range(len(records)), key=lambda n: (records[n][1][0], records[n][0]))
    groups = _Groups()
    for n in ordered:
        own_id, *others = records[n][1]
        for other in others:
            groups.union(own_id, other)
    by_root: dict[str, list[int]] = defaultdict(list)
    for n in ordered:
        by_root[groups.find(records[n][1][0])].append(n)
    result = []
    for root, members in by_root.items():
        named = {i for n in members for i in records[n][1]}
        own = sorted(i for i in named if groups.find(i) == root)
        # an alias that another group did not claim (a CVE refused above, say) is still listed here
        unclaimed = sorted(i for i in named if groups.find(i) not in by_root)
        result.append((tuple(members), tuple(own + unclaimed)))
    return tuple(result)


def preferred_id(ids: Sequence[str]) -> str:
    """The first CVE, else the first GHSA, else the first id."""
    return next((i for i in ids if i.startswith("CVE-")), next((i for i in ids if i.startswith("GHSA-")), ids[0]))


# -- 3. severity -----------------------------------------------------------------------------------------------------


def normalize_severity(word: str) -> str:
    """A publisher's rating as one of SEVERITIES without UNKNOWN; "" when it rates nothing."""
    return SEVERITY_WORDS.get(word.strip().lower(), "")


class Severity(NamedTuple):
    severity: str = "UNKNOWN"
    source: str = ""
    cvss_vector: str = ""
    cvss_score: float | None = None


def _tiers(found: Lookup) -> list[Callable[[str], bool]]:
    """Severity sources in order of preference: the distro's own (distro packages), then GHSA/OSV, then NVD."""
    tiers: list[Callable[[str], bool]] = []
    if found.is_distro:
        rater = DISTRO_RATERS.get(found.ecosystem, "")
        tiers.append(lambda source: source == rater)
    tiers.append(lambda source: source in ECOSYSTEM_RATERS)
    tiers.append(lambda source: source == NVD)
    return tiers


def _highest(words: Iterable[str]) -> str:
    ratings = [r for r in (normalize_severity(w) for w in words) if r]
    return max(ratings, key=_SEVERITY_RANK.__getitem__, default="")


def _best_cvss(scores: Sequence[SeverityScore]) -> SeverityScore | None:
    for kind in _CVSS_PREFERENCE:
        of_kind = [s for s in scores if s.type == kind]
        if of_kind:
            return max(of_kind, key=lambda s: s.score or 0.0)
    return None


def _rating(scores: Sequence[SeverityScore]) -> tuple[str, str, SeverityScore | None]:
    """A tier's rating and who gave it (vendor words first, then its best CVSS), and its best CVSS."""
    cvss = _best_cvss(scores)
    vendor = [(r, s.source) for s in scores if s.type == SeverityType.VENDOR and (r := normalize_severity(s.rating))]
    if vendor:
        rating, source = max(vendor, key=lambda v: _SEVERITY_RANK[v[0]])
        return rating, source, cvss
    if cvss and normalize_severity(cvss.rating):
        return normalize_severity(cvss.rating), cvss.source, cvss
    return "", "", cvss


def choose_severity(found: Lookup, matches: Sequence[Match], scores: Sequence[SeverityScore]) -> Severity:
    """Severity by source preference; the CVSS vector and score of the most preferred source that has one."""
    severity, source, cvss = "", "", None
    for index, in_tier in enumerate(_tiers(found)):
        rating, rater, tier_cvss = _rating([s for s in scores if in_tier(s.source)])
        if index == 0 and found.is_distro:  # the distro's rating of this very package beats its per-CVE one
            row = _highest(m.candidate.severity for m in matches if m.candidate.distro)
            rating, rater = (row, DISTRO_RATERS.get(found.ecosystem, "")) if row else (rating, rater)
        if rating and not severity:
            severity, source = rating, rater
        cvss = cvss or tier_cvss
    return Severity(severity or "UNKNOWN", source, cvss.vector if cvss else "", cvss.score if cvss else None)


# -- 3. findings -----------------------------------------------------------------------------------------------------


def _evidence(found: Lookup, match: Match) -> Evidence:
    candidate = match.candidate
    return Evidence(
        advisory_id=match.record.id,
        source=match.record.source,
        feed=match.record.feed,
        ecosystem=candidate.ecosystem,
        distro=candidate.distro,
        release=candidate.release,
        package=candidate.package,
        matched_version=found.version,
        range=match.reason,
        status=candidate.status,
    )


def _fixed_versions(found: Lookup, matches: Sequence[Match]) -> tuple[str, ...]:
    if len(matches) == 1 and len(matches[0].fixed_versions) < 2:
        return matches[0].fixed_versions
    fixed = list(dict.fromkeys(v for m in matches for v in m.fixed_versions))
    parsed = [p for p in (parse_version(found.ecosystem, v) for v in fixed) if p is not None]
    if len(parsed) == len(fixed):  # SEMVER fixes of a non-SemVer ecosystem keep the records' order
        fixed = [v for _, v in sorted(zip(parsed, fixed, strict=True), key=lambda pair: pair[0])]
    return tuple(fixed)


def _exploitation(ids: Sequence[str], enrichment: Enrichment) -> tuple[bool, date | None, float | None, float | None]:
    cves = [i for i in ids if i.startswith("CVE-")]
    kev = [i for i in cves if i in enrichment.kev]
    dates = [d for d in (enrichment.kev[i] for i in kev) if d is not None]
    epss = max((enrichment.epss[i] for i in cves if i in enrichment.epss), default=None)
    return bool(kev), min(dates, default=None), epss[0] if epss else None, epss[1] if epss else None


def _text(vuln_id: str, records: Sequence[Record], enrichment: Enrichment) -> tuple[str, str]:
    """Title and description from the record named by the preferred id, else the first that has them."""
    ordered = sorted(records, key=lambda r: (vuln_id not in r.same_ids, not r.summary))
    title = next((r.summary for r in ordered if r.summary), "")
    description = next((enrichment.details[r.pk] for r in ordered if enrichment.details.get(r.pk)), "")
    return title, description


@dataclass(frozen=True)
class Vulnerability:
    """What a finding says about the vulnerability itself, the same for every package it is found in."""

    id: str
    aliases: tuple[str, ...]
    severity: Severity
    title: str
    description: str
    references: tuple[str, ...]
    cwes: tuple[str, ...]
    kev: bool
    kev_date_added: date | None
    epss_score: float | None
    epss_percentile: float | None


def describe(found: Lookup, matches: Sequence[Match], ids: Sequence[str], enrichment: Enrichment) -> Vulnerability:
    vuln_id = preferred_id(ids)
    records = list({m.record.pk: m.record for m in matches}.values())
    scores = list(dict.fromkeys(s for i in ids for s in enrichment.severities.get(i, ())))
    kev, kev_date, epss, percentile = _exploitation(ids, enrichment)
    title, description = _text(vuln_id, records, enrichment)
    return Vulnerability(
        id=vuln_id,
        aliases=tuple(sorted(i for i in ids if i != vuln_id)),
        severity=choose_severity(found, matches, scores),
        title=title,
        description=description,
        references=tuple(dict.fromkeys(u for r in records for u in r.references)),
        cwes=tuple(sorted({c for r in records for c in r.cwes})),
        kev=kev,
        kev_date_added=kev_date,
        epss_score=epss,
        epss_percentile=percentile,
    )


def _described(
    found: Lookup, matches: Sequence[Match], ids: Sequence[str], enrichment: Enrichment, known: dict[Any, Vulnerability]
) -> Vulnerability:
    """`describe`, once per vulnerability and severity tier: the same CVE in a hundred packages is one lookup."""
    row_rating = _highest(m.candidate.severity for m in matches if m.candidate.distro)
    key = (tuple(ids), frozenset(m.record.pk for m in matches), found.ecosystem if found.is_distro else "", row_rating)
    if key not in known:
        known[key] = describe(found, matches, ids, enrichment)
    return known[key]


def make_finding(package: Package, found: Lookup, matches: Sequence[Match], vulnerability: Vulnerability) -> Finding:
    severity = vulnerability.severity
    return Finding(
        id=vulnerability.id,
        aliases=vulnerability.aliases,
        package=package,
        fix_state=min((m.fix_state for m in matches), key=_FIX_STATE_ORDER.index),
        fixed_versions=_fixed_versions(found, matches),
        severity=severity.severity,
        severity_source=severity.source,
        cvss_vector=severity.cvss_vector,
        cvss_score=severity.cvss_score,
        title=vulnerability.title,
        description=vulnerability.description,
        references=vulnerability.references,
        cwes=vulnerability.cwes,
        kev=vulnerability.kev,
        kev_date_added=vulnerability.kev_date_added,
        epss_score=vulnerability.epss_score,
        epss_percentile=vulnerability.epss_percentile,
        evidence=tuple(sorted((_evidence(found, m) for m in matches), key=lambda e: (e.source, e.advisory_id))),
    )


def vulnerability_ids(matched: Iterable[PackageMatches]) -> set[str]:
    """Every id the findings will carry: what severities, KEV and EPSS are loaded for."""
    return {i for pm in matched for m in pm.matches for i in m.record.same_ids}


def build_findings(matched: Sequence[PackageMatches], enrichment: Enrichment) -> list[Finding]:
    """One finding per (package, vulnerability), sorted by package then id."""
    # Packages that share a lookup share its matches (one tuple, see `evaluate`): their findings differ only in
    # the package, so each is made once. The key is the tuple's identity; `matched` keeps every tuple alive.
    made: dict[tuple[Lookup, int], list[Finding]] = {}
    known: dict[Any, Vulnerability] = {}
    findings: list[Finding] = []
    for pm in matched:
        key = (pm.lookup, id(pm.matches))
        if key not in made:
            made[key] = [
                make_finding(pm.package, pm.lookup, members, _described(pm.lookup, members, ids, enrichment, known))
                for members, ids in group(pm.matches)
            ]
            findings += made[key]
        else:
            findings += [replace(f, package=pm.package) for f in made[key]]
    return sorted(findings, key=lambda f: (f.package.type, f.package.name, f.package.version, f.package.path, f.id))


def match(
    packages: Iterable[Package], distro: Distro | None, rows: Iterable[Candidate], enrichment: Enrichment | None = None
) -> Result:
    """All three steps over rows held in memory (tests, small SBOMs)."""
    planned = plan(packages, distro)
    matched, notes = evaluate(planned.lookups, candidates_by_name(rows))
    return Result(build_findings(matched, enrichment or Enrichment()), notes)
