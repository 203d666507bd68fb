"""Scan reports out: table, JSON, SARIF 2.1.0, CycloneDX 1.6 + vulnerabilities, JUnit, Markdown, HTML.

Every writer takes a `Report` and returns text, with findings in one order
(severity, package, id) so that the same scan gives the same bytes. Every
writer says when the advisory database is empty or stale and when the distro
release is unsupported: "no findings" must never read as "no data".

Text from feeds (titles, descriptions, ids, package names) is hostile: each
format escapes it its own way (HTML entities, Markdown escapes, XML, JSON),
and the plain-text ones drop terminal control characters.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import Any, cast
from urllib.parse import quote

from cyclonedx.exception.model import InvalidUriException
from cyclonedx.model import Property, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.impact_analysis import (
    ImpactAnalysisAffectedStatus,
    ImpactAnalysisJustification,
    ImpactAnalysisState,
)
from cyclonedx.model.vulnerability import (
    BomTarget,
    BomTargetVersionRange,
    Vulnerability,
    VulnerabilityAdvisory,
    VulnerabilityAnalysis,
    VulnerabilityRating,
    VulnerabilityReference,
    VulnerabilityScoreSource,
    VulnerabilitySeverity,
    VulnerabilitySource,
)
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from scans.engine import sbom
from scans.engine.distro import describe as describe_distro
from scans.engine.findings import SEVERITIES, Finding, FixState, Report, Suppression
from scans.engine.models import Package
from scans.engine.policy import vex_analysis

FORMATS = ("table", "json", "sarif", "cyclonedx", "junit", "markdown", "html")
REPORT_SCHEMA = "vigil.report/v1"
MARKDOWN_MAX_ROWS = 50

SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_SARIF_LEVELS = {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note", "UNKNOWN": "note"}
# GitHub code scanning ranks by `security-severity`; without a CVSS score, a score inside the severity's band.
_BAND_SCORES = {"CRITICAL": "9.5", "HIGH": "8.0", "MEDIUM": "5.5", "LOW": "2.0"}
# OpenVEX justifications in CycloneDX's words (CISA's "VEX status justifications" mapping).
_CDX_JUSTIFICATIONS = {
    "component_not_present": "code_not_present",
    "vulnerable_code_not_present": "code_not_present",
    "vulnerable_code_not_in_execute_path": "code_not_reachable",
    "vulnerable_code_cannot_be_controlled_by_adversary": "requires_environment",
    "inline_mitigations_already_exist": "protected_by_mitigating_control",
}
# Terminal control characters (ANSI escapes among them) and lone surrogates, which no encoder accepts.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# What XML 1.0 cannot carry at all, escaped or not.
_NOT_XML = re.compile(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CWE = re.compile(r"^CWE-(\d+)$", re.IGNORECASE)


# --- shared ---------------------------------------------------------------------------------------


def _rank(finding: Finding) -> int:
    return SEVERITIES.index(finding.severity) if finding.severity in SEVERITIES else len(SEVERITIES) - 1


def severity_of(finding: Finding) -> str:
    """The finding's severity, UNKNOWN for anything outside SEVERITIES."""
    return SEVERITIES[_rank(finding)]


