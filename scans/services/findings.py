"""Findings between the matcher's dataclasses and the database, and what compares them.

Matching runs on the stored inventory (Clair's index once, match again), so
a report can be recomputed whenever the advisory database changes without
pulling the image again.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone

from advisories.findings import match_analysis
from scans.choices import SEVERITY_RANK, FindingState, ScanState
from scans.engine import findings as engine
from scans.engine.models import Layer, Package
from scans.models import Decision, Finding, Image, ScanJob
from scans.services import triage
from scans.services.inventory import analysis_from_image


def _json(value: Any) -> Any:
    return json_safe(dataclasses.asdict(value)) if value is not None else None


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


@transaction.atomic
def store_report(scan: ScanJob, report: engine.Report) -> list[Finding]:
    """Replace the scan's findings with the report's."""
    scan.findings.all().delete()
    packages = {(p.purl, p.path): p for p in scan.image.packages.all()}
    rows = [
        Finding(
            scan=scan,
            image=scan.image,
            package=packages.get((f.package.purl, f.package.path)),
            vulnerability_id=f.id,
            aliases=list(f.aliases),
            ids_text=f" {' '.join(f.all_ids)} ",
            package_type=f.package.type,
            package_name=f.package.name,
            package_version=f.package.version,
            purl=f.package.purl,
            path=f.package.path,
            layer_digest=f.package.layer.digest if f.package.layer else "",
            layer_index=f.package.layer.index if f.package.layer else None,
            fix_state=f.fix_state,
            fixed_versions=list(f.fixed_versions),
            severity=f.severity,
            severity_rank=SEVERITY_RANK.get(f.severity, 0),
            severity_source=f.severity_source,
            cvss_vector=f.cvss_vector,
            cvss_score=f.cvss_score,
            title=f.title,
            description=f.description,
            references=list(f.references),
            cwes=list(f.cwes),
            kev=f.kev,
            kev_date_added=f.kev_date_added,
            epss_score=f.epss_score,
            epss_percentile=f.epss_percentile,
            evidence=[_json(e) for e in f.evidence],
            state=FindingState.SUPPRESSED if f.suppression else FindingState.OPEN,
            suppression=_json(f.suppression),
        )
        for f in report.findings
    ]
    triage.apply_decisions(scan, rows)  # decisions made earlier, here or for the repository, apply again
    Finding.objects.bulk_create(rows, batch_size=1000)
    scan.matched_at = timezone.now()
    scan.unsupported = report.unsupported
    scan.database = json_safe(dataclasses.asdict(report.database))
    scan.save(update_fields=["matched_at", "unsupported", "database"])
    return rows


def match_scan(scan: ScanJob) -> engine.Report:
    """Match the scan's stored inventory against the advisory database now, and keep the findings."""
    report = match_analysis(analysis_from_image(scan.image))
    store_report(scan, report)
    return report


def _engine_finding(row: Finding, layers: dict[int, Layer], decision: Decision | None = None) -> engine.Finding:
    package = Package(
        type=row.package_type,
        name=row.package_name,
        version=row.package_version,
        purl=row.purl,
        path=row.path,
        layer=layers.get(row.layer_index) if row.layer_index is not None else None,
    )
    suppression = triage.suppression_of(row, decision)
    return engine.Finding(
        id=row.vulnerability_id,
        aliases=tuple(row.aliases),
        package=package,
        fix_state=row.fix_state,
        fixed_versions=tuple(row.fixed_versions),
        severity=row.severity,
        severity_source=row.severity_source,
        cvss_vector=row.cvss_vector,
        cvss_score=row.cvss_score,
        title=row.title,
        description=row.description,
        references=tuple(row.references),
        cwes=tuple(row.cwes),
        kev=row.kev,
        kev_date_added=row.kev_date_added,
        epss_score=row.epss_score,
        epss_percentile=row.epss_percentile,
        evidence=tuple(engine.Evidence(**e) for e in row.evidence),
        suppression=suppression,
    )


def report_from_scan(scan: ScanJob, findings: list[Finding] | None = None) -> engine.Report:
    """The stored report of a scan, for the report writers (all findings unless a subset is given)."""
    analysis = analysis_from_image(scan.image)
    layers = {layer.index: layer for layer in analysis.image.layers}
    rows = findings if findings is not None else list(scan.findings.all())
    decisions = Decision.objects.select_related("owner").in_bulk({r.decision_id for r in rows if r.decision_id})
    database = engine.DatabaseState(**{**scan.database, "sources": tuple(scan.database.get("sources", ()))})
    return engine.Report(
        analysis=analysis,
        findings=[_engine_finding(row, layers, decisions.get(row.decision_id)) for row in rows],
        unsupported=scan.unsupported,
        database=database if scan.database else engine.DatabaseState(),
    )


def latest_scan(image: Image) -> ScanJob | None:
    return (
        image.scan_jobs.filter(state=ScanState.DONE, matched_at__isnull=False).order_by("-finished_at", "-id").first()
    )


def _key(row: Finding) -> tuple[str, str, str]:
    return (row.vulnerability_id, row.package_type, row.package_name)


def diff_scans(old: ScanJob, new: ScanJob) -> dict[str, list[Finding]]:
    """Findings new in `new`, resolved since `old`, and still present (DefectDojo's reimport buckets)."""
    before = {_key(f): f for f in old.findings.all()}
    after = {_key(f): f for f in new.findings.all()}
    return {
        "new": [after[k] for k in sorted(after.keys() - before.keys())],
        "resolved": [before[k] for k in sorted(before.keys() - after.keys())],
        "unchanged": [after[k] for k in sorted(after.keys() & before.keys())],
    }
