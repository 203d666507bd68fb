"""Alpine secdb, and the Wolfi and Chainguard secdb that share its format.

A secdb file (YAML or JSON) names, per package, the versions that fixed
vulnerabilities::

    distroversion: v3.11            # absent for Wolfi and Chainguard
    reponame: main
    urlprefix: http://dl-cdn.alpinelinux.org/alpine
    packages:
      - pkg:
          name: busybox             # the origin (aports source package)
          secfixes:
            1.35.0-r3: [CVE-2022-28391, CVE-2022-30065]
            "0": [CVE-2021-42373]   # "0": never affected

Mapping:

- Advisory: one vulnerability id. A secfix entry is free text
  ("CVE-2016-6258 XSA-182", "CVE-2018-16301 (was fixed in libpcap)",
  "CVE_2019-2426"), so ids are found with regexes rather than taken whole:
  each CVE id in an entry is an advisory and the entry's other ids (XSA,
  TALOS, ZBX, GHSA, wnpa-sec ...) become its aliases; an entry with no CVE
  is the advisory of its first id. An entry with no id at all is Rejected.
- One AffectedPackage per (distro, release, package) and id. A fixed version
  gives status fixed and Range(introduced "0", fixed v). When one row has
  several fixed versions (a fix in each upstream branch, e.g. wireshark
  2.2.10-r0 and 2.4.2-r0 in the same file) each becomes its own range: a
  version is affected when any range holds it, so the highest fix decides,
  which errs towards reporting. Version "0" gives not_affected with no range;
  a real fix for the same row wins over it.
- Release: distroversion "v3.11" -> "3.11", "edge" -> "edge". Wolfi and
  Chainguard are rolling distributions without releases: their rows carry
  ROLLING ("rolling"), and a matcher maps any Wolfi or Chainguard VERSION_ID
  to it.
- Distro: from the urlprefix host (alpinelinux.org, wolfi.dev, cgr.dev), else
  from an Alpine-looking distroversion, else from reponame ("os" is Wolfi,
  "chainguard" is Chainguard).
- A version that is not apk version syntax (the feed has typos such as
  "4.10-1-r1" and "10.2.26.r0") is Rejected with its entry: it could only
  be compared by guessing.

A file that cannot be read at all (not YAML or JSON, not a secdb mapping, no
telling its distro or release) raises DocumentError and fails the feed: going
on without it would drop its advisories. A bad package or entry is a Rejected.

One id appears in many files (releases, repositories), and an advisory must
hold all its rows, so `parse_feed` reads every document before it yields the
advisories (v3.3-v3.11 hold 12k entries naming about 2.5k ids: small).
`parse` does the same for one file.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from advisories.importers.base import (
    AdvisoryRecord,
    AffectedPackage,
    Document,
    DocumentError,
    Item,
    Range,
    RecordError,
    Rejected,
    Status,
)
from advisories.importers.documents import FeedFormatError, read_bounded

SOURCE = "alpine-secdb"
ROLLING = "rolling"
# Each distro's published feed; secdb.alpinelinux.org holds one directory per release (v3.N/main.json ...).
DEFAULT_URLS = {
    "alpine": "https://secdb.alpinelinux.org/",
    "wolfi": "https://packages.wolfi.dev/os/security.json",
    "chainguard": "https://packages.cgr.dev/chainguard/security.json",
}
ECOSYSTEM_OF_DISTRO = {"alpine": "Alpine", "wolfi": "Wolfi", "chainguard": "Chainguard"}
# A real secdb file is well under 2 MB with some thousands of entries; the bounds stop a hostile one
# early, including a small YAML file whose aliases (*a) repeat one big mapping many times.
MAX_SECDB_BYTES = 64 << 20
MAX_SECDB_ENTRIES = 500_000

_HOST_DISTROS = (("alpinelinux.org", "alpine"), ("wolfi.dev", "wolfi"), ("cgr.dev", "chainguard"))
_REPONAME_DISTROS = {"os": "wolfi", "chainguard": "chainguard"}
_ALPINE_RELEASE = re.compile(r"v(\d+\.\d+)|edge")
# Lenient on the separator because the feed writes "CVE_2019-2426" and "CVE 2018-16859".
_CVE = re.compile(r"\bCVE[-_ ]?(\d{4})-(\d{4,})")
_OTHER_ID = re.compile(
    r"\b(?:GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}"
    r"|CGA(?:-[0-9a-z]{4}){3}"
    r"|wnpa-sec-\d{4}-\d+"
    r"|(?!CVE\b)[A-Z]{2,10}-\d+(?:-\d+)?)\b"
)
# apk-tools' version grammar: numbers, one optional letter, _suffixes, ~hash, -rN.
_APK_VERSION = re.compile(
    r"\d+(?:\.\d+)*[a-z]?(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*(?:~[0-9a-f]+)?(?:-r\d+)?"
)


@dataclass(frozen=True)
class SecFix:
    """One entry of a package's secfixes: a fixed version and the ids the entry names."""

    version: str
    entry: str  # as written
    ids: tuple[str, ...]  # each is an advisory
    aliases: tuple[str, ...] = ()  # other ids of the entry, aliases of each advisory