def _order(finding: Finding) -> tuple[Any, ...]:
    p = finding.package
    return (_rank(finding), p.name, p.version, p.type, p.path, finding.id, finding.aliases)


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then by package and id: the one order every writer uses."""
    return sorted(findings, key=_order)


def severity_counts(findings: Iterable[Finding]) -> dict[str, int]:
    counts = dict.fromkeys(SEVERITIES, 0)
    for finding in findings:
        counts[severity_of(finding)] += 1
    return counts


def summary_line(report: Report) -> str:
    """`Total: 5 (CRITICAL: 1, HIGH: 2, …)` over the open findings, and how many were suppressed."""
    open_findings = report.open_findings
    counts = ", ".join(f"{s}: {n}" for s, n in severity_counts(open_findings).items())
    line = f"Total: {len(open_findings)} ({counts})"
    suppressed = len(report.findings) - len(open_findings)
    return f"{line}, suppressed: {suppressed}" if suppressed else line


def advisory_url(vuln_id: str) -> str:
    """Where a person reads about an id: NVD for CVEs, GitHub for GHSAs, OSV for the rest."""
    quoted = quote(vuln_id, safe="", errors="replace")
    upper = vuln_id.upper()
    if upper.startswith("CVE-"):
        return f"https://nvd.nist.gov/vuln/detail/{quoted}"
    if upper.startswith("GHSA-"):
        return f"https://github.com/advisories/{quoted}"
    return f"https://osv.dev/vulnerability/{quoted}"


def _source_name(vuln_id: str) -> str:
    upper = vuln_id.upper()
    return "NVD" if upper.startswith("CVE-") else "GitHub" if upper.startswith("GHSA-") else "OSV"


def _http_urls(urls: Iterable[str]) -> list[str]:
    """Links safe to render: http(s) only, never `javascript:` or `data:` from a feed."""
    return [u for u in urls if re.match(r"^https?://[^\s<>\"'`]+$", u)]


def warnings(report: Report) -> list[str]:
    """What the reader must know before trusting the findings, most important first."""
    found = []
    db = report.database
    if db.empty:
        found.append("The advisory database is EMPTY: no vulnerability was checked. Sync it, then scan again.")
    elif db.stale:
        age = f", {db.age_hours:.0f} h ago" if db.age_hours is not None else ""
        found.append(
            f"The advisory database is STALE (last sync {db.last_sync or 'unknown'}{age}): "
            "vulnerabilities published since are missing."
        )
    if report.unsupported:
        found.append(f"Operating-system packages were NOT checked: {report.unsupported}")
    return found


def _database_line(report: Report) -> str:
    db = report.database
    if db.empty:
        return "empty"
    sources = ", ".join(db.sources) or "unknown sources"
    return f"{sources}; last sync {db.last_sync or 'unknown'}" + (" (STALE)" if db.stale else "")


def _image_name(report: Report) -> str:
    image = report.analysis.image
    return (image.repo_tags[0] if image.repo_tags else image.reference) or image.manifest_digest or "image"


def _fixed_in(finding: Finding) -> str:
    """For a "fixed in" column: the versions, or why there are none."""
    if finding.fixed_versions:
        return ", ".join(finding.fixed_versions)
    return "no fix yet" if finding.fix_state == FixState.AFFECTED else f"no fix: {finding.fix_state}"


def _fix_note(finding: Finding) -> str:
    """For a sentence: `fixed in 4.2.11`, `no fix yet`, `no fix: will_not_fix`."""
    return f"fixed in {_fixed_in(finding)}" if finding.fixed_versions else _fixed_in(finding)


def suppressed_findings(report: Report) -> list[tuple[Finding, Suppression]]:
    """The suppressed findings with their suppressions, in report order."""
    return [(f, f.suppression) for f in ordered(report.findings) if f.suppression is not None]


def _package_key(package: Package) -> tuple[str, ...]:
    return (package.type, package.name, package.version, package.arch, package.path, package.purl)


def _grouped(findings: Iterable[Finding]) -> list[tuple[Package, list[Finding]]]:
    """Findings by package, the packages in the order of their most severe finding."""
    groups: dict[tuple[str, ...], tuple[Package, list[Finding]]] = {}
    for finding in ordered(findings):
        groups.setdefault(_package_key(finding.package), (finding.package, []))[1].append(finding)
    return list(groups.values())


def _plain(text: object) -> str:
    """One line of terminal-safe text: control characters shown as escapes, never sent raw."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], str(text).replace("\r\n", " ").replace("\n", " "))


