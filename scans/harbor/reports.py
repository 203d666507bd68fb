"""Vigil's findings and inventories as the Scanner Adapter API's report documents.

Plain functions over the engine's dataclasses, no Django. The vulnerability
report follows `HarborVulnerabilityReport` of the v1.2 OpenAPI spec, which
is what Harbor reads for both report types Vigil produces (the native
`vuln.report.harbor+json; version=1.0` and the generic
`vulnerability.report; version=1.1`), plus Harbor's own `layer` field. The
SBOM report follows `HarborSbomReport`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from scans.engine import sbom
from scans.engine.findings import Finding, Report
from scans.engine.models import Analysis
from scans.engine.reports import advisory_url, ordered

SCANNER = {"name": "Vigil", "vendor": "Vigil", "version": sbom.TOOL_VERSION}

SPDX = "application/spdx+json"
CYCLONEDX = "application/vnd.cyclonedx+json"
SBOM_MEDIA_TYPES = (SPDX, CYCLONEDX)

# Harbor's scale, lowest first. Vigil folds the publishers' "negligible" and "unimportant" into LOW when it
# matches (advisories.matching.SEVERITY_WORDS), so Negligible is never produced.
HARBOR_SEVERITIES = ("Unknown", "Negligible", "Low", "Medium", "High", "Critical")
_TO_HARBOR = {"CRITICAL": "Critical", "HIGH": "High", "MEDIUM": "Medium", "LOW": "Low", "UNKNOWN": "Unknown"}
_HTTP_URL = re.compile(r"^https?://[^\s<>\"'`]+$")


def harbor_severity(severity: str) -> str:
    return _TO_HARBOR.get(severity, "Unknown")


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, which Harbor's Go client parses."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _cvss(finding: Finding) -> tuple[dict[str, Any], dict[str, Any]]:
    """(preferred_cvss, the vendor_attributes CVSS entry) for the finding's vector and score.

    Harbor reads `vendor_attributes.CVSS.<source>.V3Score` as a number
    (postprocessors: parseScoreFromVendorAttribute), so scores stay numbers.
    CVSS v4 has no place in `preferred_cvss`; it goes to the vendor attributes only.
    """
    vector, score = finding.cvss_vector, finding.cvss_score
    if not vector:
        return {}, {}
    if vector.startswith("CVSS:3."):
        preferred: dict[str, Any] = {"vector_v3": vector}
        vendor: dict[str, Any] = {"V3Vector": vector}
        if score is not None:
            preferred["score_v3"], vendor["V3Score"] = score, score
        return preferred, vendor
    if vector.startswith("CVSS:4."):
        return {}, {"V40Vector": vector, **({"V40Score": score} if score is not None else {})}
    preferred, vendor = {"vector_v2": vector}, {"V2Vector": vector}
    if score is not None:
        preferred["score_v2"], vendor["V2Score"] = score, score
    return preferred, vendor


def _links(finding: Finding) -> list[str]:
    links = [advisory_url(finding.id), *(u for u in finding.references if _HTTP_URL.match(u))]
    return list(dict.fromkeys(links))


def _vendor_attributes(finding: Finding, cvss: dict[str, Any]) -> dict[str, Any]:
    package = finding.package
    attributes: dict[str, Any] = {
        "purl": package.purl,
        "package_type": package.type,
        "path": package.path,
        "fix_state": finding.fix_state,
        "severity_source": finding.severity_source,
        "aliases": list(finding.aliases),
        "kev": finding.kev,
    }
    if cvss:
        # One source key, as Harbor expects (`nvd`, `redhat` ... from Trivy); Vigil's CVSS is the most
        # preferred source's, which the finding does not name, so it is filed under Vigil's own name.
        attributes["CVSS"] = {"vigil": cvss}
    if finding.kev_date_added is not None:
        attributes["kev_date_added"] = finding.kev_date_added.isoformat()
    if finding.epss_score is not None:
        attributes["epss"] = {"score": finding.epss_score, "percentile": finding.epss_percentile}
    return {k: v for k, v in attributes.items() if v not in ("", [], None)}


def vulnerability_item(finding: Finding) -> dict[str, Any]:
    """One finding as a `VulnerabilityItem`."""
    package = finding.package
    preferred, cvss = _cvss(finding)
    item: dict[str, Any] = {
        "id": finding.id,
        "package": package.name,
        "version": package.version,
        "severity": harbor_severity(finding.severity),
        "description": finding.description or finding.title,
        "links": _links(finding),
    }
    if finding.fixed_versions:
        item["fix_version"] = ", ".join(finding.fixed_versions)
    if preferred:
        item["preferred_cvss"] = preferred
    if finding.cwes:
        item["cwe_ids"] = list(finding.cwes)
    if package.layer is not None:
        # Harbor's own field ("Not defined by Scanners API"): the layer that brought the package in.
        item["layer"] = {"digest": package.layer.digest, "diff_id": package.layer.diff_id}
    item["vendor_attributes"] = _vendor_attributes(finding, cvss)
    return item


def overall_severity(items: list[dict[str, Any]]) -> str:
    return max((item["severity"] for item in items), key=HARBOR_SEVERITIES.index, default="Unknown")


def vulnerability_report(report: Report, artifact: dict[str, str], generated_at: datetime) -> dict[str, Any]:
    """The open findings of `report` as a `HarborVulnerabilityReport`.

    Suppressed findings (ignore file, VEX, triage) are left out: Harbor has no
    notion of them, and would count them. Harbor keys an item by id, package
    and version, so a package found at two paths is reported once, with its
    most severe finding first.
    """
    items: dict[tuple[str, str, str], dict[str, Any]] = {}
    for finding in ordered(report.open_findings):
        key = (finding.id, finding.package.name, finding.package.version)
        items.setdefault(key, vulnerability_item(finding))
    vulnerabilities = list(items.values())
    return {
        "generated_at": timestamp(generated_at),
        "artifact": artifact,
        "scanner": SCANNER,
        "severity": overall_severity(vulnerabilities),
        "vulnerabilities": vulnerabilities,
    }


def sbom_report(
    analysis: Analysis, artifact: dict[str, str], generated_at: datetime, media_type: str
) -> dict[str, Any]:
    """The inventory as a `HarborSbomReport` holding an SPDX 2.3 or CycloneDX 1.6 JSON document."""
    if media_type == SPDX:
        document = json.loads(sbom.to_spdx(analysis))
        spec_version = str(document.get("spdxVersion", "")).removeprefix("SPDX-")
    elif media_type == CYCLONEDX:
        document = json.loads(sbom.to_cyclonedx(analysis))
        spec_version = str(document.get("specVersion", ""))
    else:
        raise ValueError(f"sbom_media_type must be one of {', '.join(SBOM_MEDIA_TYPES)}")
    return {
        "generated_at": timestamp(generated_at),
        "artifact": artifact,
        "scanner": SCANNER,
        "vendor_attributes": {"spec-version": spec_version, "created-by": "vigil"},
        "media_type": media_type,
        "sbom": document,
    }
