"""OSV records (https://ossf.github.io/osv-schema/), schema 1.0 to 1.7, as JSON or YAML.

One document is one record: a member of an osv.dev `all.zip`, a file of a
repository tree (PyPA publishes YAML, `PYSEC-*.yaml`), or a single file.

What is strict and what is not:

- Anything the matcher relies on (id, dates, ecosystems, names, ranges,
  versions) must have the schema's shape, or the whole record is Rejected
  with the reason. Half a record would match wrongly, which is worse than
  none.
- Severities and CWE ids only enrich: a vector the `cvss` library cannot
  read is logged and dropped, and the record is kept.
- An `affected` entry whose ecosystem Vigil cannot match (Android, OSS-Fuzz,
  an unknown distro release) is skipped, and the record is still stored even
  if nothing is left: it may be withdrawn, or be useful by its aliases alone.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import yaml
from packageurl import PackageURL

from advisories.importers.base import (
    DISTRO_ECOSYSTEMS,
    ECOSYSTEMS,
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
    normalize_name,
)
from advisories.importers.documents import FeedFormatError, read_bounded
from advisories.importers.severity import cvss_severity, vendor_severity

log = logging.getLogger(__name__)

# The largest published records (kernel CVEs with every Ubuntu or Debian
# kernel version listed) are a few MB; anything far larger is not a record.
MAX_RECORD_BYTES = 32 << 20
RECORD_SUFFIXES = (".json", ".yaml", ".yml")


# -- loading -----------------------------------------------------------------------------------------------------


class _RecordLoader(yaml.CSafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints
    """Safe YAML that yields only what JSON could hold, so the raw record stays storable as JSON.

    Timestamps stay strings (parsed like JSON's below); aliases are refused,
    since OSV records never use them and they let a small file expand into a
    huge tree ("billion laughs").
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node in self.constructed_objects:
            raise yaml.constructor.ConstructorError(None, None, "YAML aliases are not allowed", node.start_mark)
        return super().construct_object(node, deep)

    def construct_yaml_float(self, node: yaml.Node) -> float:
        value = float(super().construct_yaml_float(node))
        if not math.isfinite(value):
            raise yaml.constructor.ConstructorError(None, None, "NaN and infinity are not JSON", node.start_mark)
        return value


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(None, None, f"YAML tag {node.tag} has no JSON form", node.start_mark)


_RecordLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    _RecordLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)
_RecordLoader.add_constructor("tag:yaml.org,2002:float", _RecordLoader.construct_yaml_float)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def load_record(data: bytes, name: str) -> Any:
    """The parsed document: YAML for .yaml/.yml names, else JSON. RecordError when it cannot be read."""
    kind = "YAML" if name.lower().endswith((".yaml", ".yml")) else "JSON"
    try:
        if kind == "YAML":
            return yaml.load(data, Loader=_RecordLoader)  # noqa: S506 - a SafeLoader subclass
        return json.loads(data, parse_constant=_reject_constant)
    except (yaml.YAMLError, ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RecordError(f"not valid {kind} ({_one_line(exc)})") from None
    except RecursionError:
        raise RecordError(f"not valid {kind} (nested too deeply)") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


# -- ecosystems --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    """Where an affected entry applies: an ECOSYSTEMS key, and the distro release for distro ecosystems."""

    ecosystem: str
    distro: str = ""
    release: str = ""


# Rolling distros have no release in OSV, nor a meaningful one in os-release (Wolfi writes a fixed date).
ROLLING = "rolling"
_UBUNTU_VERSION = re.compile(r"\d{2}\.\d{2}")
_MAJOR = re.compile(r"(\d+)(?:\.\d+)*")
_ALPINE = re.compile(r"v?(\d+\.\d+)(?:\.\d+)?|edge")
_SLES = re.compile(r"Linux Enterprise (?:Server|Module for [^:]+) (\d+)(?: SP(\d+))?")


def _debian(rest: str) -> tuple[str, str] | None:
    return ("debian", rest) if rest.isdigit() else None


def _ubuntu(rest: str) -> tuple[str, str] | None:
    # Plain Pro (ESM) entries apply to ordinary images of that release: they are vulnerable until
    # updated from ESM. Other streams (FIPS, Realtime, BlueField) ship their own builds, so their
    # release gets a suffix no image's VERSION_ID has and they never match an ordinary image.
    parts = [p for p in rest.split(":") if p]
    version = next((p for p in parts if _UBUNTU_VERSION.fullmatch(p)), None)
    if version is None:
        return None
    stream = [p.lower() for p in parts if p not in (version, "LTS", "Pro")]
    return "ubuntu", f"{version}:{'-'.join(stream)}" if stream else version


def _alpine(rest: str) -> tuple[str, str] | None:
    match = _ALPINE.fullmatch(rest)
    if match is None:
        return None
    return "alpine", match.group(1) or "edge"


def _major(distro: str) -> Callable[[str], tuple[str, str] | None]:
    def parse(rest: str) -> tuple[str, str] | None:
        match = _MAJOR.fullmatch(rest)
        return (distro, match.group(1)) if match else None

    return parse


def _rolling(distro: str) -> Callable[[str], tuple[str, str] | None]:
    return lambda rest: None if rest else (distro, ROLLING)


def _red_hat(rest: str) -> tuple[str, str] | None:
    # "Red Hat:enterprise_linux:9::appstream", "Red Hat:rhel_eus:8.6::baseos", or plain "Red Hat:9".
    parts = rest.split(":")
    if _MAJOR.fullmatch(parts[0]):
        return _major("rhel")(parts[0])
    if len(parts) < 2 or not _MAJOR.fullmatch(parts[1]):
        return None
    if parts[0] == "enterprise_linux":
        return _major("rhel")(parts[1])
    if parts[0].startswith("rhel_"):  # EUS, AUS, E4S streams: their own builds, like Ubuntu's FIPS
        return "rhel", f"{parts[1]}:{parts[0].removeprefix('rhel_')}"
    return None


def _suse(rest: str) -> tuple[str, str] | None:
    match = _SLES.fullmatch(rest)
    if match is None:
        return None
    major, service_pack = match.groups()
    return "sles", f"{major}.{service_pack}" if service_pack else major


def _opensuse(rest: str) -> tuple[str, str] | None:
    if rest == "Tumbleweed":
        return "opensuse-tumbleweed", ROLLING
    version = rest.removeprefix("Leap ")
    return ("opensuse-leap", version) if version != rest and re.fullmatch(r"\d+\.\d+", version) else None


# ecosystem -> the os-release ID and release an image of it reports, from the text after "Ecosystem:".
_DISTRO_RELEASES: dict[str, Callable[[str], tuple[str, str] | None]] = {
    "Debian": _debian,
    "Ubuntu": _ubuntu,
    "Alpine": _alpine,
    "Wolfi": _rolling("wolfi"),
    "Chainguard": _rolling("chainguard"),
    "Red Hat": _red_hat,
    "Rocky Linux": _major("rocky"),
    "AlmaLinux": _major("almalinux"),
    "Amazon Linux": _major("amzn"),
    "Oracle Linux": _major("ol"),
    "SUSE": _suse,
    "openSUSE": _opensuse,
}
_BY_LOWER_NAME = {name.lower(): name for name in ECOSYSTEMS}  # kubernetes-sigs writes "kubernetes"
_BY_PURL_TYPE = {purl_type: name for name, purl_type in ECOSYSTEMS.items() if name not in DISTRO_ECOSYSTEMS}


def parse_ecosystem(value: str) -> Platform | None:
    """An OSV ecosystem string as a Platform; None for one Vigil cannot match.

    `purl-type:swift` (GHSA's spelling) names an ecosystem by its purl type.
    A registry suffix on a language ecosystem ("Maven:https://maven.google.com")
    is dropped: names are global in those ecosystems.
    """
    base, _, rest = value.partition(":")
    if base == "purl-type":
        name = _BY_PURL_TYPE.get(rest)
        return Platform(name) if name else None
    name = _BY_LOWER_NAME.get(base.strip().lower())
    if name is None:
        return None
    if name not in DISTRO_ECOSYSTEMS:
        return Platform(name)
    found = _DISTRO_RELEASES[name](rest.strip())
    return Platform(name, *found) if found else None


# -- fields ------------------------------------------------------------------------------------------------------


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))?"
)