def _json_default(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# --- table ------------------------------------------------------------------------------------------


def _columns(rows: Sequence[tuple[str, ...]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _finding_row(f: Finding) -> tuple[str, ...]:
    title = _plain(f.title)
    title = title if len(title) <= 70 else title[:69] + "…"
    return (
        severity_of(f),
        _plain(f.id),
        _plain(f.fix_state),
        _plain(", ".join(f.fixed_versions) or "-"),
        "KEV" if f.kev else "",
        title,
    )


def to_table(report: Report) -> str:
    """For people: grouped by package with the fixed versions, suppressed ones apart, a summary line."""
    image = report.analysis.image
    lines = [
        f"Image:     {_plain(_image_name(report))}",
        f"Digest:    {_plain(image.manifest_digest or image.config_digest)}",
        f"OS:        {_plain(describe_distro(report.analysis.distro))}",
        f"Database:  {_plain(_database_line(report))}",
        "",
    ]
    lines += [f"WARNING: {_plain(w)}" for w in warnings(report)]
    lines += [f"note: {_plain(n)}" for n in report.notes]
    for package, findings in _grouped(report.open_findings):
        fixed = list(dict.fromkeys(v for f in findings for v in f.fixed_versions))
        where = ", ".join(_plain(x) for x in (package.type, package.path) if x)
        fix = f"fixed in {', '.join(_plain(v) for v in fixed)}" if fixed else "no fixed version"
        lines += ["", f"{_plain(package.name)} {_plain(package.version)} ({where}): {fix}"]
        lines += _columns(
            [("SEVERITY", "ID", "FIX STATE", "FIXED IN", "KEV", "TITLE")] + [_finding_row(f) for f in findings]
        )
    suppressed = suppressed_findings(report)
    if suppressed:
        lines += ["", f"Suppressed ({len(suppressed)}):"]
        rows = [("PACKAGE", "VERSION", "ID", "SEVERITY", "BY", "REASON")]
        for f, s in suppressed:
            by = f"{s.by} {s.source}".strip() + (f" until {s.expires}" if s.expires else "")
            rows.append(
                (
                    _plain(f.package.name),
                    _plain(f.package.version),
                    _plain(f.id),
                    severity_of(f),
                    _plain(by),
                    _plain(s.reason),
                )
            )
        lines += _columns(rows)
    lines += ["", summary_line(report)]
    return "\n".join(lines) + "\n"


# --- JSON ---------------------------------------------------------------------------------------------


def _finding_json(finding: Finding) -> dict[str, Any]:
    doc = asdict(finding)
    doc["url"] = advisory_url(finding.id)
    doc["fixable"] = finding.fixable
    return doc


def to_json(report: Report) -> str:
    """Vigil's own document, `vigil.report/v1`: everything the report holds, findings in report order."""
    image = report.analysis.image
    open_findings = report.open_findings
    doc = {
        "schema": REPORT_SCHEMA,
        "tool": {"name": sbom.TOOL_NAME, "version": sbom.TOOL_VERSION},
        "image": {**asdict(image), "platform": str(image.platform)},
        "distro": asdict(report.analysis.distro) if report.analysis.distro else None,
        "database": asdict(report.database),
        "unsupported": report.unsupported,
        "warnings": warnings(report) + list(report.analysis.warnings),
        "notes": list(report.notes),
        "summary": {
            "total": len(open_findings),
            "by_severity": severity_counts(open_findings),
            "fixable": sum(f.fixable for f in open_findings),
            "kev": sum(f.kev for f in open_findings),
            "suppressed": len(report.findings) - len(open_findings),
        },
        "findings": [_finding_json(f) for f in ordered(report.findings)],
        # The inventory too: a CI job keeps one document that says what was checked.
        "packages": [asdict(p) for p in report.analysis.packages],
    }
    return json.dumps(doc, indent=2, sort_keys=True, default=_json_default)


# --- SARIF 2.1.0 --------------------------------------------------------------------------------------


def _security_severity(findings: list[Finding]) -> str | None:
    scores = [f.cvss_score for f in findings if f.cvss_score is not None and math.isfinite(f.cvss_score)]
    if scores:
        return f"{min(max(max(scores), 0.0), 10.0):.1f}"
    return _BAND_SCORES.get(severity_of(min(findings, key=_rank)))


def _sarif_rule(vuln_id: str, findings: list[Finding]) -> dict[str, Any]:
    worst = min(findings, key=_rank)
    title = next((f.title for f in findings if f.title), "") or vuln_id
    description = next((f.description for f in findings if f.description), "") or title
    cwes = sorted({c for f in findings for c in f.cwes})
    references = list(dict.fromkeys(r for f in findings for r in _http_urls(f.references)))
    help_lines = [f"{vuln_id}: {title}", "", description, "", *references]
    properties: dict[str, Any] = {
        "tags": ["security", "vulnerability", severity_of(worst), *cwes],
        "precision": "very-high",
    }
    score = _security_severity(findings)
    if score is not None:
        properties["security-severity"] = score
    return {
        "id": vuln_id,
        "shortDescription": {"text": title},
        "fullDescription": {"text": description},
        "helpUri": advisory_url(vuln_id),
        "help": {
            "text": "\n".join(help_lines).strip(),
            "markdown": _sarif_help_markdown(vuln_id, title, description, references),
        },
        "defaultConfiguration": {"level": _SARIF_LEVELS[severity_of(worst)]},
        "properties": properties,
    }


def _sarif_help_markdown(vuln_id: str, title: str, description: str, references: list[str]) -> str:
    lines = [f"**[{_md(vuln_id)}]({advisory_url(vuln_id)})**: {_md(title)}", "", _md(description)]
    if references:
        lines += ["", *(f"- <{_md_url(u)}>" for u in references)]
    return "\n".join(lines)


def _artifact_uri(report: Report, package: Package) -> str:
    # A relative URI: `:` is escaped so that no path ever reads as a scheme.
    return quote(package.path or _image_name(report), safe="/!@+,;=~", errors="replace")


def _sarif_result(report: Report, finding: Finding, rule_index: int) -> dict[str, Any]:
    p = finding.package
    kev = " [known exploited]" if finding.kev else ""
    text = f"{p.name} {p.version}: {finding.id} ({severity_of(finding)}){kev}, {_fix_note(finding)}"
    identity = "|".join((p.purl or f"{p.type}:{p.name}@{p.version}", p.path, finding.id))
    result: dict[str, Any] = {
        "ruleId": finding.id,
        "ruleIndex": rule_index,
        "level": _SARIF_LEVELS[severity_of(finding)],
        "message": {"text": text + (f". {finding.title}" if finding.title else "")},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": _artifact_uri(report, p)}},
                "logicalLocations": [
                    {"name": p.name, "fullyQualifiedName": p.purl or f"{p.type}:{p.name}@{p.version}", "kind": "module"}
                ],
            }
        ],
        "partialFingerprints": {"vigilFinding/v1": hashlib.sha256(identity.encode("utf-8", "replace")).hexdigest()},
        "properties": {
            "installedVersion": p.version,
            "fixedVersions": list(finding.fixed_versions),
            "fixState": finding.fix_state,
            "kev": finding.kev,
        },
    }
    if finding.suppression is not None:
        s = finding.suppression
        result["suppressions"] = [
            {"kind": "external", "status": "accepted", "justification": f"{s.by} {s.source}: {s.reason}".strip()}
        ]
    return result


def to_sarif(report: Report) -> str:
    """SARIF 2.1.0: one rule per vulnerability id, one result per finding, located at the package's file."""
    findings = ordered(report.findings)
    by_id: dict[str, list[Finding]] = {}
    for finding in findings:
        by_id.setdefault(finding.id, []).append(finding)
    rule_ids = sorted(by_id)
    index = {vuln_id: n for n, vuln_id in enumerate(rule_ids)}
    image = report.analysis.image
    notices = [*warnings(report), *report.notes]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": sbom.TOOL_NAME,
                "version": sbom.TOOL_VERSION,
                "rules": [_sarif_rule(vuln_id, by_id[vuln_id]) for vuln_id in rule_ids],
            }
        },
        "invocations": [
            {
                "executionSuccessful": True,
                "toolExecutionNotifications": [{"level": "warning", "message": {"text": text}} for text in notices],
            }
        ],
        "results": [_sarif_result(report, f, index[f.id]) for f in findings],
        "properties": {
            "imageName": _image_name(report),
            "manifestDigest": image.manifest_digest,
            "distro": describe_distro(report.analysis.distro),
        },
    }
    return json.dumps({"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": [run]}, indent=2, sort_keys=True)


