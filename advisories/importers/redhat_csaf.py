"""Red Hat CSAF VEX: one document per CVE (security.access.redhat.com/data/csaf/v2/vex/YYYY/cve-*.json).

A VEX document names products in `product_tree` and says, per product id, what
the CVE does to it (`vulnerabilities[].product_status`). A product id joins a
platform and a component through `relationships`:

    "AppStream-9.3.0.Z.MAIN:curl-0:7.76.1-26.el9_3.2.src"
      relates_to  AppStream-9.3.0.Z.MAIN   cpe:/a:redhat:enterprise_linux:9::appstream
      component   curl-0:7.76.1-26.el9_3.2.src   pkg:rpm/redhat/curl@7.76.1-26.el9_3.2?arch=src

Modular packages have one more step: platform <- module stream
("nodejs:18:8080020230425095526:63b34585", purl type rpmmod) <- package, or
newer files put the stream in the package purl (`rpmmod=nodejs:18:…`).

Mapping:

- Advisory id: the CVE (vulnerabilities[].cve). The RHSA/RHBA/RHEA ids of
  its vendor_fix remediations are `related`, not aliases: an erratum fixes
  several CVEs, so it is not another name of this one (OSV's distinction);
  their URLs are among the references. Summary: the "summary" note (else the
  title); details: the "description" note, then the Red Hat statement.
  CVSS vectors -> cvss_severity(source "redhat"); the aggregate severity
  ("Important") -> a vendor severity.
- Release: the major version in the platform's CPE, RHEL itself only
  (`cpe:/[ao]:redhat:enterprise_linux:N…`: BaseOS, AppStream, CRB and the
  minor-release main streams that share that CPE). Layered products
  (Satellite, JBoss Core Services, OpenShift, Storage …) and EUS/AUS/TUS/E4S
  streams (`rhel_eus:9.0` …) are left out: their rows would share names
  with RHEL's and disagree on versions, and the contract has no field to keep
  them apart.
- Component: the purl when the tree has one (name, version, `epoch` and
  `rpmmod` qualifiers), else the id read as NEVRA
  "name-[epoch:]version-release.arch", "module:stream/name" or a bare name.
  The name is the rpm's own, source or binary, as Red Hat lists it (unfixed
  components are listed by source name, fixed ones by every binary and the
  .src rpm). -debuginfo and -debugsource packages are dropped.
- One AffectedPackage per (release, name, module stream), merged over the
  platforms of that release:
  - fixed (or first_fixed): status fixed, one Range(introduced "0", fixed
    EVR) per fixed EVR; a version is affected when any range holds it, so
    when z-streams differ (9.2 "-23.el9_2.4", 9.3 "-26.el9_3.2") the highest
    decides. This errs towards reporting for hosts pinned to an older minor
    release. A fix wins over any other state of the same row.
  - known_affected (and first/last_affected), under_investigation: affected;
    will_not_fix when a remediation is no_fix_planned (or says "Will not fix"
    / "Out of support scope"); deferred when it says "Fix deferred". When the
    platforms disagree, affected wins over deferred over will_not_fix.
  - known_not_affected: not_affected, only when no platform says more.
  - The row's severity is the highest threat impact of its products, else the
    aggregate severity.
- EVR: "[epoch:]version-release", the epoch written only when it is not 0
  ("7.76.1-26.el9_3.2", "1:2.4.24-2.el8jbcs"), as rpm itself prints an EVR and
  as the OSV records of Red Hat rebuilds (AlmaLinux, Rocky) write it. rpm
  reads a missing epoch as 0, so the two spellings compare equal.
- `raw` keeps the document's title, tracking and aggregate severity and the
  vulnerability object, not the product tree (most of the file's size).

Not handled: rejected/withdrawn CVEs (Red Hat marks them only in prose), the
`recommended` status, per-product CVSS differences (every distinct vector is
kept for the advisory), and products outside RHEL (see above).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from packageurl import PackageURL

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
from advisories.importers.documents import FeedFormatError, read_bounded
from advisories.importers.severity import cvss_severity, vendor_severity

SOURCE = "redhat-csaf"
DEFAULT_URL = "https://security.access.redhat.com/data/csaf/v2/vex/"
IMPACTS = ("Low", "Moderate", "Important", "Critical")  # lowest first

_RHEL_CPE = re.compile(r"cpe:(?:/[ao]|2\.3:[ao]):redhat:enterprise_linux:(\d+)(?=[:.]|$)")
_NEVRA = re.compile(
    r"(?P<name>.+)-(?:(?P<epoch>\d+):)?(?P<version>[^-:]+)-(?P<release>[^-:]+)\.(?P<arch>[A-Za-z0-9_]+)"
)
_ERRATUM = re.compile(r"\bRH[SBE]A-\d{4}:\d{4,}\b")
_DEBUG = re.compile(r"-debug(?:info|source)(?:-|$)")
_VEX_NAME = re.compile(r"cve-\d{4}-\d{4,}.*\.json", re.IGNORECASE)
_FIXED = ("fixed", "first_fixed")
_AFFECTED = ("known_affected", "first_affected", "last_affected", "under_investigation")
_NOT_AFFECTED = ("known_not_affected",)
# When platforms of one release disagree on an unfixed row, the first that any of them says wins.
_UNFIXED_ORDER = (Status.AFFECTED, Status.DEFERRED, Status.WILL_NOT_FIX, Status.NOT_AFFECTED)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _arr(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


@dataclass(frozen=True)
class Component:
    name: str
    evr: str = ""  # "[epoch:]version-release", epoch 0 left out; empty for an unversioned component
    arch: str = ""
    module: str = ""  # "nodejs:18"


def evr(epoch: str, version_release: str) -> str:
    """The EVR as written here: the epoch only when it is not 0."""
    epoch = epoch.strip()
    return f"{epoch}:{version_release}" if epoch and epoch.lstrip("0") else version_release


def _stream(module_id: str) -> str:
    """The stream of a module id: nodejs:18:8080020230425095526:63b34585 -> nodejs:18."""
    parts = module_id.split(":")
    return ":".join(parts[:2]) if len(parts) >= 2 and all(parts[:2]) else ""


def component_from_purl(purl: str) -> Component | None:
    """A pkg:rpm purl as a Component; None for other purls (rpmmod, oci …)."""
    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return None
    if parsed.type != "rpm" or not parsed.name:
        return None
    qualifiers = parsed.qualifiers if isinstance(parsed.qualifiers, dict) else {}
    version = evr(str(qualifiers.get("epoch", "")), parsed.version) if parsed.version else ""
    return Component(parsed.name, version, str(qualifiers.get("arch", "")), _stream(qualifiers.get("rpmmod", "")))


def component_from_id(ref: str) -> Component:
    """A component id read as NEVRA ("curl-0:7.61.1-30.el8_8.3.x86_64"), "module:stream/name" or a bare name."""
    match = _NEVRA.fullmatch(ref)
    if match:
        version = evr(match["epoch"] or "", f"{match['version']}-{match['release']}")
        return Component(match["name"], version, match["arch"])
    module, _, name = ref.rpartition("/")
    return Component(name, module=_stream(module) if ":" in module else "")


@dataclass(frozen=True)
class _Relationship:
    component: str  # product_reference
    parent: str  # relates_to_product_reference


@dataclass
class ProductTree:
    """The parts of a product_tree that name platforms and packages."""

    cpes: dict[str, str] = field(default_factory=dict)  # product id -> cpe
    purls: dict[str, str] = field(default_factory=dict)  # product id -> purl
    relationships: dict[str, _Relationship] = field(default_factory=dict)  # full product id -> parts

    @classmethod
    def read(cls, tree: Any) -> ProductTree:
        result = cls()
        stack = list(_arr(_obj(tree).get("branches"))) + [
            {"product": p} for p in _arr(_obj(tree).get("full_product_names"))
        ]
        while stack:  # a loop, not recursion: the nesting depth is the publisher's to choose
            branch = _obj(stack.pop())
            stack.extend(_arr(branch.get("branches")))
            product = _obj(branch.get("product"))
            helper = _obj(product.get("product_identification_helper"))
            product_id = _str(product.get("product_id"))
            if product_id and _str(helper.get("cpe")):
                result.cpes.setdefault(product_id, _str(helper.get("cpe")))
            if product_id and _str(helper.get("purl")):
                result.purls.setdefault(product_id, _str(helper.get("purl")))
        for relationship in map(_obj, _arr(_obj(tree).get("relationships"))):
            full_id = _str(_obj(relationship.get("full_product_name")).get("product_id"))
            component, parent = (
                _str(relationship.get("product_reference")),
                _str(relationship.get("relates_to_product_reference")),
            )
            if full_id and component and parent:
                result.relationships[full_id] = _Relationship(component, parent)
        return result

    def component(self, ref: str) -> Component:
        purl = self.purls.get(ref)
        found = component_from_purl(purl) if purl else None
        return found or component_from_id(ref)

    def module_of(self, ref: str) -> str:
        purl = self.purls.get(ref, "")
        if purl.startswith("pkg:rpmmod/"):
            try:
                parsed = PackageURL.from_string(purl)
            except ValueError:
                return ""
            return _stream(f"{parsed.name}:{parsed.version or ''}")
        return _stream(ref)

    def resolve(self, product_id: str) -> tuple[str, Component] | None:
        """(RHEL major release, component) of a product id; None when it is not a RHEL package."""
        relationship = self.relationships.get(product_id)
        if relationship is None:
            return None
        component = self.component(relationship.component)
        parent = relationship.parent
        for _ in range(4):  # a module stream sits between a platform and its packages; no cycles
            inner = self.relationships.get(parent)
            if inner is None:
                break
            component = component if component.module else replace(component, module=self.module_of(inner.component))
            parent = inner.parent
        match = _RHEL_CPE.match(self.cpes.get(parent, ""))
        if match is None or not component.name or _DEBUG.search(component.name):
            return None
        return match.group(1), component


@dataclass
class _Row:
    fixed: set[str] = field(default_factory=set)
    states: set[str] = field(default_factory=set)
    impacts: set[str] = field(default_factory=set)

    def affected(self, release: str, name: str, module: str, fallback_impact: str) -> AffectedPackage:
        ranges = tuple(Range("ECOSYSTEM", (("introduced", "0"), ("fixed", v))) for v in sorted(self.fixed))
        status = Status.FIXED if ranges else next(s for s in _UNFIXED_ORDER if s in self.states)
        impact = _highest(self.impacts) or fallback_impact
        return AffectedPackage(
            "Red Hat", name, "rhel", release, ranges, status=status, severity=impact, module=module,
            purl=f"pkg:rpm/redhat/{name}",
        )  # fmt: skip


def _impact(text: str) -> str:
    return next((impact for impact in IMPACTS if impact.lower() == text.strip().lower()), "")


def _highest(impacts: Iterable[str]) -> str:
    ranked = [IMPACTS.index(i) for i in impacts if i in IMPACTS]
    return IMPACTS[max(ranked)] if ranked else ""


def _by_product(entries: Any, value: Callable[[dict[str, Any]], Any]) -> dict[str, list[Any]]:
    """{product id: [value(entry) …]} over remediations or threats."""
    found: dict[str, list[Any]] = defaultdict(list)
    for entry in map(_obj, _arr(entries)):
        for product_id in _arr(entry.get("product_ids")):
            if isinstance(product_id, str):
                found[product_id].append(value(entry))
    return found


def unfixed_status(remediations: Iterable[tuple[str, str]]) -> str:
    """The Status of a known_affected product from its (category, details) remediations."""
    status = Status.AFFECTED
    for category, details in remediations:
        said = details.lower()
        if category == "no_fix_planned" or "will not fix" in said or "out of support scope" in said:
            return Status.WILL_NOT_FIX
        if "deferred" in said:
            status = Status.DEFERRED
    return status


def _rows(vulnerability: dict[str, Any], tree: ProductTree) -> tuple[dict[tuple[str, str, str], _Row], list[str]]:
    """Rows keyed by (release, name, module), and the product ids that were fixed without a version."""
    remediations = _by_product(
        vulnerability.get("remediations"), lambda r: (_str(r.get("category")), _str(r.get("details")))
    )
    impacts = _by_product(
        vulnerability.get("threats"), lambda t: _impact(_str(t.get("details"))) if t.get("category") == "impact" else ""
    )
    rows: dict[tuple[str, str, str], _Row] = defaultdict(_Row)
    unversioned: list[str] = []
    for category, product_ids in _obj(vulnerability.get("product_status")).items():
        if category not in (*_FIXED, *_AFFECTED, *_NOT_AFFECTED):
            continue
        for product_id in filter(None, map(_str, _arr(product_ids))):
            resolved = tree.resolve(product_id)
            if resolved is None:
                continue
            release, component = resolved
            row = rows[(release, component.name, component.module)]
            row.impacts.update(impacts.get(product_id, ()))
            if category in _NOT_AFFECTED:
                row.states.add(Status.NOT_AFFECTED)
            elif category in _AFFECTED:
                row.states.add(unfixed_status(remediations.get(product_id, ())))
            elif component.evr:
                row.fixed.add(component.evr)
            else:
                unversioned.append(product_id)
    return {key: row for key, row in rows.items() if row.fixed or row.states}, unversioned


def _notes(vulnerability: dict[str, Any]) -> tuple[str, str]:
    notes = [_obj(n) for n in _arr(vulnerability.get("notes"))]
    summary = next((_str(n.get("text")) for n in notes if n.get("category") == "summary"), "")
    description = next((_str(n.get("text")) for n in notes if n.get("category") == "description"), "")
    statement = next((_str(n.get("text")) for n in notes if _str(n.get("title")).lower() == "statement"), "")
    details = f"{description}\n\nStatement: {statement}" if description and statement else description or statement
    return summary, details


def _datetime(value: Any) -> datetime | None:
    try:
        when = datetime.fromisoformat(_str(value))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _severities(vulnerability: dict[str, Any], aggregate: str) -> tuple[SeverityScore, ...]:
    vectors: dict[str, None] = {}
    for score in map(_obj, _arr(vulnerability.get("scores"))):
        for key in ("cvss_v4", "cvss_v3", "cvss_v2"):
            vector = _str(_obj(score.get(key)).get("vectorString"))
            if vector:
                vectors[vector] = None
    scores = [cvss_severity(vector, "redhat") for vector in vectors]
    if aggregate:
        scores.append(vendor_severity(aggregate, "redhat"))
    return tuple(scores)


def _references(document: dict[str, Any], vulnerability: dict[str, Any]) -> tuple[str, ...]:
    urls = [_str(_obj(r).get("url")) for r in _arr(document.get("references")) + _arr(vulnerability.get("references"))]
    urls += [_str(_obj(r).get("url")) for r in _arr(vulnerability.get("remediations"))]
    return tuple(dict.fromkeys(url for url in urls if url))


def _errata(vulnerability: dict[str, Any], vuln_id: str) -> tuple[str, ...]:
    found: set[str] = set()
    for remediation in map(_obj, _arr(vulnerability.get("remediations"))):
        if remediation.get("category") == "vendor_fix":
            found.update(_ERRATUM.findall(f"{_str(remediation.get('url'))} {_str(remediation.get('details'))}"))
    return tuple(sorted(found - {vuln_id}))


def _cwes(vulnerability: dict[str, Any]) -> tuple[str, ...]:
    cwes = [_obj(vulnerability.get("cwe")), *map(_obj, _arr(vulnerability.get("cwes")))]
    return tuple(dict.fromkeys(_str(c.get("id")) for c in cwes if _str(c.get("id"))))


def vulnerability_items(
    document: dict[str, Any], tree: ProductTree, vulnerability: dict[str, Any], vuln_id: str
) -> Iterator[Item]:
    """The advisory of one vulnerability of a VEX document, and a Rejected per fixed product without a version."""
    tracking = _obj(document.get("tracking"))
    aggregate = _impact(_str(_obj(document.get("aggregate_severity")).get("text")))
    rows, unversioned = _rows(vulnerability, tree)
    for product_id in unversioned:
        yield Rejected(f"{vuln_id} {product_id}", "fixed product without a version")
    summary, details = _notes(vulnerability)
    yield AdvisoryRecord(
        id=vuln_id,
        source=SOURCE,
        related=_errata(vulnerability, vuln_id),
        summary=summary or _str(vulnerability.get("title")) or _str(document.get("title")),
        details=details,
        published=_datetime(vulnerability.get("release_date")) or _datetime(tracking.get("initial_release_date")),
        modified=_datetime(tracking.get("current_release_date")),
        references=_references(document, vulnerability),
        cwes=_cwes(vulnerability),
        severities=_severities(vulnerability, aggregate),
        affected=tuple(row.affected(*key, aggregate) for key, row in sorted(rows.items())),
        raw={
            "document": {key: document[key] for key in ("title", "tracking", "aggregate_severity") if key in document},
            "vulnerability": vulnerability,
        },
    )


def _load(document: Document) -> dict[str, Any]:
    data = json.loads(read_bounded(document))
    if not isinstance(data, dict) or not isinstance(data.get("document"), dict):
        raise RecordError("not a CSAF document")
    category = _str(data["document"].get("category"))
    if category != "csaf_vex":
        raise RecordError(f"CSAF category {category!r} is not csaf_vex")
    return data


def parse_vex(document: Document) -> Iterator[Item]:
    """Every advisory of a VEX document: a bad record is a Rejected; DocumentError when the file is not a VEX."""
    try:
        data = _load(document)
    except (FeedFormatError, RecordError, ValueError, RecursionError) as exc:
        raise DocumentError(f"{document.name}: {' '.join(str(exc).split())[:500] or type(exc).__name__}") from None
    meta, tree = data["document"], ProductTree.read(data.get("product_tree"))
    vulnerabilities = _arr(data.get("vulnerabilities"))
    tracking_id = _str(_obj(meta.get("tracking")).get("id"))
    if not vulnerabilities:
        yield Rejected(tracking_id or document.name, "a VEX document without vulnerabilities")
    for index, vulnerability in enumerate(map(_obj, vulnerabilities)):
        vuln_id = _str(vulnerability.get("cve")) or (tracking_id if len(vulnerabilities) == 1 else "")
        if not vuln_id:
            yield Rejected(f"{document.name} vulnerabilities[{index}]", "a vulnerability without a CVE id")
            continue
        try:
            yield from vulnerability_items(meta, tree, vulnerability, vuln_id)
        except RecordError as exc:
            yield Rejected(vuln_id, str(exc))


class RedHatCsafImporter:
    source = SOURCE
    default_url = DEFAULT_URL

    def accepts(self, name: str) -> bool:
        """VEX files are named after their CVE (cve-2023-38545.json); index.txt, changes.csv are not."""
        return bool(_VEX_NAME.fullmatch(PurePosixPath(name).name))

    def parse(self, document: Document) -> Iterator[Item]:
        return parse_vex(document)