def parse_timestamp(value: object, field: str) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime.

    OSV times are UTC, so one written without an offset is read as UTC. Go's
    zero time (year 1), which golang/vulndb commits as a placeholder, is None.
    """
    if value is None:
        return None
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise RecordError(f"{field} {value!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, _, sign, offset_hours, offset_minutes = match.groups()[6:]
    tz = UTC
    if sign:
        offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
        tz = timezone(-offset if sign == "-" else offset)
    try:
        when = datetime(year, month, day, hour, minute, second, int((fraction or "0")[:6].ljust(6, "0")), tz)
    except ValueError as exc:
        raise RecordError(f"{field} {value!r} is not a valid time ({exc})") from None
    return None if when.year == 1 else when


def _text(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"{field} is not a string")
    return value


def _objects(value: object, field: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise RecordError(f"{field} is not a list of objects")
    return value


def _object(value: object, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"{field} is not an object")
    return value


def _strings(value: object, field: str) -> tuple[str, ...]:
    """A list of strings, de-duplicated in the order given."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"{field} is not a list of strings")
    return tuple(dict.fromkeys(v.strip() for v in value if v.strip()))


def _references(value: object) -> tuple[str, ...]:
    urls = (_text(ref.get("url"), "references[].url") for ref in _objects(value, "references"))
    return tuple(dict.fromkeys(url for url in urls if url))