# --- CycloneDX -----------------------------------------------------------------------------------------


def _cdx_method(vector: str) -> VulnerabilityScoreSource:
    if vector.startswith("CVSS:3.1/"):
        return VulnerabilityScoreSource.CVSS_V3_1
    if vector.startswith("CVSS:3.0/"):
        return VulnerabilityScoreSource.CVSS_V3
    if vector.startswith("CVSS:4.0/"):
        return VulnerabilityScoreSource.CVSS_V4
    if vector.startswith("AV:"):
        return VulnerabilityScoreSource.CVSS_V2
    return VulnerabilityScoreSource.OTHER


def _cdx_rating(finding: Finding) -> VulnerabilityRating:
    score = finding.cvss_score
    usable = score is not None and math.isfinite(score)
    return VulnerabilityRating(
        source=VulnerabilitySource(name=finding.severity_source) if finding.severity_source else None,
        score=Decimal(str(score)) if usable else None,
        severity=VulnerabilitySeverity(severity_of(finding).lower()),
        method=_cdx_method(finding.cvss_vector) if finding.cvss_vector or usable else None,
        vector=finding.cvss_vector or None,
    )


def _cdx_source(vuln_id: str) -> VulnerabilitySource:
    return VulnerabilitySource(name=_source_name(vuln_id), url=XsUri(advisory_url(vuln_id)))


