"""The contract between feed parsers and the advisory database.

Parsers are plain functions over documents and hand over these frozen
dataclasses; they never touch Django. Each dataclass validates itself in
`__post_init__`, so a malformed record fails where it is parsed, with its
id and the reason, and becomes a `Rejected` instead of bad rows.

Concepts follow OSV: an advisory has aliases, severities and affected
packages; an affected package has ranges of events (introduced, fixed,
last_affected, limit) or explicit versions. Distro data keeps the distro
and release on every affected package: Debian 12 and Alpine 3.11 are
different rows, never merged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any, Protocol

# OSV ecosystem names (https://ossf.github.io/osv-schema/#affectedpackage-field),
# without their ":release" suffix, mapped to purl types.
ECOSYSTEMS: dict[str, str] = {
    "PyPI": "pypi",
    "npm": "npm",
    "Go": "golang",
    "Maven": "maven",
    "crates.io": "cargo",
    "RubyGems": "gem",
    "NuGet": "nuget",
    "Packagist": "composer",
    "Hex": "hex",
    "Pub": "pub",
    "SwiftURL": "swift",
    "GitHub Actions": "githubactions",
    "Kubernetes": "k8s",
    "Debian": "deb",
    "Ubuntu": "deb",
    "Alpine": "apk",
    "Wolfi": "apk",
    "Chainguard": "apk",
    "Red Hat": "rpm",
    "Rocky Linux": "rpm",
    "AlmaLinux": "rpm",
    "Amazon Linux": "rpm",
    "Oracle Linux": "rpm",
    "SUSE": "rpm",
    "openSUSE": "rpm",
}
# Ecosystems whose data is per distro release; their rows carry `distro` and `release`.
DISTRO_ECOSYSTEMS = frozenset(
    {"Debian", "Ubuntu", "Alpine", "Wolfi", "Chainguard", "Red Hat", "Rocky Linux", "AlmaLinux", "Amazon Linux",
     "Oracle Linux", "SUSE", "openSUSE"}
)  # fmt: skip

EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
RANGE_TYPES = ("ECOSYSTEM", "SEMVER", "GIT")


class Status:
    """Status of a package in distro data, for one vulnerability."""

    FIXED = "fixed"  # fixed in the listed version; earlier versions affected
    AFFECTED = "affected"  # affected, no fix published yet
    WILL_NOT_FIX = "will_not_fix"
    DEFERRED = "deferred"
    NOT_AFFECTED = "not_affected"
    ALL = (FIXED, AFFECTED, WILL_NOT_FIX, DEFERRED, NOT_AFFECTED)


class SeverityType:
    CVSS_V2 = "CVSS_V2"
    CVSS_V3 = "CVSS_V3"
    CVSS_V4 = "CVSS_V4"
    VENDOR = "vendor"  # a publisher's own rating: Debian urgency, Ubuntu priority, Red Hat impact, GHSA severity
    ALL = (CVSS_V2, CVSS_V3, CVSS_V4, VENDOR)


class RecordError(ValueError):
    """A record breaks the contract; the message says how."""


class DocumentError(ValueError):
    """A whole document is unreadable (truncated, garbled): the feed's sync fails, its old data stays.

    A single bad record is a Rejected instead, and never stops the feed.
    """


_PEP503 = re.compile(r"[-_.]+")


def normalize_name(ecosystem: str, name: str) -> str:
    """A package name as the ecosystem compares names.

    PyPI: PEP 503. Maven: `groupId:artifactId` as published. npm, Go,
    crates.io and distro packages are case-sensitive as written; npm names
    are lower-case by rule and Composer ones compare lower-case.
    """
    name = name.strip()
    if ecosystem == "PyPI":
        return _PEP503.sub("-", name).lower()
    if ecosystem in ("Packagist", "NuGet"):
        return name.lower()
    return name


@dataclass(frozen=True)
class Range:
    type: str  # ECOSYSTEM, SEMVER or GIT
    events: tuple[tuple[str, str], ...]  # (kind, version) in the order the source gives them

    def __post_init__(self) -> None:
        if self.type not in RANGE_TYPES:
            raise RecordError(f"range type {self.type!r} is not one of {', '.join(RANGE_TYPES)}")
        if not self.events:
            raise RecordError("a range has no events")
        for kind, version in self.events:
            if kind not in EVENT_KINDS:
                raise RecordError(f"range event {kind!r} is not one of {', '.join(EVENT_KINDS)}")
            if not isinstance(version, str) or not version:
                raise RecordError(f"range event {kind} has no version")
        if not any(kind == "introduced" for kind, _ in self.events):
            raise RecordError("a range has no 'introduced' event")

    @property
    def fixed(self) -> tuple[str, ...]:
        return tuple(v for kind, v in self.events if kind == "fixed")


@dataclass(frozen=True)
class AffectedPackage:
    ecosystem: str  # an ECOSYSTEMS key, without release: "Debian", "PyPI"
    name: str  # normalized with normalize_name; the source package for Debian/Ubuntu, the origin for Alpine
    distro: str = ""  # os-release ID of the distro: debian, ubuntu, alpine, wolfi, rhel, rocky, almalinux ...
    release: str = ""  # the release as images report it: "12", "22.04", "3.11", "8"
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()  # explicitly affected versions
    status: str = ""  # distro data only: a Status value
    severity: str = ""  # the distro's urgency or severity for this package, as written
    module: str = ""  # rpm module stream ("nodejs:18") where the data gives one
    purl: str = ""  # version-less purl

    def __post_init__(self) -> None:
        if self.ecosystem not in ECOSYSTEMS:
            raise RecordError(f"unknown ecosystem {self.ecosystem!r}")
        if not self.name:
            raise RecordError(f"an affected {self.ecosystem} package has no name")
        if self.name != normalize_name(self.ecosystem, self.name):
            raise RecordError(f"package name {self.name!r} is not normalized for {self.ecosystem}")
        if self.ecosystem in DISTRO_ECOSYSTEMS and not (self.distro and self.release):
            raise RecordError(f"{self.ecosystem} package {self.name} lacks its distro release")
        if self.status and self.status not in Status.ALL:
            raise RecordError(f"status {self.status!r} is not one of {', '.join(Status.ALL)}")
        if not (self.ranges or self.versions or self.status in (Status.AFFECTED, Status.NOT_AFFECTED,
                                                                 Status.WILL_NOT_FIX, Status.DEFERRED)):  # fmt: skip
            raise RecordError(f"affected package {self.name} has neither ranges, versions nor a status")

    @property
    def fixed_versions(self) -> tuple[str, ...]:
        return tuple(v for r in self.ranges for v in r.fixed)


@dataclass(frozen=True)
class SeverityScore:
    type: str  # a SeverityType value
    source: str  # who rated it: nvd, ghsa, debian, ubuntu, redhat, osv ...
    vector: str = ""  # the CVSS vector, for CVSS types
    score: float | None = None  # the base score, computed from the vector with the cvss library
    rating: str = ""  # LOW, MEDIUM, HIGH, CRITICAL, or the vendor's own word

    def __post_init__(self) -> None:
        if self.type not in SeverityType.ALL:
            raise RecordError(f"severity type {self.type!r} is not one of {', '.join(SeverityType.ALL)}")
        if self.type != SeverityType.VENDOR and not self.vector:
            raise RecordError(f"{self.type} severity has no vector")
        if self.score is not None and not 0.0 <= self.score <= 10.0:
            raise RecordError(f"severity score {self.score} is outside 0-10")


@dataclass(frozen=True)
class AdvisoryRecord:
    id: str  # the publisher's id: GHSA-…, PYSEC-…, GO-…, CVE-…, DSA-…, USN-…, RHSA-…
    source: str  # the importer: osv, alpine-secdb, debian-tracker, ubuntu, redhat-csaf, nvd
    aliases: tuple[str, ...] = ()
    # OSV 1.7 keeps these apart from aliases: `upstream` names what a distro record derives from (DLA -> CVE,
    # USN -> UBUNTU-CVE), `related` what it is close to (AlmaLinux and Rocky errata list their CVEs there).
    upstream: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    summary: str = ""
    details: str = ""
    published: datetime | None = None
    modified: datetime | None = None
    withdrawn: datetime | None = None
    references: tuple[str, ...] = ()
    cwes: tuple[str, ...] = ()
    severities: tuple[SeverityScore, ...] = ()
    affected: tuple[AffectedPackage, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)  # the record as published

    def __post_init__(self) -> None:
        if not self.id or len(self.id) > 200 or any(c.isspace() for c in self.id):
            raise RecordError(f"bad advisory id {self.id!r}")
        if self.id in self.aliases:
            raise RecordError(f"{self.id} lists itself as an alias")
        for when in (self.published, self.modified, self.withdrawn):
            if when is not None and when.tzinfo is None:
                raise RecordError(f"{self.id}: a date without a time zone")


@dataclass(frozen=True)
class KevEntry:
    """A CISA Known Exploited Vulnerabilities catalog entry."""

    cve_id: str
    vendor: str = ""
    product: str = ""
    name: str = ""
    date_added: date | None = None
    due_date: date | None = None
    known_ransomware: bool = False
    required_action: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"CVE-\d{4}-\d{4,}", self.cve_id):
            raise RecordError(f"bad CVE id {self.cve_id!r}")


@dataclass(frozen=True)
class EpssScore:
    """FIRST's EPSS probability of exploitation for one CVE on one day."""

    cve_id: str
    score: float
    percentile: float
    date: date
    model_version: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"CVE-\d{4}-\d{4,}", self.cve_id):
            raise RecordError(f"bad CVE id {self.cve_id!r}")
        if not (0.0 <= self.score <= 1.0 and 0.0 <= self.percentile <= 1.0):
            raise RecordError(f"{self.cve_id}: EPSS score or percentile outside 0-1")


