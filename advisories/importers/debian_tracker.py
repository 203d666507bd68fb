"""The Debian security tracker's JSON export (https://security-tracker.debian.org/tracker/data/json).

Layout: {source package: {CVE-… or TEMP-…: {description, scope, debianbug,
releases: {codename: {status, fixed_version, urgency, nodsa, nodsa_reason,
repositories}}}}}. The real export is about 70 MB, so it is read as a
stream (ijson, one source package at a time) and never loaded whole.

Mapping:

- Advisory: one CVE (or TEMP-) id, merged over every source package that
  lists it; a package and a release make one AffectedPackage (ecosystem
  "Debian", distro "debian", name = the source package). Releases are never
  merged: bookworm and trixie are separate rows.
- Release: the codename as its major version (CODENAMES: buster "10",
  bookworm "12", ...; sid stays "sid"). An unknown codename is Rejected, row
  by row, until it is added here.
- Status, from the tracker's documented states:
  - resolved, fixed_version "0": not_affected (the tracker's "0" means the
    release never had the vulnerable code);
  - resolved, fixed_version v: fixed, Range(introduced "0", fixed v);
  - open, urgency "unimportant" (the team does not treat it as a security
    issue to fix), urgency "end-of-life" (the package is no longer supported
    in that release) or nodsa_reason "ignored" (<no-dsa> <ignored>: it will
    not be fixed there): will_not_fix;
  - open with nodsa_reason "postponed", or a plain <no-dsa> (minor, left to
    a later update or a point release): deferred;
  - open otherwise: affected;
  - undetermined: affected (the tracker has not decided yet; the status stays
    in `raw`, the contract has no per-row note).
- Severity: the row's urgency as written, with the tracker's trailing stars
  dropped ("high**" -> "high"); the advisory's vendor severity (source
  "debian") is the highest of unimportant < low < medium < high over its rows.
  "not yet assigned" and "end-of-life" rate nothing.
- `raw` keeps, per package, scope, debianbug and each release's status,
  fixed_version, urgency and nodsa fields. It leaves out `repositories`: the
  versions currently in the archive change with every upload and are not part
  of the advisory.

A bad entry or release is a Rejected and the rest goes on. A document that
cannot be read to its end (truncated, not JSON, not an object, too large)
raises DocumentError before yielding anything, and the sync fails: the rows
read so far would be an arbitrary part of the feed. Rows are held compactly until
the end, because a CVE's packages can sit anywhere in the file.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple

import ijson

from advisories.importers.base import (
    AdvisoryRecord,
    AffectedPackage,
    Document,
    DocumentError,
    Item,
    Range,
    RecordError,
    Rejected,
    SeverityScore,
    Status,
)
from advisories.importers.documents import MAX_DOCUMENT_BYTES, FeedFormatError
from advisories.importers.severity import vendor_severity

SOURCE = "debian-tracker"
DEFAULT_URL = "https://security-tracker.debian.org/tracker/data/json"
CODENAMES = {
    "squeeze": "6",
    "wheezy": "7",
    "jessie": "8",
    "stretch": "9",
    "buster": "10",
    "bullseye": "11",
    "bookworm": "12",
    "trixie": "13",
    "forky": "14",
    "duke": "15",
    "sid": "sid",
}
URGENCIES = ("unimportant", "low", "medium", "high")  # lowest first
_ID_PREFIXES = ("CVE-", "TEMP-")
_RELEASE_FIELDS = ("status", "fixed_version", "urgency", "nodsa", "nodsa_reason")


class _Release(NamedTuple):
    """One package's state in one release; kept for the whole feed, so small."""

    package: str
    codename: str
    status: str
    fixed_version: str
    urgency: str
    nodsa: str
    nodsa_reason: str


@dataclass
class _Issue:
    description: str = ""
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)  # package -> scope, debianbug
    releases: list[_Release] = field(default_factory=list)


def clean_urgency(urgency: str) -> str:
    return urgency.strip().rstrip("*").strip()


def release_status(status: str, fixed_version: str, urgency: str, nodsa: str, nodsa_reason: str) -> str:
    """The Status of one package in one release (see the module docstring)."""
    if status == "resolved":
        if not fixed_version:
            raise RecordError("resolved without a fixed_version")
        return Status.NOT_AFFECTED if fixed_version == "0" else Status.FIXED
    if status == "open":
        if urgency in ("unimportant", "end-of-life") or nodsa_reason == "ignored":
            return Status.WILL_NOT_FIX
        if nodsa_reason == "postponed" or nodsa:
            return Status.DEFERRED
        return Status.AFFECTED
    if status == "undetermined":
        return Status.AFFECTED
    raise RecordError(f"unknown status {status!r}")


def _text(value: Any) -> str:
    # Interned: the same statuses, urgencies and package names repeat over hundreds of thousands of rows.
    return sys.intern(value.strip()) if isinstance(value, str) else ""


def _release(package: str, codename: str, entry: Any) -> _Release:
    if codename not in CODENAMES:
        raise RecordError(f"unknown Debian release codename {codename!r}")
    if not isinstance(entry, dict):
        raise RecordError("release entry is not an object")
    fields = [_text(entry.get(name)) for name in _RELEASE_FIELDS]
    fields[2] = clean_urgency(fields[2])
    release = _Release(package, sys.intern(codename), *fields)
    release_status(*fields)  # fail here, where the entry's id is known
    return release


def _releases(value: Any) -> dict[str, Any]:
    # The export writes an empty list, not an object, for an issue with no release left.
    if value == [] or value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError("releases is not an object")
    return value