def _cdx_analysis(finding: Finding) -> VulnerabilityAnalysis | None:
    s = finding.suppression
    if s is None:
        return None
    vex = vex_analysis(s)
    if vex is None:
        # An ignore entry accepts a risk; it does not claim the package is unaffected.
        until = f" until {s.expires}" if s.expires else ""
        return VulnerabilityAnalysis(detail=f"ignored by {s.source or s.by}{until}: {s.reason}")
    state, justification, detail = vex
    cdx_justification = _CDX_JUSTIFICATIONS.get(justification, justification)
    return VulnerabilityAnalysis(
        state=ImpactAnalysisState(state),
        justification=ImpactAnalysisJustification(cdx_justification) if cdx_justification else None,
        detail=f"{detail} (VEX: {s.source})" if detail else f"VEX: {s.source}",
    )


def _cdx_properties(finding: Finding) -> list[Property]:
    props = [("vigil:fix_state", finding.fix_state)]
    if finding.kev:
        props.append(("vigil:kev", "true"))
        if finding.kev_date_added:
            props.append(("vigil:kev:date_added", finding.kev_date_added.isoformat()))
    if finding.epss_score is not None:
        props.append(("vigil:epss:score", f"{finding.epss_score:.5f}"))
    if finding.epss_percentile is not None:
        props.append(("vigil:epss:percentile", f"{finding.epss_percentile:.5f}"))
    if finding.suppression is not None:
        props += [
            ("vigil:suppressed:by", finding.suppression.by),
            ("vigil:suppressed:source", finding.suppression.source),
        ]
    return [Property(name=k, value=v) for k, v in props if v]


def _cdx_advisories(finding: Finding) -> list[VulnerabilityAdvisory]:
    advisories = []
    for url in dict.fromkeys(_http_urls(finding.references)):
        try:
            advisories.append(VulnerabilityAdvisory(url=XsUri(url)))
        except (ValueError, InvalidUriException):
            continue  # a reference XsUri refuses is left out rather than failing the report
    return advisories


def _cdx_vulnerability(finding: Finding, ref: str, bom_ref: str) -> Vulnerability:
    vex = vex_analysis(finding.suppression) if finding.suppression else None
    status = ImpactAnalysisAffectedStatus.UNAFFECTED if vex else ImpactAnalysisAffectedStatus.AFFECTED
    fixed = ", ".join(finding.fixed_versions)
    version = finding.package.version
    versions = [BomTargetVersionRange(version=version, status=status)] if version else []
    return Vulnerability(
        bom_ref=bom_ref,
        id=finding.id,
        source=_cdx_source(finding.id),
        references=[VulnerabilityReference(id=a, source=_cdx_source(a)) for a in finding.aliases],
        ratings=[_cdx_rating(finding)],
        cwes=[int(m.group(1)) for c in finding.cwes if (m := _CWE.match(c))],
        description=finding.description or finding.title or None,
        recommendation=f"Upgrade {finding.package.name} to {fixed}" if fixed else None,
        advisories=_cdx_advisories(finding),
        analysis=_cdx_analysis(finding),
        affects=[BomTarget(ref=ref, versions=versions)],
        properties=_cdx_properties(finding),
    )


def _component_refs(report: Report, bom: Bom) -> dict[tuple[str, ...], str]:
    """Package -> its bom-ref in the SBOM; packages a finding names but the inventory lacks are added."""
    refs: dict[tuple[str, ...], str] = {}
    for package, ref in sbom._unique_refs(report.analysis.packages):
        refs.setdefault(_package_key(package), ref)
    taken = set(refs.values())
    for finding in report.findings:
        key = _package_key(finding.package)
        if key in refs:
            continue
        p = finding.package
        ref = _unique(p.purl or f"{p.type}:{p.name}@{p.version}", taken)
        refs[key] = ref
        purl = PackageURL.from_string(p.purl) if p.purl else None
        bom.components.add(
            Component(type=ComponentType.LIBRARY, name=p.name, version=p.version, bom_ref=ref, purl=purl)
        )
    return refs


def _unique(ref: str, taken: set[str]) -> str:
    """`ref`, or `ref#2`, `ref#3`…: bom-refs must be unique in a document."""
    candidate, number = ref, 1
    while candidate in taken:
        number += 1
        candidate = f"{ref}#{number}"
    taken.add(candidate)
    return candidate