_CWE = re.compile(r"CWE-\d+")


def _cwes(database_specific: dict[str, Any]) -> tuple[str, ...]:
    # GHSA writes them here; NVD-style placeholders such as "NVD-CWE-Other" name no weakness.
    ids = _strings(database_specific.get("cwe_ids"), "database_specific.cwe_ids")
    return tuple(cwe for cwe in ids if _CWE.fullmatch(cwe))


# Who rated a record's severities, from its id's prefix; the importer's source otherwise.
_RATERS = {
    "GHSA": "ghsa",
    "UBUNTU": "ubuntu",
    "USN": "ubuntu",
    "LSN": "ubuntu",
    "DSA": "debian",
    "DLA": "debian",
    "DEBIAN": "debian",
    "ALPINE": "alpine",
    "ALSA": "almalinux",
    "RLSA": "rocky",
    "RHSA": "redhat",
    "CGA": "chainguard",
}
_CVSS_TYPES = ("CVSS_V2", "CVSS_V3", "CVSS_V4")
UBUNTU_PRIORITIES = ("negligible", "low", "medium", "high", "critical")  # Ubuntu's order, lowest first
# Red Hat and its rebuilds put the errata's impact at the head of the summary: "Moderate: ruby:3.3 security update".
_ERRATA_IMPACT = re.compile(r"(Low|Moderate|Important|Critical):")


def _severity(entry: dict[str, Any], rater: str) -> SeverityScore | None:
    kind, score = entry.get("type"), entry.get("score")
    if not isinstance(kind, str) or not isinstance(score, str) or not score.strip():
        raise RecordError("a severity has no type or score")
    if kind == "Ubuntu":
        return vendor_severity(score, "ubuntu")
    if kind not in _CVSS_TYPES:
        log.debug("severity type %s is not read", kind)
        return None
    try:
        return cvss_severity(score, rater)
    except RecordError as exc:
        log.warning("dropping a severity (%s)", exc)
        return None


def _severities(entries: object, rater: str, field: str) -> list[SeverityScore]:
    found = (_severity(entry, rater) for entry in _objects(entries, field))
    return [s for s in found if s is not None]


def _ubuntu_priority(entries: list[dict[str, Any]]) -> str:
    """The highest Ubuntu priority among OSV severity entries, as written; "" when there is none."""
    ratings = [e["score"].strip() for e in entries if e.get("type") == "Ubuntu" and isinstance(e.get("score"), str)]
    return max(ratings, key=lambda r: UBUNTU_PRIORITIES.index(r) if r in UBUNTU_PRIORITIES else -1, default="")


# -- affected ----------------------------------------------------------------------------------------------------


def _event(event: dict[str, Any]) -> tuple[str, str]:
    if len(event) != 1:
        raise RecordError(f"range event {event!r} does not have exactly one kind")
    ((kind, version),) = event.items()
    if not isinstance(version, str):
        raise RecordError(f"range event {kind} version {version!r} is not a string")
    return str(kind), version


def _range(entry: dict[str, Any]) -> Range:
    kind = entry.get("type")
    if not isinstance(kind, str):
        raise RecordError("a range has no type")
    return Range(kind, tuple(_event(e) for e in _objects(entry.get("events"), f"{kind} range events")))


