"""The CI gate's policy: what an ignore file or a VEX document sets aside, and what fails.

A suppressed finding is still reported, apart and with its reason; only the
open ones can fail the gate.

`.vigilignore` (YAML). The documented shape is a mapping with an `ignore`
list; a bare list of entries is accepted too::

    ignore:
      - id: CVE-2023-45853          # any id of the finding: its CVE, GHSA, ... alias
        package: zlib               # optional: the package name, binary or source
        reason: MiniZip is not built into this zlib
        expires: 2025-06-30         # optional: applies through that day, then is reported as expired
      - id: GHSA-vm8q-m57g-pff3
        purl: pkg:pypi/django@4.2.10  # optional: type/namespace/name, and the version when given
        reason: Truncator is not used with user input

`--vex FILE`: OpenVEX (v0.2 and the older string forms) or CycloneDX VEX
(a CycloneDX document with `vulnerabilities[].analysis`). Only `not_affected`
(and CycloneDX's `false_positive`) suppresses; `fixed`, `affected`,
`under_investigation`, `resolved`, `exploitable` and `in_triage` do not, since
the scanner still sees a vulnerable version. When several statements speak of
the same finding, the latest (by timestamp, then by order) decides, as the
OpenVEX spec says.

Exit status, decided by the caller (`manage.py scan`):

- 0: the gate passes: `gate()` returned nothing;
- N, as `--exit-code N` says: findings over the threshold;
- 2 (`SCAN_FAILED_EXIT`): the scan itself failed: unreadable image, bad ignore
  or VEX file (`PolicyError`), unreachable database. An `--exit-code` of 2
  would make the two look alike, so the caller should refuse it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from packageurl import PackageURL

from scans.engine.findings import SEVERITIES, Finding, Report, Suppression
from scans.engine.models import ImageMeta, Package

SCAN_FAILED_EXIT = 2
DEFAULT_GATE_SEVERITIES = frozenset({"HIGH", "CRITICAL"})

OPENVEX_STATUSES = ("not_affected", "affected", "fixed", "under_investigation")
OPENVEX_JUSTIFICATIONS = (
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
)
CYCLONEDX_STATES = ("resolved", "resolved_with_pedigree", "exploitable", "in_triage", "false_positive", "not_affected")
CYCLONEDX_JUSTIFICATIONS = (
    "code_not_present",
    "code_not_reachable",
    "requires_configuration",
    "requires_dependency",
    "requires_environment",
    "protected_by_compiler",
    "protected_at_runtime",
    "protected_at_perimeter",
    "protected_by_mitigating_control",
)
SUPPRESSING_STATES = frozenset({"not_affected", "false_positive"})

_IGNORE_KEYS = frozenset({"id", "package", "purl", "expires", "reason"})
# Ids that name exactly one vulnerability; advisory ids (USN, DSA) bundle several, so
# they are never pulled out of a URL, lest one statement suppress its siblings.
_VULN_ID_IN_URL = re.compile(r"\b(CVE-\d{4}-\d{4,}|GHSA(?:-[23456789cfghjmpqrvwx]{4}){3})\b", re.IGNORECASE)
_VEX_REASON = re.compile(r"^(not_affected|false_positive)(?: \(([a-z_]+)\))?(?:: (.*))?$", re.DOTALL)


class PolicyError(ValueError):
    """An ignore file or VEX document is malformed. The message names the file and the entry."""


@dataclass(frozen=True)
class IgnoreEntry:
    id: str
    reason: str
    package: str = ""
    purl: str = ""
    expires: date | None = None
    source: str = ""  # the file it came from
    number: int = 0  # its position in that file, from 1

    def expired(self, today: date) -> bool:
        return self.expires is not None and today > self.expires

    def describe(self) -> str:
        scope = self.package or self.purl
        return f"{self.id} in {scope}" if scope else self.id

    def matches(self, finding: Finding) -> bool:
        if not _same_id(self.id, finding):
            return False
        if self.package:
            return self.package in (finding.package.name, finding.package.source_name)
        if self.purl:
            return purl_matches(self.purl, finding.package.purl)
        return True


@dataclass(frozen=True)
class VexTarget:
    """What a statement applies to: a package (purl or bom-ref), or packages inside a product (an image)."""

    product: str
    subcomponents: tuple[str, ...] = ()


@dataclass(frozen=True)
class VexStatement:
    ids: frozenset[str]  # upper-cased vulnerability ids the statement names
    targets: tuple[VexTarget, ...]
    status: str  # an OpenVEX status or a CycloneDX analysis state, as the document says
    justification: str = ""
    detail: str = ""  # impact statement / analysis detail
    source: str = ""
    timestamp: datetime | None = None
    number: int = 0

    @property
    def suppresses(self) -> bool:
        return self.status in SUPPRESSING_STATES

    def reason(self) -> str:
        return vex_reason(self.status, self.justification, self.detail)

    def applies_to(self, finding: Finding, image: ImageMeta) -> bool:
        if not any(i.upper() in self.ids for i in finding.all_ids):
            return False
        return any(_target_matches(t, finding.package, image) for t in self.targets)


# --- purls -----------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _parse_purl(text: str) -> PackageURL | None:
    try:
        return PackageURL.from_string(text)
    except ValueError:
        return None


def _norm_name(purl_type: str, name: str) -> str:
    name = name.lower()
    return re.sub(r"[-_.]+", "-", name) if purl_type == "pypi" else name


def purl_matches(pattern: str, purl: str) -> bool:
    """Whether `purl` is the package `pattern` names.

    Type, namespace and name must agree (case-insensitively; PyPI names as
    PEP 503 normalises them), the version only when the pattern has one, and
    each qualifier both carry, except `distro`: producers spell the release
    differently (Ubuntu's VEX says `jammy`, Vigil `ubuntu-22.04`), and a
    distro package's version already names its release.
    """
    want, have = _parse_purl(pattern), _parse_purl(purl)
    if want is None or have is None:
        return False
    if want.type.lower() != have.type.lower():
        return False
    if (want.namespace or "").lower() != (have.namespace or "").lower():
        return False
    if _norm_name(want.type, want.name) != _norm_name(have.type, have.name):
        return False
    if want.version and want.version != have.version:
        return False
    want_q, have_q = _qualifiers(want), _qualifiers(have)
    return all(have_q[key] == value for key, value in want_q.items() if key in have_q and key != "distro")


def _qualifiers(purl: PackageURL) -> dict[str, str]:
    qualifiers = purl.qualifiers
    return dict(qualifiers) if isinstance(qualifiers, dict) else {}


def _same_id(wanted: str, finding: Finding) -> bool:
    wanted = wanted.upper()
    return any(i.upper() == wanted for i in finding.all_ids)


# --- the ignore file --------------------------------------------------------------------------------


def load_ignorefile(path: str | Path) -> list[IgnoreEntry]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the ignore file: {exc}") from exc
    return parse_ignorefile(text, source=str(path))


def parse_ignorefile(text: str, source: str = ".vigilignore") -> list[IgnoreEntry]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from exc
    if doc is None:
        return []
    if isinstance(doc, dict):
        extra = sorted(str(k) for k in doc if k != "ignore")
        if extra:
            raise PolicyError(f"{source}: unknown key(s) {', '.join(extra)}; the file holds an `ignore:` list")
        doc = doc.get("ignore") or []
    if not isinstance(doc, list):
        raise PolicyError(f"{source}: expected an `ignore:` list of entries, found {type(doc).__name__}")
    return [_ignore_entry(item, source, number) for number, item in enumerate(doc, start=1)]


def _ignore_entry(item: object, source: str, number: int) -> IgnoreEntry:
    where = f"{source}: entry {number}"
    if not isinstance(item, dict):
        raise PolicyError(f"{where}: expected a mapping with id and reason, found {item!r}")
    if isinstance(item.get("id"), str) and item["id"].strip():
        where += f" ({item['id'].strip()})"
    unknown = sorted(str(k) for k in item if k not in _IGNORE_KEYS)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_IGNORE_KEYS))}")
    fields = {key: _text_field(item, key, where) for key in ("id", "reason", "package", "purl")}
    for required in ("id", "reason"):
        if not fields[required]:
            raise PolicyError(f"{where}: `{required}` is required")
    if fields["package"] and fields["purl"]:
        raise PolicyError(f"{where}: give `package` or `purl`, not both")
    if fields["purl"] and _parse_purl(fields["purl"]) is None:
        raise PolicyError(f"{where}: `purl` {fields['purl']!r} is not a valid package URL")
    return IgnoreEntry(**fields, expires=_expiry(item.get("expires"), where), source=source, number=number)


def _text_field(item: dict[Any, Any], key: str, where: str) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PolicyError(f"{where}: `{key}` must be text, not {value!r}")
    return value.strip()


def _expiry(value: object, where: str) -> date | None:
    if value is None:
        return None
    # YAML reads an unquoted 2025-06-30 as a date and `2025-06-30 10:00` as a datetime.
    if isinstance(value, datetime):
        raise PolicyError(f"{where}: `expires` must be a date (YYYY-MM-DD), not a time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise PolicyError(f"{where}: `expires` must be a date (YYYY-MM-DD), not {value!r}")


# --- VEX ----------------------------------------------------------------------------------------------


def load_vex(path: str | Path) -> list[VexStatement]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the VEX document: {exc}") from exc
    return parse_vex(text, source=str(path))


def parse_vex(text: str, source: str = "vex") -> list[VexStatement]:
    """OpenVEX or CycloneDX VEX, told apart by their own markers."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise PolicyError(f"{source}: a VEX document is a JSON object")
    if "openvex" in str(doc.get("@context", "")) or "statements" in doc:
        return _parse_openvex(doc, source)
    if doc.get("bomFormat") == "CycloneDX":
        return _parse_cyclonedx_vex(doc, source)
    if "document" in doc and "vulnerabilities" in doc:
        raise PolicyError(f"{source}: CSAF VEX is not supported; give OpenVEX or CycloneDX VEX")
    raise PolicyError(f"{source}: neither OpenVEX (@context, statements) nor CycloneDX VEX (bomFormat)")


def _parse_openvex(doc: dict[str, Any], source: str) -> list[VexStatement]:
    statements = doc.get("statements")
    if not isinstance(statements, list):
        raise PolicyError(f"{source}: OpenVEX document without a statements list")
    default_time = _timestamp(doc.get("timestamp"), f"{source}: document")
    return [_openvex_statement(st, source, n, default_time) for n, st in enumerate(statements, start=1)]


def _openvex_statement(st: object, source: str, number: int, default_time: datetime | None) -> VexStatement:
    where = f"{source}: statement {number}"
    if not isinstance(st, dict):
        raise PolicyError(f"{where}: expected an object")
    ids = _openvex_ids(st.get("vulnerability"), where)
    status = st.get("status")
    if status not in OPENVEX_STATUSES:
        raise PolicyError(f"{where}: status {status!r} is not one of {', '.join(OPENVEX_STATUSES)}")
    justification = st.get("justification") or ""
    if justification and justification not in OPENVEX_JUSTIFICATIONS:
        raise PolicyError(f"{where}: justification {justification!r} is not one of {', '.join(OPENVEX_JUSTIFICATIONS)}")
    detail = st.get("impact_statement") or ""
    if status == "not_affected" and not (justification or detail):
        raise PolicyError(f"{where}: not_affected needs a justification or an impact_statement")
    # v0.0.x put subcomponents on the statement, v0.2 on each product.
    shared_subs = tuple(_openvex_ref(s, where) for s in _list(st.get("subcomponents"), where, "subcomponents"))
    targets = tuple(_openvex_target(p, shared_subs, where) for p in _list(st.get("products"), where, "products"))
    if not targets:
        raise PolicyError(f"{where}: no products")
    return VexStatement(
        ids=ids,
        targets=targets,
        status=status,
        justification=justification,
        detail=str(detail),
        source=source,
        timestamp=_timestamp(st.get("timestamp") or st.get("last_updated"), where) or default_time,
        number=number,
    )


def _openvex_ids(vulnerability: object, where: str) -> frozenset[str]:
    if isinstance(vulnerability, str):
        names: list[object] = [vulnerability]
    elif isinstance(vulnerability, dict):
        aliases = _list(vulnerability.get("aliases"), where, "vulnerability.aliases")
        names = [vulnerability.get("name"), vulnerability.get("@id"), *aliases]
    else:
        raise PolicyError(f"{where}: no vulnerability")
    ids = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            continue
        ids.add(name.strip().upper())
        if "://" in name:
            ids.update(m.upper() for m in _VULN_ID_IN_URL.findall(name))
    if not ids:
        raise PolicyError(f"{where}: the vulnerability has no name")
    return frozenset(ids)


def _openvex_ref(component: object, where: str) -> str:
    """A component's purl (identifiers.purl, else @id), or its bare string form (OpenVEX v0.0.x)."""
    if isinstance(component, dict):
        identifiers = _mapping(component.get("identifiers"), where, "identifiers")
        component = identifiers.get("purl") or component.get("@id")
    if not isinstance(component, str) or not component.strip():
        raise PolicyError(f"{where}: a product or subcomponent has neither @id nor identifiers.purl")
    return component.strip()


def _openvex_target(product: object, shared_subs: tuple[str, ...], where: str) -> VexTarget:
    subs = shared_subs
    if isinstance(product, dict):
        subs += tuple(_openvex_ref(s, where) for s in _list(product.get("subcomponents"), where, "subcomponents"))
    return VexTarget(product=_openvex_ref(product, where), subcomponents=subs)


def _list(value: object, where: str, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyError(f"{where}: {what} must be a list")
    return value


def _mapping(value: object, where: str, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: {what} must be an object")
    return value


def _parse_cyclonedx_vex(doc: dict[str, Any], source: str) -> list[VexStatement]:
    vulnerabilities = doc.get("vulnerabilities")
    if not isinstance(vulnerabilities, list):
        raise PolicyError(f"{source}: CycloneDX document without vulnerabilities: not a VEX")
    purls = _bom_ref_purls(doc, source)
    metadata = _mapping(doc.get("metadata"), source, "metadata")
    default_time = _timestamp(metadata.get("timestamp"), f"{source}: metadata")
    statements = []
    for number, vuln in enumerate(vulnerabilities, start=1):
        statement = _cyclonedx_statement(vuln, purls, source, number, default_time)
        if statement is not None:
            statements.append(statement)
    return statements


def _cyclonedx_statement(
    vuln: object, purls: dict[str, str], source: str, number: int, default_time: datetime | None
) -> VexStatement | None:
    where = f"{source}: vulnerability {number}"
    if not isinstance(vuln, dict) or not isinstance(vuln.get("id"), str) or not vuln["id"].strip():
        raise PolicyError(f"{where}: no id")
    where += f" ({vuln['id']})"
    analysis = vuln.get("analysis")
    if not analysis:
        return None  # a plain vulnerability listing makes no claim
    if not isinstance(analysis, dict):
        raise PolicyError(f"{where}: analysis must be an object")
    state, justification = analysis.get("state"), analysis.get("justification") or ""
    if state not in CYCLONEDX_STATES:
        raise PolicyError(f"{where}: analysis.state {state!r} is not one of {', '.join(CYCLONEDX_STATES)}")
    if justification and justification not in CYCLONEDX_JUSTIFICATIONS:
        raise PolicyError(f"{where}: justification {justification!r} is not one of the CycloneDX justifications")
    refs = [a.get("ref") for a in _list(vuln.get("affects"), where, "affects") if isinstance(a, dict)]
    targets = tuple(VexTarget(product=_resolve_bom_ref(r, purls)) for r in refs if isinstance(r, str) and r)
    if not targets:
        raise PolicyError(f"{where}: affects names no component")
    aliases = [r.get("id") for r in _list(vuln.get("references"), where, "references") if isinstance(r, dict)]
    ids = frozenset(i.strip().upper() for i in [vuln["id"], *aliases] if isinstance(i, str) and i.strip())
    when = analysis.get("lastUpdated") or analysis.get("firstIssued") or vuln.get("updated")
    return VexStatement(
        ids=ids,
        targets=targets,
        status=state,
        justification=justification,
        detail=str(analysis.get("detail") or ""),
        source=source,
        timestamp=_timestamp(when, where) or default_time,
        number=number,
    )


def _bom_ref_purls(doc: dict[str, Any], source: str) -> dict[str, str]:
    """bom-ref -> purl of every component the document itself describes, nested ones included."""
    found: dict[str, str] = {}
    stack = list(_list(doc.get("components"), source, "components"))
    stack.append(_mapping(doc.get("metadata"), source, "metadata").get("component"))
    while stack:
        component = stack.pop()
        if not isinstance(component, dict):
            continue
        ref, purl = component.get("bom-ref"), component.get("purl")
        if isinstance(ref, str) and isinstance(purl, str):
            found[ref] = purl
        stack.extend(_list(component.get("components"), source, "components"))
    return found


def _resolve_bom_ref(ref: str, purls: dict[str, str]) -> str:
    # A BOM-Link (urn:cdx:serial/version#bom-ref) points into another BOM, such as Vigil's own SBOM.
    if ref.startswith("urn:cdx:") and "#" in ref:
        ref = unquote(ref.split("#", 1)[1])
    return purls.get(ref, ref)


def _timestamp(value: object, where: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise PolicyError(f"{where}: timestamp {value!r} is not ISO 8601") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _target_matches(target: VexTarget, package: Package, image: ImageMeta) -> bool:
    if target.subcomponents:
        return _is_image(target.product, image) and any(_is_package(s, package) for s in target.subcomponents)
    return _is_package(target.product, package)


def _is_package(ref: str, package: Package) -> bool:
    if ref.startswith("pkg:"):
        return bool(package.purl) and purl_matches(ref, package.purl)
    # Vigil's SBOM names a component by its purl, or type:name@version without one.
    return ref in (package.purl, f"{package.type}:{package.name}@{package.version}")


def _is_image(ref: str, image: ImageMeta) -> bool:
    """Whether an OpenVEX product names the scanned image: by digest, reference, tag or oci purl."""
    digests = {d for d in (image.manifest_digest, image.index_digest, image.config_digest) if d}
    if ref in digests or ref in {image.reference, *image.repo_tags} - {""}:
        return True
    purl = _parse_purl(ref) if ref.startswith("pkg:") else None
    if purl is None or purl.type not in ("oci", "docker"):
        return False
    if purl.version:
        return purl.version in digests
    names = {_repository_name(text) for text in (image.reference, *image.repo_tags) if text}
    return purl.name in names


def _repository_name(reference: str) -> str:
    """`registry:5000/team/app:1.2@sha256:…` -> `app`: the last path part, without tag or digest."""
    last = reference.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


# --- suppression reasons ------------------------------------------------------------------------------


def vex_reason(status: str, justification: str = "", detail: str = "") -> str:
    """`not_affected (vulnerable_code_not_present): the impact statement`; `vex_analysis` reads it back."""
    reason = f"{status} ({justification})" if justification else status
    return f"{reason}: {detail}" if detail else reason


def vex_analysis(suppression: Suppression) -> tuple[str, str, str] | None:
    """(state, justification, detail) of a VEX suppression, for writers that carry them apart."""
    if suppression.by != "vex":
        return None
    match = _VEX_REASON.match(suppression.reason)
    if match is None:
        return None
    return match.group(1), match.group(2) or "", match.group(3) or ""


# --- applying the policy and the gate ------------------------------------------------------------------


def apply_policy(
    report: Report,
    *,
    ignore: Sequence[IgnoreEntry] = (),
    vex: Sequence[VexStatement] = (),
    today: date,
) -> Report:
    """A new report whose findings carry their suppressions; expired ignore entries become notes.

    VEX is consulted first, as the supplier's statement about the product; a
    finding that already has a suppression keeps it.
    """
    notes = list(report.notes)
    active = []
    for entry in ignore:
        if entry.expired(today):
            notes.append(
                f"{entry.source}: ignore entry {entry.number} ({entry.describe()}) expired on "
                f"{entry.expires}; it no longer applies"
            )
        else:
            active.append(entry)
    by_id: dict[str, list[tuple[int, VexStatement]]] = {}
    for position, statement in enumerate(vex):
        for vuln_id in statement.ids:
            by_id.setdefault(vuln_id, []).append((position, statement))
    image = report.analysis.image
    findings = [_suppressed(f, image, active, by_id) for f in report.findings]
    return replace(report, findings=findings, notes=notes)


def _suppressed(
    finding: Finding, image: ImageMeta, ignore: list[IgnoreEntry], vex: dict[str, list[tuple[int, VexStatement]]]
) -> Finding:
    if finding.suppression is not None:
        return finding
    statement = _deciding_statement(finding, image, vex)
    if statement is not None and statement.suppresses:
        return replace(finding, suppression=Suppression(by="vex", reason=statement.reason(), source=statement.source))
    for entry in ignore:
        if entry.matches(finding):
            suppression = Suppression(by="ignorefile", reason=entry.reason, source=entry.source, expires=entry.expires)
            return replace(finding, suppression=suppression)
    return finding


_OLDEST = datetime.min.replace(tzinfo=UTC)


def _deciding_statement(
    finding: Finding, image: ImageMeta, vex: dict[str, list[tuple[int, VexStatement]]]
) -> VexStatement | None:
    """The latest applicable statement: by timestamp, then by its place in the files given."""
    candidates = {pos: st for vuln_id in finding.all_ids for pos, st in vex.get(vuln_id.upper(), ())}
    applicable = [(st.timestamp or _OLDEST, pos, st) for pos, st in candidates.items() if st.applies_to(finding, image)]
    return max(applicable, key=lambda item: item[:2])[2] if applicable else None


def parse_severities(text: str) -> frozenset[str]:
    """`HIGH,CRITICAL` -> the set; an unknown name is an error naming it."""
    wanted = frozenset(s.strip().upper() for s in text.split(",") if s.strip())
    unknown = sorted(wanted - set(SEVERITIES))
    if unknown:
        raise ValueError(f"unknown severity {', '.join(unknown)}; choose from {', '.join(SEVERITIES)}")
    return wanted


def gate(
    report: Report, severities: Iterable[str] = DEFAULT_GATE_SEVERITIES, *, ignore_unfixed: bool = False
) -> list[Finding]:
    """The open findings that fail the gate, in report order; empty means the gate passes.

    `severities` are those that fail it; an empty collection sets no severity
    filter (every open finding fails), never "nothing fails". With
    `ignore_unfixed`, findings without a fixed version do not fail it.
    """
    wanted = {s.upper() for s in severities} or set(SEVERITIES)
    unknown = sorted(wanted - set(SEVERITIES))
    if unknown:
        raise ValueError(f"unknown severity {', '.join(unknown)}; choose from {', '.join(SEVERITIES)}")
    return [f for f in report.open_findings if _severity(f) in wanted and (f.fixable or not ignore_unfixed)]


def _severity(finding: Finding) -> str:
    return finding.severity if finding.severity in SEVERITIES else "UNKNOWN"