def to_cyclonedx(report: Report) -> str:
    """CycloneDX 1.6: the image's SBOM as `sbom.to_cyclonedx` writes it, plus `vulnerabilities`."""
    # Read back from sbom.py's own output, so that components and bom-refs are the SBOM's exactly.
    bom = cast(Bom, Bom.from_json(json.loads(sbom.to_cyclonedx(report.analysis))))  # type: ignore[attr-defined]
    refs = _component_refs(report, bom)
    used: set[str] = set()
    for finding in ordered(report.findings):
        ref = refs[_package_key(finding.package)]
        bom.vulnerabilities.add(_cdx_vulnerability(finding, ref, _unique(f"{finding.id}@{ref}", used)))
    notices = [*warnings(report), *report.notes]
    for number, text in enumerate(notices, start=1):
        bom.metadata.properties.add(Property(name=f"vigil:report:note:{number}", value=text))
    return JsonV1Dot6(bom).output_as_string(indent=2)


# --- JUnit --------------------------------------------------------------------------------------------


def _xml(text: object) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def _junit_failure_body(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        kev = " KEV" if f.kev else ""
        lines.append(f"{severity_of(f)}{kev} {f.id} ({_fix_note(f)}) {f.title}".rstrip())
        lines.append(f"  {advisory_url(f.id)}")
    return "\n".join(lines)


def _junit_testcase(suite: ET.Element, package: Package, findings: list[Finding]) -> int:
    """One testcase for a package; a failure when it has open findings. Returns 1 for a failure."""
    case = ET.SubElement(
        suite,
        "testcase",
        {
            "classname": _xml(package.type or "package"),
            "name": _xml(f"{package.name} {package.version}"),
            "file": _xml(package.path),
            "time": "0",
        },
    )
    open_findings = [f for f in findings if f.suppression is None]
    suppressed = [f for f in findings if f.suppression is not None]
    if open_findings:
        listed = ", ".join(f"{f.id} ({severity_of(f)})" for f in open_findings[:10])
        more = f" and {len(open_findings) - 10} more" if len(open_findings) > 10 else ""
        count = f"{len(open_findings)} vulnerabilit{'y' if len(open_findings) == 1 else 'ies'}"
        message = f"{count}: {listed}{more}"
        failure = ET.SubElement(case, "failure", {"message": _xml(message), "type": severity_of(open_findings[0])})
        failure.text = _xml(_junit_failure_body(open_findings))
    if suppressed:
        out = ET.SubElement(case, "system-out")
        out.text = _xml(
            "\n".join(
                f"suppressed {f.id} ({severity_of(f)}) by {f.suppression.by}: {f.suppression.reason}"
                for f in suppressed
                if f.suppression is not None
            )
        )
    return 1 if open_findings else 0


def to_junit(report: Report) -> str:
    """JUnit XML, as GitLab and Jenkins read it.

    One testsuite for the image, one testcase per package of the inventory
    (classname: its type, name: name and version, file: its path). A package
    fails when it has any open finding, whatever the gate's threshold: its one
    `<failure>` lists them, the severities in the message, the most severe
    first (`type` is that severity). Suppressed findings go to `system-out`.
    An empty database or an unsupported release is an `<error>` testcase,
    so that CI shows that nothing was checked.
    """
    by_package: dict[tuple[str, ...], tuple[Package, list[Finding]]] = {}
    for package in report.analysis.packages:
        by_package.setdefault(_package_key(package), (package, []))
    for package, findings in _grouped(report.findings):
        by_package.setdefault(_package_key(package), (package, []))[1].extend(findings)
    root = ET.Element("testsuites", {"name": sbom.TOOL_NAME})
    suite = ET.SubElement(root, "testsuite", {"name": _xml(_image_name(report)), "time": "0"})
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("manifest_digest", report.analysis.image.manifest_digest),
        ("distro", describe_distro(report.analysis.distro)),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    errors = 0
    for text in warnings(report):
        case = ET.SubElement(suite, "testcase", {"classname": "vigil", "name": "advisory coverage", "time": "0"})
        ET.SubElement(case, "error", {"message": _xml(text), "type": "coverage"})
        errors += 1
    ordered_packages = sorted(
        by_package.values(),
        key=lambda item: (item[0].name.lower(), item[0].name, item[0].version, item[0].type, item[0].path),
    )
    failures = sum(_junit_testcase(suite, package, findings) for package, findings in ordered_packages)
    if report.notes:
        ET.SubElement(suite, "system-out").text = _xml("\n".join(report.notes))
    tests = str(len(ordered_packages) + errors)
    for element in (root, suite):
        element.attrib.update({"tests": tests, "failures": str(failures), "errors": str(errors)})
    suite.set("skipped", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- Markdown -----------------------------------------------------------------------------------------


def _md(text: object) -> str:
    """Inline Markdown text: HTML neutralised, Markdown syntax escaped, on one line, table-safe."""
    escaped = html.escape(_plain(text), quote=False)
    # Mid-line text needs no escape for the line-start syntax (#, -, +, 1.); links need `[`.
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", escaped)


def _md_url(url: str) -> str:
    return quote(url, safe=":/?#[]@!$&'*+,;=%-._~", errors="replace")


def _md_link(vuln_id: str) -> str:
    return f"[{_md(vuln_id)}]({advisory_url(vuln_id)})"


def to_markdown(report: Report, max_rows: int = MARKDOWN_MAX_ROWS) -> str:
    """For a pull-request comment: a summary by severity, then the findings, cut after `max_rows`."""
    image = report.analysis.image
    lines = [f"### Vigil scan of `{_md_code(_image_name(report))}`", ""]
    lines += [f"{_md(describe_distro(report.analysis.distro))} · database: {_md(_database_line(report))}"]
    if image.manifest_digest:
        lines[-1] += f" · `{_md_code(image.manifest_digest)}`"
    lines.append("")
    lines += [f"> **Warning:** {_md(w)}" for w in warnings(report)]
    lines += [f"> Note: {_md(n)}" for n in report.notes]
    open_findings = ordered(report.open_findings)
    suppressed = [f for f, _ in suppressed_findings(report)]
    lines += ["", "| Severity | Open | Suppressed |", "| --- | ---: | ---: |"]
    open_counts, suppressed_counts = severity_counts(open_findings), severity_counts(suppressed)
    lines += [f"| {s} | {open_counts[s]} | {suppressed_counts[s]} |" for s in SEVERITIES]
    lines += [f"| **Total** | **{len(open_findings)}** | **{len(suppressed)}** |", ""]
    if open_findings:
        lines += ["| Package | Version | Vulnerability | Severity | Fixed in |", "| --- | --- | --- | --- | --- |"]
        for f in open_findings[:max_rows]:
            kev = " (KEV)" if f.kev else ""
            lines.append(
                f"| {_md(f.package.name)} | {_md(f.package.version)} | {_md_link(f.id)}{kev} "
                f"| {severity_of(f)} | {_md(_fixed_in(f))} |"
            )
        if len(open_findings) > max_rows:
            lines += ["", f"_{len(open_findings) - max_rows} more findings not shown; see the full report._"]
    else:
        lines.append("No open findings.")
    if suppressed:
        lines += ["", f"<details><summary>Suppressed ({len(suppressed)})</summary>", ""]
        lines += ["| Package | Vulnerability | Severity | Reason |", "| --- | --- | --- | --- |"]
        for f, s in suppressed_findings(report)[:max_rows]:
            reason = f"{s.by}: {s.reason}"
            lines.append(f"| {_md(f.package.name)} | {_md_link(f.id)} | {severity_of(f)} | {_md(reason)} |")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _md_code(text: str) -> str:
    """Text inside a code span: backticks and line breaks cannot end it early."""
    return _plain(text).replace("`", "'")


# --- HTML ---------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1d2430;background:#fff}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
table{border-collapse:collapse;width:100%;margin:.4rem 0}th,td{border-bottom:1px solid #dde1e6;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f3f5f7}code{font-size:.92em}.meta{color:#57606a}
.warn{background:#fff3cd;border:1px solid #e0b400;padding:.5rem .8rem;margin:.4rem 0;border-radius:4px}
.note{background:#eef4ff;border:1px solid #9ab8f0;padding:.4rem .8rem;margin:.3rem 0;border-radius:4px}
.sev{font-weight:600;padding:0 .35rem;border-radius:3px;color:#fff}.CRITICAL{background:#8b0000}
.HIGH{background:#d1242f}.MEDIUM{background:#bf8700}.LOW{background:#1f6feb}.UNKNOWN{background:#6e7781}
.kev{font-weight:700;color:#8b0000}details{margin:.2rem 0}summary{cursor:pointer}
"""


def _h(text: object) -> str:
    return html.escape(str(text).encode("utf-8", "replace").decode("utf-8"), quote=True)


def _html_link(vuln_id: str) -> str:
    return f'<a href="{_h(advisory_url(vuln_id))}">{_h(vuln_id)}</a>'


def _html_finding_row(f: Finding) -> str:
    items = "".join(f'<li><a href="{_h(u)}">{_h(u)}</a></li>' for u in _http_urls(f.references))
    body = (f"<p>{_h(f.description)}</p>" if f.description else "") + (f"<ul>{items}</ul>" if items else "")
    details = f"<details><summary>details</summary>{body}</details>" if body else ""
    kev = ' <span class="kev">KEV</span>' if f.kev else ""
    aliases = f'<div class="meta">{_h(", ".join(f.aliases))}</div>' if f.aliases else ""
    return (
        f'<tr><td><span class="sev {severity_of(f)}">{severity_of(f)}</span></td>'
        f"<td>{_html_link(f.id)}{kev}{aliases}</td><td>{_h(f.fix_state)}</td>"
        f"<td>{_h(', '.join(f.fixed_versions) or '-')}</td>"
        f"<td>{_h(f.title)}{details}</td></tr>"
    )


def _html_packages(report: Report) -> list[str]:
    parts = []
    for package, findings in _grouped(report.open_findings):
        where = _h(package.path) or _h(package.type)
        parts.append(
            f"<h3>{_h(package.name)} <code>{_h(package.version)}</code> "
            f'<span class="meta">{_h(package.type)} · {where}</span></h3>'
            "<table><tr><th>Severity</th><th>Vulnerability</th><th>Fix state</th><th>Fixed in</th><th>Title</th></tr>"
            + "".join(_html_finding_row(f) for f in findings)
            + "</table>"
        )
    return parts or ["<p>No open findings.</p>"]


def _html_suppressed(report: Report) -> list[str]:
    suppressed = suppressed_findings(report)
    if not suppressed:
        return []
    rows = "".join(
        f"<tr><td>{_h(f.package.name)} <code>{_h(f.package.version)}</code></td><td>{_html_link(f.id)}</td>"
        f'<td><span class="sev {severity_of(f)}">{severity_of(f)}</span></td>'
        f'<td>{_h(s.by)} <span class="meta">{_h(s.source)}</span></td><td>{_h(s.reason)}</td></tr>'
        for f, s in suppressed
    )
    return [
        f"<h2>Suppressed ({len(suppressed)})</h2>",
        "<table><tr><th>Package</th><th>Vulnerability</th><th>Severity</th><th>By</th><th>Reason</th></tr>",
        rows + "</table>",
    ]


def to_html(report: Report) -> str:
    """One self-contained page: inline CSS, no script, no external asset; every report string escaped."""
    image = report.analysis.image
    open_findings = report.open_findings
    counts = severity_counts(open_findings)
    summary = "".join(f'<td><span class="sev {s}">{s}</span> {counts[s]}</td>' for s in SEVERITIES)
    body = [
        f"<h1>Vigil scan of {_h(_image_name(report))}</h1>",
        f'<p class="meta">{_h(describe_distro(report.analysis.distro))} · <code>{_h(image.manifest_digest)}</code>'
        f" · database: {_h(_database_line(report))}</p>",
        *[f'<div class="warn"><strong>Warning:</strong> {_h(w)}</div>' for w in warnings(report)],
        *[f'<div class="note">{_h(n)}</div>' for n in report.notes],
        f"<h2>Summary</h2><table><tr>{summary}</tr></table><p>{_h(summary_line(report))}</p>",
        "<h2>Findings by package</h2>",
        *_html_packages(report),
        *_html_suppressed(report),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        # The page needs nothing from outside; the policy makes sure a missed escape could not fetch or run anything.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>Vigil: {_h(_image_name(report))}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


# --- dispatch -----------------------------------------------------------------------------------------

_WRITERS: dict[str, Callable[[Report], str]] = {
    "table": to_table,
    "json": to_json,
    "sarif": to_sarif,
    "cyclonedx": to_cyclonedx,
    "junit": to_junit,
    "markdown": to_markdown,
    "html": to_html,
}


def render_report(report: Report, fmt: str) -> str:
    if fmt not in _WRITERS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return _WRITERS[fmt](report)