@dataclass(frozen=True)
class SecdbPackage:
    name: str
    fixes: tuple[SecFix, ...]


@dataclass(frozen=True)
class SecdbFile:
    name: str
    distro: str  # alpine, wolfi or chainguard
    release: str  # "3.11", "edge", or ROLLING
    repo: str
    packages: tuple[SecdbPackage, ...]
    rejected: tuple[Rejected, ...] = ()


def parse_ids(entry: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(advisory ids, alias ids) named by a secfix entry; both empty when it names none."""
    cves = tuple(dict.fromkeys(f"CVE-{year}-{number}" for year, number in _CVE.findall(entry)))
    others = tuple(dict.fromkeys(_OTHER_ID.findall(_CVE.sub(" ", entry))))
    if cves:
        return cves, others
    return others[:1], others[1:]


def _load(document: Document) -> Any:
    data = read_bounded(document, MAX_SECDB_BYTES)
    if document.name.lower().endswith(".json"):
        return json.loads(data)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(data, Loader=loader)  # noqa: S506 - a safe loader, C or Python


def detect_distro(meta: dict[str, Any]) -> str:
    """alpine, wolfi or chainguard, from a secdb file's header; RecordError when it says none."""
    prefix = meta.get("urlprefix")
    host = (urlsplit(prefix).hostname or "") if isinstance(prefix, str) else ""
    for suffix, distro in _HOST_DISTROS:
        if host == suffix or host.endswith("." + suffix):
            return distro
    version = meta.get("distroversion")
    if isinstance(version, str) and _ALPINE_RELEASE.fullmatch(version):
        return "alpine"
    reponame = meta.get("reponame")
    if isinstance(reponame, str) and reponame in _REPONAME_DISTROS:
        return _REPONAME_DISTROS[reponame]
    raise RecordError(f"cannot tell the distro from urlprefix {prefix!r}, distroversion {version!r}")


def _release(distro: str, meta: dict[str, Any]) -> str:
    if distro != "alpine":
        return ROLLING
    version = meta.get("distroversion")
    match = _ALPINE_RELEASE.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise RecordError(f"Alpine distroversion {version!r} is not vX.Y or edge")
    return match.group(1) or "edge"


def _fix(where: str, version: str, entry: object) -> SecFix | Rejected:
    ids, aliases = parse_ids(entry) if isinstance(entry, str) else ((), ())
    if not ids:
        return Rejected(where, f"secfix entry {entry!r} names no vulnerability id")
    if not _APK_VERSION.fullmatch(version):
        return Rejected(where, f"secfix version {version!r} is not an apk version (entry {entry!r})")
    return SecFix(version, str(entry), ids, aliases)


def _secfixes(where: str, secfixes: Any) -> tuple[list[SecFix], list[Rejected]]:
    """Every entry becomes exactly one SecFix or one Rejected, so counts add up to the file's."""
    if not isinstance(secfixes, dict):
        return [], [Rejected(where, "secfixes is not a mapping of version to ids")]
    fixes: list[SecFix] = []
    rejected: list[Rejected] = []
    for key, entries in secfixes.items():
        # YAML reads an unquoted `0:` as an int; a float key (`1.10:`) has already lost digits.
        version = str(key).strip() if isinstance(key, str | int) and not isinstance(key, bool) else repr(key)
        if entries is None:  # "7.4.0-r0:" with nothing under it (v3.6 heimdal): no ids, no harm
            continue
        if not isinstance(entries, list):
            rejected.append(Rejected(f"{where}@{version}", "secfix ids are not a list"))
            continue
        for entry in entries:
            fix = _fix(f"{where}@{version}", version, entry)
            if isinstance(fix, Rejected):
                rejected.append(fix)
            else:
                fixes.append(fix)
    return fixes, rejected


def _package(where: str, item: Any) -> tuple[SecdbPackage | None, list[Rejected]]:
    pkg = item.get("pkg") if isinstance(item, dict) else None
    name = pkg.get("name") if isinstance(pkg, dict) else None
    if not isinstance(pkg, dict) or not isinstance(name, str) or not name.strip():
        return None, [Rejected(where, "package entry has no pkg.name")]
    where = f"{where} {name}"
    if pkg.get("secfixes") is None:  # a package with nothing fixed yet
        return SecdbPackage(name.strip(), ()), []
    fixes, rejected = _secfixes(where, pkg["secfixes"])
    return SecdbPackage(name.strip(), tuple(fixes)), rejected


def parse_secdb(document: Document) -> SecdbFile:
    """One secdb file; DocumentError when the file as a whole cannot be read."""
    try:
        meta = _load(document)
        if not isinstance(meta, dict):
            raise RecordError("not a secdb file: the top level is not a mapping")
        distro = detect_distro(meta)
        release = _release(distro, meta)
        items = meta.get("packages") or []
        if not isinstance(items, list):
            raise RecordError("packages is not a list")
    except (FeedFormatError, RecordError, ValueError, yaml.YAMLError, RecursionError) as exc:
        raise DocumentError(f"{document.name}: {_one_line(exc)}") from None
    packages: list[SecdbPackage] = []
    rejected: list[Rejected] = []
    entries = 0
    for index, item in enumerate(items):
        package, problems = _package(f"{document.name}: packages[{index}]", item)
        rejected += problems
        if package is not None:
            packages.append(package)
        entries += len(problems) + (len(package.fixes) if package else 0)
        if entries > MAX_SECDB_ENTRIES:
            raise DocumentError(f"{document.name}: more than {MAX_SECDB_ENTRIES} secfix entries")
    repo = meta.get("reponame")
    return SecdbFile(
        document.name, distro, release, repo if isinstance(repo, str) else "", tuple(packages), tuple(rejected)
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500] or type(exc).__name__


@dataclass
class _Row:
    fixed: set[str] = field(default_factory=set)  # empty: only "0" named the row, never affected

    def affected(self, ecosystem: str, distro: str, release: str, name: str) -> AffectedPackage:
        if self.fixed:
            ranges = tuple(Range("ECOSYSTEM", (("introduced", "0"), ("fixed", v))) for v in sorted(self.fixed))
            status = Status.FIXED
        else:
            ranges, status = (), Status.NOT_AFFECTED
        purl = f"pkg:apk/{distro}/{name}"
        return AffectedPackage(ecosystem, name, distro, release, ranges, status=status, purl=purl)


@dataclass
class _Advisory:
    rows: dict[tuple[str, str, str], _Row] = field(default_factory=lambda: defaultdict(_Row))
    aliases: set[str] = field(default_factory=set)
    entries: list[dict[str, str]] = field(default_factory=list)


class FeedMerger:
    """Gathers the rows of each id over every file of a feed, then makes one advisory per id."""

    def __init__(self) -> None:
        self._advisories: dict[str, _Advisory] = defaultdict(_Advisory)

    def add(self, secdb: SecdbFile) -> None:
        for package in secdb.packages:
            for fix in package.fixes:
                for vuln_id in fix.ids:
                    advisory = self._advisories[vuln_id]
                    row = advisory.rows[(secdb.distro, secdb.release, package.name)]
                    if fix.version != "0":
                        row.fixed.add(fix.version)
                    advisory.aliases.update(fix.aliases)
                    advisory.entries.append(
                        {"file": secdb.name, "distro": secdb.distro, "release": secdb.release, "repo": secdb.repo,
                         "package": package.name, "version": fix.version, "entry": fix.entry}
                    )  # fmt: skip

    def advisories(self) -> Iterator[AdvisoryRecord | Rejected]:
        for vuln_id in sorted(self._advisories):
            advisory = self._advisories[vuln_id]
            try:
                affected = tuple(
                    row.affected(ECOSYSTEM_OF_DISTRO[distro], distro, release, name)
                    for (distro, release, name), row in sorted(advisory.rows.items())
                )
                yield AdvisoryRecord(
                    id=vuln_id,
                    source=SOURCE,
                    aliases=tuple(sorted(advisory.aliases - {vuln_id})),
                    affected=affected,
                    raw={"secfixes": advisory.entries},
                )
            except RecordError as exc:
                yield Rejected(vuln_id, str(exc))


def accepts(name: str) -> bool:
    """Secdb files are YAML or JSON (v3.11/main.yaml, security.json); READMEs and indexes are not."""
    return PurePosixPath(name).suffix.lower() in (".yaml", ".yml", ".json")


def parse_feed(documents: Iterable[Document]) -> Iterator[Item]:
    """The advisories of a whole feed, merged across its secdb files (others are skipped, see `accepts`).

    Rejections come first, as they are found. Raises DocumentError for a file that cannot be read at
    all: going on without it would drop its advisories.
    """
    return merge(document for document in documents if accepts(document.name))


def merge(documents: Iterable[Document]) -> Iterator[Item]:
    """The advisories of the given secdb files, one per id."""
    merger = FeedMerger()
    for document in documents:
        secdb = parse_secdb(document)
        yield from secdb.rejected
        merger.add(secdb)
    yield from merger.advisories()


# Alpine releases whose secdb files the scheduled sync reads, one feed per file.
ALPINE_RELEASES = tuple(f"v3.{minor}" for minor in range(12, 23)) + ("edge",)


class AlpineSecdbImporter:
    source = SOURCE
    default_url = DEFAULT_URLS["alpine"]
    default_urls = (
        *(
            f"{DEFAULT_URLS['alpine']}{release}/{repo}.json"
            for release in ALPINE_RELEASES
            for repo in ("main", "community")
        ),
        DEFAULT_URLS["wolfi"],
        DEFAULT_URLS["chainguard"],
    )

    def accepts(self, name: str) -> bool:
        return accepts(name)

    def parse(self, document: Document) -> Iterator[Item]:
        """One file on its own; use parse_feed for a feed of several files so each id is one advisory."""
        return merge([document])

    def parse_feed(self, documents: Iterable[Document]) -> Iterator[Item]:
        return parse_feed(documents)