def _status(ranges: tuple[Range, ...]) -> str:
    """Distro data: fixed when every range ends in a fix; affected (no fix yet) otherwise.

    Ubuntu, for one, lists needed, deferred and ignored alike with no `fixed`
    event, so nothing finer can be read from OSV.
    """
    ends = [r.events[-1][0] for r in ranges if r.type != "GIT"]
    return Status.FIXED if ends and all(kind in ("fixed", "limit") for kind in ends) else Status.AFFECTED


_SLASHED_NAMES = frozenset({"golang", "npm", "composer", "swift", "githubactions", "k8s"})


def _built_purl(platform: Platform, name: str) -> str:
    purl_type = ECOSYSTEMS[platform.ecosystem]
    namespace, qualifiers = "", {}
    if platform.distro:
        # As the engine writes them (scans.engine.purls): distro=debian-12, but the bare release for apk.
        namespace = platform.distro
        qualifiers["distro"] = platform.release if purl_type == "apk" else f"{platform.distro}-{platform.release}"
    elif purl_type == "maven" and ":" in name:
        namespace, name = name.split(":", 1)
    elif purl_type in _SLASHED_NAMES and "/" in name:
        # GHSA names Swift packages by URL; their purl drops the scheme (pkg:swift/github.com/apple/swift-nio).
        namespace, name = name.split("://", 1)[-1].rsplit("/", 1)
    try:
        return PackageURL(purl_type, namespace or None, name, qualifiers=qualifiers or None).to_string()
    except ValueError:
        return ""


def _purl(given: object, platform: Platform, name: str) -> str:
    """The record's own purl without its version (it keeps qualifiers such as Ubuntu's ESM pocket), else one built."""
    if given is not None and not isinstance(given, str):
        raise RecordError("package.purl is not a string")
    if given:
        try:
            parts = PackageURL.from_string(given).to_dict()
            parts.update(version=None, subpath=None)
            return str(PackageURL(**parts).to_string())
        except ValueError as exc:
            log.warning("ignoring package.purl %r (%s)", given, exc)
    return _built_purl(platform, name)


@dataclass(frozen=True)
class _Context:
    """What affected entries take from the record as a whole."""

    vendor_severity: str = ""  # the record's Ubuntu priority, or the errata's impact


def _package_severity(entry: dict[str, Any], platform: Platform, context: _Context) -> str:
    # A USN rates no package itself; its cves_map gives each fixed CVE's priority, the highest counts.
    cves = _object(_object(entry.get("database_specific"), "database_specific").get("cves_map"), "cves_map")
    listed = [s for cve in _objects(cves.get("cves"), "cves_map.cves") for s in _objects(cve.get("severity"), "")]
    if platform.distro == "ubuntu" and listed:
        return _ubuntu_priority(listed)
    return context.vendor_severity if platform.distro else ""


def _affected(entry: dict[str, Any], context: _Context) -> AffectedPackage | None:
    package = _object(entry.get("package"), "package")
    if not package:  # allowed for commit-only (GIT) data: nothing a package inventory can match
        return None
    ecosystem = _text(package.get("ecosystem"), "package.ecosystem")
    platform = parse_ecosystem(ecosystem)
    if platform is None:
        log.debug("skipping ecosystem %r", ecosystem)
        return None
    name = normalize_name(platform.ecosystem, _text(package.get("name"), "package.name"))
    ranges = tuple(_range(r) for r in _objects(entry.get("ranges"), "ranges"))
    versions = _strings(entry.get("versions"), "versions")
    distro = bool(platform.distro)
    if not (ranges or versions or distro):
        log.debug("skipping %s %s: neither ranges nor versions", ecosystem, name)
        return None
    return AffectedPackage(
        ecosystem=platform.ecosystem,
        name=name,
        distro=platform.distro,
        release=platform.release,
        ranges=ranges,
        versions=versions,
        status=_status(ranges) if distro else "",
        severity=_package_severity(entry, platform, context),
        purl=_purl(package.get("purl"), platform, name),
    )


def _affected_all(entries: list[dict[str, Any]], context: _Context) -> tuple[AffectedPackage, ...]:
    found = []
    for index, entry in enumerate(entries):
        try:
            affected = _affected(entry, context)
        except RecordError as exc:
            package = entry.get("package")
            where = f" {package.get('ecosystem')}/{package.get('name')}" if isinstance(package, dict) else ""
            raise RecordError(f"affected[{index}]{where}: {exc}") from None
        if affected is not None:
            found.append(affected)
    return tuple(found)


# -- records -----------------------------------------------------------------------------------------------------


