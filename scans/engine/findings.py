"""Findings: what matching an inventory against the advisory database yields.

Plain dataclasses, no Django: the matcher (advisories.matching) produces
them, the service stores them, and the report writers and the CI gate
(scans.engine.reports, scans.engine.policy) read them, in the CLI and in
the service alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from scans.engine.models import Analysis, Package

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")  # most severe first


class FixState:
    """Whether a fix exists for the installed package, as the deciding source says."""

    FIXED = "fixed"  # a fixed version exists: upgrade to it
    AFFECTED = "affected"  # affected, no fix published yet
    WILL_NOT_FIX = "will_not_fix"
    DEFERRED = "deferred"
    ALL = (FIXED, AFFECTED, WILL_NOT_FIX, DEFERRED)


@dataclass(frozen=True)
class Evidence:
    """Why the finding exists: which record and which range decided it."""

    advisory_id: str  # the record that matched (e.g. DSA-…, GHSA-…, CVE-… of a distro tracker)
    source: str  # the importer: debian-tracker, alpine-secdb, osv, ...
    feed: str  # the feed the record came from
    ecosystem: str
    distro: str = ""
    release: str = ""
    package: str = ""  # the package name the record names (a source package for Debian)
    matched_version: str = ""  # the installed version that was compared
    range: str = ""  # the range or status that matched, in words: "introduced 0, fixed 2.36-9+deb12u4"
    status: str = ""  # the record's status for this package


@dataclass(frozen=True)
class Suppression:
    """A finding set aside by an ignore file or a VEX statement; it is still reported, as suppressed."""

    by: str  # "ignorefile" or "vex"
    reason: str  # the ignore entry's reason, or the VEX justification / impact statement
    source: str = ""  # the file that said so
    expires: date | None = None


@dataclass(frozen=True)
class Finding:
    """One vulnerability in one package: aliases are merged, never reported twice."""

    id: str  # the preferred id: CVE when there is one, else GHSA, else the record's own
    aliases: tuple[str, ...]  # every other id of the same vulnerability
    package: Package
    fix_state: str  # a FixState value
    fixed_versions: tuple[str, ...] = ()
    severity: str = "UNKNOWN"  # one of SEVERITIES
    severity_source: str = ""  # whose rating decided: debian, ubuntu, alpine, redhat, ghsa, osv, nvd
    cvss_vector: str = ""
    cvss_score: float | None = None
    title: str = ""
    description: str = ""
    references: tuple[str, ...] = ()
    cwes: tuple[str, ...] = ()
    kev: bool = False
    kev_date_added: date | None = None
    epss_score: float | None = None
    epss_percentile: float | None = None
    evidence: tuple[Evidence, ...] = ()
    suppression: Suppression | None = None

    @property
    def fixable(self) -> bool:
        return self.fix_state == FixState.FIXED

    @property
    def all_ids(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)


@dataclass(frozen=True)
class DatabaseState:
    """What the advisory database could say, so that "no findings" is never mistaken for "no data"."""

    sources: tuple[str, ...] = ()  # feeds with data
    last_sync: str = ""  # ISO 8601 time of the newest successful sync
    age_hours: float | None = None
    empty: bool = True
    stale: bool = False  # older than the configured limit


@dataclass
class Report:
    analysis: Analysis
    findings: list[Finding] = field(default_factory=list)
    # Set when the image's distro release is not covered by the database: OS packages
    # were NOT checked, which must never read as "no vulnerabilities".
    unsupported: str = ""
    database: DatabaseState = field(default_factory=DatabaseState)
    notes: list[str] = field(default_factory=list)  # expired ignore entries, stale database ...

    @property
    def open_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.suppression is None]
