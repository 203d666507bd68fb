"""VEX out: triage decisions about an image's findings as OpenVEX 0.2 and as CycloneDX 1.6 VEX.

No Django: the service turns its decision rows into `VexEntry` values and
these writers do the rest. Both documents name the image as the product and
each package by its purl, so that `scans.engine.policy.parse_vex` reads them
back (the CLI's `--vex`, the service's import) and applies them to the same
image.

Vigil has two states VEX lacks, and writes them the way CISA's VEX status
mapping and CycloneDX's analysis do:

- false_positive: OpenVEX `not_affected` (justification
  vulnerable_code_not_present unless one was given); CycloneDX `false_positive`.
- risk_accepted: OpenVEX `affected` with the acceptance and its expiry as the
  action statement; CycloneDX `exploitable` with the response `will_not_fix`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from cyclonedx.model import Property, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.impact_analysis import (
    ImpactAnalysisAffectedStatus,
    ImpactAnalysisJustification,
    ImpactAnalysisResponse,
    ImpactAnalysisState,
)
from cyclonedx.model.vulnerability import (
    BomTarget,
    BomTargetVersionRange,
    Vulnerability,
    VulnerabilityAnalysis,
    VulnerabilityReference,
    VulnerabilitySource,
)
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from scans.engine import sbom
from scans.engine.reports import advisory_url

OPENVEX_CONTEXT = "https://openvex.dev/ns/v0.2.0"
STATES = ("not_affected", "affected", "fixed", "under_investigation", "false_positive", "risk_accepted")
# OpenVEX justifications in CycloneDX's words (CISA's "VEX status justifications" mapping), and back.
CYCLONEDX_JUSTIFICATION = {
    "component_not_present": "code_not_present",
    "vulnerable_code_not_present": "code_not_present",
    "vulnerable_code_not_in_execute_path": "code_not_reachable",
    "vulnerable_code_cannot_be_controlled_by_adversary": "requires_environment",
    "inline_mitigations_already_exist": "protected_by_mitigating_control",
}
OPENVEX_JUSTIFICATION = {
    "code_not_present": "vulnerable_code_not_present",
    "code_not_reachable": "vulnerable_code_not_in_execute_path",
    "requires_configuration": "vulnerable_code_cannot_be_controlled_by_adversary",
    "requires_dependency": "vulnerable_code_cannot_be_controlled_by_adversary",
    "requires_environment": "vulnerable_code_cannot_be_controlled_by_adversary",
    "protected_by_compiler": "inline_mitigations_already_exist",
    "protected_at_runtime": "inline_mitigations_already_exist",
    "protected_at_perimeter": "inline_mitigations_already_exist",
    "protected_by_mitigating_control": "inline_mitigations_already_exist",
}
# VEX status (OpenVEX, or a CycloneDX analysis state) -> Vigil's decision state, for imports.
DECISION_STATE = {
    "not_affected": "not_affected",
    "affected": "affected",
    "fixed": "fixed",
    "under_investigation": "under_investigation",
    "false_positive": "false_positive",
    "resolved": "fixed",
    "resolved_with_pedigree": "fixed",
    "exploitable": "affected",
    "in_triage": "under_investigation",
}
_CYCLONEDX_STATE = {
    "not_affected": ImpactAnalysisState.NOT_AFFECTED,
    "affected": ImpactAnalysisState.EXPLOITABLE,
    "fixed": ImpactAnalysisState.RESOLVED,
    "under_investigation": ImpactAnalysisState.IN_TRIAGE,
    "false_positive": ImpactAnalysisState.FALSE_POSITIVE,
    "risk_accepted": ImpactAnalysisState.EXPLOITABLE,
}


@dataclass(frozen=True)
class VexEntry:
    """One decided finding: a vulnerability in one package of the image."""

    vulnerability_id: str
    aliases: tuple[str, ...]
    purl: str  # the package's purl, version and qualifiers included
    name: str
    version: str
    state: str  # one of STATES
    reason: str
    timestamp: datetime
    justification: str = ""  # an OpenVEX justification
    expires: date | None = None
    author: str = ""  # who decided

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"unknown state {self.state!r}")
        if not self.purl.startswith("pkg:"):
            raise ValueError(f"{self.vulnerability_id}: a VEX statement needs the package's purl, not {self.purl!r}")


@dataclass(frozen=True)
class VexImage:
    """The product: the image, by digest, with the repository it is known by (host/path), if any."""

    digest: str
    repository_url: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def purl(self) -> str:
        """`pkg:oci/app@sha256%3A…?repository_url=host/team/app`, as the oci purl type prescribes."""
        name = self.repository_url.rsplit("/", 1)[-1].lower() if self.repository_url else "image"
        qualifiers = {"repository_url": self.repository_url} if self.repository_url else None
        return PackageURL(type="oci", name=name, version=self.digest, qualifiers=qualifiers).to_string()


def _iso(when: datetime) -> str:
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _unique(entries: Sequence[VexEntry]) -> list[VexEntry]:
    """One entry per (vulnerability, purl), the newest; in a stable order."""
    kept: dict[tuple[str, str], VexEntry] = {}
    for entry in entries:
        key = (entry.vulnerability_id, entry.purl)
        if key not in kept or entry.timestamp > kept[key].timestamp:
            kept[key] = entry
    return [kept[k] for k in sorted(kept)]


def _document_id(image: VexImage, entries: list[VexEntry], fmt: str) -> uuid.UUID:
    """The same decisions give the same id: a name-based UUID over what the document says."""
    text = json.dumps(
        [fmt, image.digest, [(e.vulnerability_id, e.purl, e.state, e.justification, e.reason,
                              e.expires.isoformat() if e.expires else "", _iso(e.timestamp)) for e in entries]],
    )  # fmt: skip
    return uuid.uuid5(uuid.NAMESPACE_URL, "vigil-vex:" + text)


def _note(entry: VexEntry) -> str:
    by = f" ({entry.author})" if entry.author else ""
    return f"{entry.reason}{by}"


def _openvex_statement(entry: VexEntry, product: dict[str, Any]) -> dict[str, Any]:
    vulnerability: dict[str, Any] = {"name": entry.vulnerability_id}
    aliases = [a for a in dict.fromkeys(entry.aliases) if a != entry.vulnerability_id]
    if aliases:
        vulnerability["aliases"] = aliases
    statement: dict[str, Any] = {
        "vulnerability": vulnerability,
        "timestamp": _iso(entry.timestamp),
        "products": [product],
    }
    state = entry.state
    # Justification and impact_statement are alternatives in the spec's older schema (oneOf);
    # the person's reason travels as status_notes, which both versions allow.
    if state in ("not_affected", "false_positive"):
        statement["status"] = "not_affected"
        statement["justification"] = entry.justification or "vulnerable_code_not_present"
        prefix = "False positive: " if state == "false_positive" else ""
        statement["status_notes"] = prefix + _note(entry)
    elif state == "risk_accepted":
        statement["status"] = "affected"
        statement["action_statement"] = f"Risk accepted until {entry.expires}: {_note(entry)}"
    elif state == "affected":
        statement["status"] = "affected"
        statement["action_statement"] = _note(entry)
    else:
        statement["status"] = state
        statement["status_notes"] = _note(entry)
    return statement


def to_openvex(image: VexImage, entries: Sequence[VexEntry], *, author: str, when: datetime) -> str:
    """An OpenVEX 0.2 document: one statement per decided (vulnerability, package) of the image."""
    unique = _unique(entries)
    image_purl = image.purl
    statements = []
    for entry in unique:
        product = {
            "@id": image_purl,
            "identifiers": {"purl": image_purl},
            "subcomponents": [{"@id": entry.purl, "identifiers": {"purl": entry.purl}}],
        }
        statements.append(_openvex_statement(entry, product))
    doc = {
        "@context": OPENVEX_CONTEXT,
        "@id": f"urn:uuid:{_document_id(image, unique, 'openvex')}",
        "author": author,
        "role": "Document Creator",
        "timestamp": _iso(when),
        "version": 1,
        "tooling": f"{sbom.TOOL_NAME} {sbom.TOOL_VERSION}",
        "statements": statements,
    }
    return json.dumps(doc, indent=2)


def _cdx_analysis(entry: VexEntry) -> VulnerabilityAnalysis:
    justification = CYCLONEDX_JUSTIFICATION.get(entry.justification, "") if entry.state == "not_affected" else ""
    responses = [ImpactAnalysisResponse.WILL_NOT_FIX] if entry.state == "risk_accepted" else None
    detail = _note(entry)
    if entry.state == "risk_accepted":
        detail = f"Risk accepted until {entry.expires}: {detail}"
    return VulnerabilityAnalysis(
        state=_CYCLONEDX_STATE[entry.state],
        justification=ImpactAnalysisJustification(justification) if justification else None,
        responses=responses,
        detail=detail,
        last_updated=entry.timestamp,
    )


def to_cyclonedx_vex(image: VexImage, entries: Sequence[VexEntry], *, author: str, when: datetime) -> str:
    """A CycloneDX 1.6 VEX: the image as metadata.component, the packages named, an analysis each."""
    unique = _unique(entries)
    bom = Bom(serial_number=_document_id(image, unique, "cyclonedx"))
    bom.metadata.timestamp = when if when.tzinfo else when.replace(tzinfo=UTC)
    container = Component(
        type=ComponentType.CONTAINER,
        name=image.repository_url or image.digest,
        version=image.digest,
        bom_ref=image.purl,
        purl=PackageURL.from_string(image.purl),
    )
    bom.metadata.component = container
    bom.metadata.properties.add(Property(name="vigil:vex:author", value=author))
    packages: dict[str, Component] = {}
    for entry in unique:
        if entry.purl not in packages:
            packages[entry.purl] = Component(
                type=ComponentType.LIBRARY,
                name=entry.name,
                version=entry.version or None,
                bom_ref=entry.purl,
                purl=PackageURL.from_string(entry.purl),
            )
    bom.components.update(packages.values())
    bom.register_dependency(container, list(packages.values()))
    for number, entry in enumerate(unique, start=1):
        status = (
            ImpactAnalysisAffectedStatus.UNAFFECTED
            if entry.state in ("not_affected", "false_positive", "fixed")
            else ImpactAnalysisAffectedStatus.AFFECTED
        )
        versions = [BomTargetVersionRange(version=entry.version, status=status)] if entry.version else []
        bom.vulnerabilities.add(
            Vulnerability(
                bom_ref=f"vex-{number}",
                id=entry.vulnerability_id,
                source=_source(entry.vulnerability_id),
                references=[
                    VulnerabilityReference(id=a, source=_source(a))
                    for a in dict.fromkeys(entry.aliases)
                    if a != entry.vulnerability_id
                ],
                analysis=_cdx_analysis(entry),
                affects=[BomTarget(ref=entry.purl, versions=versions)],
            )
        )
    return JsonV1Dot6(bom).output_as_string(indent=2)


def _source(vuln_id: str) -> VulnerabilitySource:
    url = advisory_url(vuln_id)
    name = "NVD" if "nvd.nist.gov" in url else "GitHub" if "github.com" in url else "OSV"
    return VulnerabilitySource(name=name, url=XsUri(url))