class TrackerReader:
    """Gathers a tracker document's entries by id, then makes one advisory per id."""

    def __init__(self) -> None:
        self.issues: dict[str, _Issue] = defaultdict(_Issue)
        self.rejected: list[Rejected] = []

    def add_package(self, package: str, issues: Any) -> None:
        if not isinstance(issues, dict) or not package.strip():
            self.rejected.append(Rejected(package, "a package entry is not an object of issues"))
            return
        package = sys.intern(package.strip())
        for vuln_id, entry in issues.items():
            try:
                self._add_issue(package, vuln_id, entry)
            except RecordError as exc:
                self.rejected.append(Rejected(f"{vuln_id} {package}", str(exc)))

    def _add_issue(self, package: str, vuln_id: str, entry: Any) -> None:
        if not vuln_id.startswith(_ID_PREFIXES) or any(c.isspace() for c in vuln_id):
            raise RecordError("not a CVE or TEMP id")
        if not isinstance(entry, dict):
            raise RecordError("issue entry is not an object")
        releases = _releases(entry.get("releases"))
        issue = self.issues[vuln_id]
        description = entry.get("description")
        issue.description = issue.description or (description.strip() if isinstance(description, str) else "")
        issue.packages[package] = {key: entry[key] for key in ("scope", "debianbug") if key in entry}
        for codename, release in releases.items():
            try:
                issue.releases.append(_release(package, codename, release))
            except RecordError as exc:
                self.rejected.append(Rejected(f"{vuln_id} {package} {codename}", str(exc)))

    def advisories(self) -> Iterator[AdvisoryRecord | Rejected]:
        for vuln_id in sorted(self.issues):
            try:
                yield _advisory(vuln_id, self.issues[vuln_id])
            except RecordError as exc:
                yield Rejected(vuln_id, str(exc))


def _affected(release: _Release) -> AffectedPackage:
    status = release_status(*release[2:])
    ranges: tuple[Range, ...] = ()
    if status == Status.FIXED:
        ranges = (Range("ECOSYSTEM", (("introduced", "0"), ("fixed", release.fixed_version))),)
    return AffectedPackage(
        ecosystem="Debian",
        name=release.package,
        distro="debian",
        release=CODENAMES[release.codename],
        ranges=ranges,
        status=status,
        severity=release.urgency,
        purl=f"pkg:deb/debian/{release.package}?arch=source",
    )


def _severities(releases: list[_Release]) -> tuple[SeverityScore, ...]:
    ranks = [URGENCIES.index(r.urgency) for r in releases if r.urgency in URGENCIES]
    return (vendor_severity(URGENCIES[max(ranks)], "debian"),) if ranks else ()


def _raw(issue: _Issue) -> dict[str, Any]:
    packages: dict[str, Any] = {name: {**meta, "releases": {}} for name, meta in issue.packages.items()}
    for release in issue.releases:
        packages[release.package]["releases"][release.codename] = {
            name: value for name, value in zip(_RELEASE_FIELDS, release[2:], strict=True) if value
        }
    return {"packages": packages}


def _advisory(vuln_id: str, issue: _Issue) -> AdvisoryRecord:
    releases = sorted(issue.releases, key=lambda r: (r.package, r.codename))
    references = [f"https://security-tracker.debian.org/tracker/{vuln_id}"]
    bugs = sorted({meta["debianbug"] for meta in issue.packages.values() if isinstance(meta.get("debianbug"), int)})
    references += [f"https://bugs.debian.org/{bug}" for bug in bugs]
    return AdvisoryRecord(
        id=vuln_id,
        source=SOURCE,
        details=issue.description,
        references=tuple(references),
        severities=_severities(releases),
        affected=tuple(_affected(r) for r in releases),
        raw=_raw(issue),
    )


class _BoundedStream:
    """A file that refuses to be read past `limit` bytes, and tells whether JSON text starts with an object."""

    def __init__(self, f: IO[bytes], limit: int) -> None:
        self._f = f
        self._limit = limit
        self._seen = 0
        self._head = b""

    def read(self, size: int = -1) -> bytes:
        if self._head and size != 0:  # ijson probes with read(0) for the stream's type
            data, self._head = self._head, b""
            return data
        data = self._f.read(size if size >= 0 else self._limit + 1)
        self._seen += len(data)
        if self._seen > self._limit:
            raise FeedFormatError(f"larger than {self._limit} bytes")
        return data

    def starts_with_object(self) -> bool:
        while True:
            chunk = self.read(64 << 10)
            stripped = chunk.lstrip(b" \t\r\n")
            if stripped or not chunk:
                self._head = chunk
                return stripped.startswith(b"{")


def parse_tracker(document: Document, limit: int = MAX_DOCUMENT_BYTES) -> Iterator[Item]:
    """Every advisory of a tracker export; DocumentError, before any item, when it cannot be read to its end."""
    reader = TrackerReader()
    try:
        with document.open() as f:
            stream = _BoundedStream(f, limit)
            if not stream.starts_with_object():
                raise FeedFormatError("not a tracker export: the top level is not a JSON object")
            for package, issues in ijson.kvitems(stream, "", use_float=True):
                reader.add_package(package, issues)
    except (ijson.JSONError, FeedFormatError, OSError, ValueError, RecursionError) as exc:
        reason = " ".join(str(exc).split())[:500] or type(exc).__name__
        raise DocumentError(f"{document.name}: unreadable tracker JSON: {reason}") from None
    yield from reader.rejected
    yield from reader.advisories()


class DebianTrackerImporter:
    source = SOURCE
    default_url = DEFAULT_URL

    def accepts(self, name: str) -> bool:
        # The export's URL ends in ".../data/json", so a download of it has no ".json" suffix.
        return name.lower().endswith("json")

    def parse(self, document: Document) -> Iterator[Item]:
        return parse_tracker(document)