def _rater(record_id: str, source: str) -> str:
    return _RATERS.get(record_id.split("-", 1)[0], source)


def _record_severities(
    doc: dict[str, Any], summary: str, affected: list[dict[str, Any]], rater: str
) -> list[SeverityScore]:
    found = _severities(doc.get("severity"), rater, "severity")
    for entry in affected:  # schema 1.5 lets each affected package carry its own CVSS (kubernetes-sigs does)
        found += _severities(entry.get("severity"), rater, "affected[].severity")
    database_specific = _object(doc.get("database_specific"), "database_specific")
    rating = database_specific.get("severity")  # GHSA's own LOW / MODERATE / HIGH / CRITICAL
    if isinstance(rating, str) and rating.strip():
        found.append(vendor_severity(rating, rater))
    impact = _ERRATA_IMPACT.match(summary) if rater in ("almalinux", "rocky", "redhat") else None
    if impact:
        found.append(vendor_severity(impact.group(1), rater))
    return list(dict.fromkeys(found))


def _record(doc: dict[str, Any], source: str) -> AdvisoryRecord:
    record_id = doc.get("id")
    if not isinstance(record_id, str):
        raise RecordError("the record has no id")
    affected = _objects(doc.get("affected"), "affected")
    summary = _text(doc.get("summary"), "summary")
    rater = _rater(record_id, source)
    severities = _record_severities(doc, summary, affected, rater)
    vendor = next((s.rating for s in severities if s.type == "vendor" and s.source in ("ubuntu", rater)), "")
    return AdvisoryRecord(
        id=record_id,
        source=source,
        aliases=tuple(a for a in _strings(doc.get("aliases"), "aliases") if a != record_id),
        upstream=_strings(doc.get("upstream"), "upstream"),
        related=_strings(doc.get("related"), "related"),
        summary=summary,
        details=_text(doc.get("details"), "details"),
        published=parse_timestamp(doc.get("published"), "published"),
        modified=parse_timestamp(doc.get("modified"), "modified"),
        withdrawn=parse_timestamp(doc.get("withdrawn"), "withdrawn"),
        references=_references(doc.get("references")),
        cwes=_cwes(_object(doc.get("database_specific"), "database_specific")),
        severities=tuple(severities),
        affected=_affected_all(affected, _Context(vendor_severity=vendor)),
        raw=doc,
    )


def parse_record(doc: object, source: str = "osv") -> AdvisoryRecord | Rejected:
    """One OSV record, already parsed from JSON or YAML; a Rejected naming it and the reason if malformed."""
    if not isinstance(doc, dict):
        return Rejected("", "the document is not an OSV record (not an object)")
    try:
        return _record(doc, source)
    except RecordError as exc:
        record_id = doc.get("id")
        return Rejected(record_id if isinstance(record_id, str) and record_id else "", str(exc))
    except RecursionError:
        return Rejected(str(doc.get("id", "")), "nested too deeply")


def _read(document: Document) -> bytes:
    """The document's bytes. Too large is the record's fault; failing to read is the feed's."""
    try:
        return read_bounded(document, MAX_RECORD_BYTES)
    except FeedFormatError as exc:
        raise RecordError(str(exc)) from None
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise DocumentError(f"{document.name} cannot be read ({exc})") from exc


def parse_document(document: Document, source: str) -> Item:
    """The document's one record, or a Rejected naming the record (else the document) and why.

    Raises DocumentError when the document cannot be read at all (a corrupt
    archive member): the feed is broken, not the record.
    """
    try:
        item = parse_record(load_record(_read(document), document.name), source)
    except RecordError as exc:
        return Rejected(document.name, str(exc))
    if isinstance(item, Rejected):
        return Rejected(item.id or document.name, f"{item.reason} (in {document.name})")
    return item


def is_record_name(name: str) -> bool:
    return name.lower().endswith(RECORD_SUFFIXES)


class OsvImporter:
    """OSV as osv.dev publishes it: one `all.zip` per ecosystem, or a tree of JSON or YAML records."""

    source = "osv"
    default_url = "https://osv-vulnerabilities.storage.googleapis.com/{ecosystem}/all.zip"

    def accepts(self, name: str) -> bool:
        """JSON and YAML records; not the LICENSE, .id-allocator and the like that repositories hold."""
        return is_record_name(name)

    def parse(self, document: Document) -> Iterator[Item]:
        yield parse_document(document, self.source)