@dataclass(frozen=True)
class Rejected:
    """A record that could not be read; counted and logged, never fatal to the feed."""

    id: str  # the record's id if it could be read, else the document name
    reason: str


Item = AdvisoryRecord | KevEntry | EpssScore | Rejected


@dataclass(frozen=True)
class Document:
    """One file of a feed: a zip or tar member, a file in a directory, or the feed file itself."""

    name: str
    open: Callable[[], IO[bytes]]


class Importer(Protocol):
    """One feed format. Listed explicitly in advisories.importers.IMPORTERS."""

    source: str  # the source name used by `sync_advisories --source`
    default_url: str  # where the feed is published

    def accepts(self, name: str) -> bool:
        """Whether a document of a bundle (by its name) belongs to this feed."""
        ...

    def parse(self, document: Document) -> Iterator[Item]:
        """Every record of the document; a malformed record is a Rejected, never an exception.

        Raises DocumentError when the document as a whole cannot be read.
        """
        ...


def parse_documents(importer: Importer, documents: Iterable[Document]) -> Iterator[Item]:
    """The feed's items: the importer's own `parse_feed` when it merges across documents
    (one vulnerability in many secdb files), else `parse` over each accepted document."""
    parse_feed = getattr(importer, "parse_feed", None)
    if parse_feed is not None:
        yield from parse_feed(d for d in documents if importer.accepts(d.name))
        return
    for document in documents:
        if importer.accepts(document.name):
            yield from importer.parse(document)
