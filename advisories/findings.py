"""Matching a stored inventory against the advisory database: the Django side of advisories.matching.

`match_analysis` runs on an Analysis alone, so a stored inventory can be
matched again after every advisory sync without pulling the image.

It reads the database in a fixed number of queries, whatever the number of
packages: the candidate rows of every package at once (by ecosystem, distro,
release and package names), their aliases, then for what matched the
severities of every record that shares an id, KEV and EPSS by CVE, and the
matched records' details. Then the state of the database, so that a report
with no findings can tell "nothing found" from "nothing to find with": an
empty or stale database, and a distro release or an ecosystem with no data
at all (an Alpine 3.20 image when only secdb 3.11 and older is loaded), are
said in the report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from advisories import matching
from advisories.importers.base import SeverityScore
from advisories.matching import Candidate, Enrichment, Lookup, PackageMatches, RangeSpec, Record
from advisories.models import Advisory, Affected, Alias, AliasKind, Epss, FeedSync, Kev, Severity, SyncState
from scans.engine.findings import DatabaseState, Report
from scans.engine.models import Analysis

_GOOD_SYNCS = (SyncState.SUCCEEDED, SyncState.UNCHANGED)
_ROW_FIELDS = ("advisory_id", "ecosystem", "distro", "release", "package", "ranges", "versions", "status", "severity",
               "module")  # fmt: skip
_RECORD_FIELDS = ("advisory__advisory_id", "advisory__source", "advisory__feed", "advisory__summary",
                  "advisory__references", "advisory__cwes")  # fmt: skip


def match_analysis(analysis: Analysis, *, now: datetime | None = None) -> Report:
    """Findings for the analysis' packages, with the database's state and what could not be checked."""
    planned = matching.plan(analysis.packages, analysis.distro)
    rows = load_candidates(lookup for _, lookup in planned.lookups)
    matched, notes = matching.evaluate(planned.lookups, matching.candidates_by_name(rows))
    findings = matching.build_findings(matched, load_enrichment(matched))
    database, database_notes = database_state(now)
    unsupported, coverage_notes = coverage(planned, rows)
    type_notes = [
        f"{count} {kind} package(s) not matched: no advisory feed covers that type"
        for kind, count in sorted(planned.unmatched_types.items())
    ]
    return Report(
        analysis=analysis,
        findings=findings,
        unsupported=unsupported,
        database=database,
        notes=database_notes + coverage_notes + type_notes + notes,
    )


# -- candidates ------------------------------------------------------------------------------------------------------


def _names_by_key(lookups: Iterable[Lookup]) -> dict[tuple[str, str, str], set[str]]:
    names: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for lookup in lookups:
        names[lookup.key].update(lookup.names)
    return names


def _ranges(stored: Any) -> tuple[RangeSpec, ...]:
    return tuple(RangeSpec(r["type"], tuple((kind, version) for kind, version in r["events"])) for r in stored)


def load_candidates(lookups: Iterable[Lookup]) -> list[Candidate]:
    """Every affected row any lookup may match, in two queries: the rows with their advisories, and aliases.

    Withdrawn records and NVD's are left out here already (matching refuses them too).
    """
    names = _names_by_key(lookups)
    if not names:
        return []
    where = Q()
    for (ecosystem, distro, release), packages in names.items():
        where |= Q(ecosystem=ecosystem, distro=distro, release=release, package__in=sorted(packages))
    rows = list(
        Affected.objects.filter(where, advisory__withdrawn__isnull=True)
        .exclude(advisory__source=matching.NVD)
        .values_list(*_ROW_FIELDS, *_RECORD_FIELDS)
    )
    aliases = _aliases({row[0] for row in rows})
    records: dict[int, Record] = {}
    candidates = []
    for pk, ecosystem, distro, release, package, ranges, listed, status, severity, module, *advisory in rows:
        record = records.get(pk)
        if record is None:
            record = records[pk] = _record(pk, advisory, aliases.get(pk, {}))
        candidates.append(
            Candidate(
                record, ecosystem, package, distro, release, _ranges(ranges), tuple(listed), status, severity, module
            )  # fmt: skip
        )
    return candidates


def _aliases(pks: set[int]) -> dict[int, dict[str, list[str]]]:
    """advisory pk -> alias kind -> ids; SELF and RELATED are not needed for merging."""
    found: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    if pks:
        kinds = (AliasKind.ALIAS, AliasKind.UPSTREAM)
        for pk, alias, kind in Alias.objects.filter(advisory_id__in=pks, kind__in=kinds).values_list(
            "advisory_id", "alias", "kind"
        ):
            found[pk][kind].append(alias)
    return found


def _record(pk: int, advisory: Sequence[Any], aliases: dict[str, list[str]]) -> Record:
    advisory_id, source, feed, summary, references, cwes = advisory
    return Record(
        pk=pk,
        id=advisory_id,
        source=source,
        feed=feed,
        aliases=tuple(sorted(aliases.get(AliasKind.ALIAS, ()))),
        upstream=tuple(sorted(aliases.get(AliasKind.UPSTREAM, ()))),
        summary=summary,
        references=tuple(references),
        cwes=tuple(cwes),
    )


# -- enrichment ------------------------------------------------------------------------------------------------------


def load_enrichment(matched: Sequence[PackageMatches]) -> Enrichment:
    """Severities of every record that shares an id with a finding (NVD's, GHSA's ...), KEV, EPSS, details."""
    ids = matching.vulnerability_ids(matched)
    if not ids:
        return Enrichment()
    severities: dict[str, list[SeverityScore]] = defaultdict(list)
    rows = Severity.objects.filter(
        advisory__alias_set__alias__in=ids,
        advisory__alias_set__kind__in=(AliasKind.SELF, AliasKind.ALIAS),
        advisory__withdrawn__isnull=True,
    ).values_list("advisory__alias_set__alias", "type", "source", "vector", "score", "rating")
    for vuln_id, kind, source, vector, score, rating in rows:
        severities[vuln_id].append(SeverityScore(kind, source, vector, score, rating))
    cves = sorted(i for i in ids if i.startswith("CVE-"))
    kev = dict(Kev.objects.filter(cve_id__in=cves).values_list("cve_id", "date_added"))
    epss = {cve: (score, pct) for cve, score, pct in Epss.objects.filter(cve_id__in=cves).values_list(
        "cve_id", "score", "percentile")}  # fmt: skip
    pks = {m.record.pk for pm in matched for m in pm.matches}
    details = dict(Advisory.objects.filter(pk__in=pks).exclude(details="").values_list("pk", "details"))
    return Enrichment(severities=severities, kev=kev, epss=epss, details=details)


# -- what the database can say ---------------------------------------------------------------------------------------


def database_state(now: datetime | None = None) -> tuple[DatabaseState, list[str]]:
    """Sources with data, the newest successful sync and its age; notes for each feed older than the limit."""
    now = now or timezone.now()
    limit = float(settings.VIGIL_ADVISORY_MAX_AGE_HOURS)
    feeds = list(
        FeedSync.objects.filter(state__in=_GOOD_SYNCS, finished_at__isnull=False)
        .values_list("feed", "source")
        .annotate(last=Max("finished_at"))
    )
    empty = not Advisory.objects.exists()
    notes = ["the advisory database is empty: no package was checked against advisories"] if empty else []
    notes += [
        f"advisory feed {feed} was last synced {_hours(now, last):.0f} h ago (limit {limit:.0f} h)"
        for feed, _, last in sorted(feeds)
        if _hours(now, last) > limit
    ]
    newest = max((last for _, _, last in feeds), default=None)
    age = _hours(now, newest) if newest else None
    state = DatabaseState(
        sources=tuple(sorted({source for _, source, _ in feeds})),
        last_sync=newest.isoformat() if newest else "",
        age_hours=round(age, 2) if age is not None else None,
        empty=empty,
        stale=not empty and (age is None or age > limit),  # data without a recorded sync cannot be vouched for
    )
    return state, notes


def _hours(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds() / 3600


def _keys_with_data(keys: Sequence[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Which (ecosystem, distro, release) have any row at all: one EXISTS per key, in one query."""
    if not keys:
        return set()
    parts = [
        Affected.objects.filter(ecosystem=e, distro=d, release=r).values_list("ecosystem", "distro", "release")[:1]
        for e, d, r in keys
    ]
    query = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    return set(query)


def coverage(planned: matching.Plan, rows: Sequence[Candidate]) -> tuple[str, list[str]]:
    """(unsupported, notes): OS packages that were not checked, and language ecosystems with no data."""
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for _, lookup in planned.lookups:
        counts[lookup.key] += 1
    found = {(row.ecosystem, row.distro, row.release) for row in rows}
    covered = found | _keys_with_data(sorted(set(counts) - found))
    unsupported = [f"{reason}: {n} package(s) not checked" for reason, n in sorted(planned.unsupported.items())]
    unsupported += [
        f"{distro} {release}: the advisory database has no {ecosystem} data for this release; "
        f"{counts[(ecosystem, distro, release)]} package(s) not checked"
        for ecosystem, distro, release in sorted(counts)
        if distro and (ecosystem, distro, release) not in covered
    ]
    notes = [
        f"no {ecosystem} advisories in the database: {counts[(ecosystem, distro, release)]} package(s) not checked"
        for ecosystem, distro, release in sorted(counts)
        if not distro and (ecosystem, distro, release) not in covered
    ]
    return "; ".join(unsupported), notes
