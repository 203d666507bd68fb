"""Java archives (jar, war, ear and their kin, nested ones too), gradle.lockfile and pom.xml.

Archives. An archive's identity comes from `META-INF/maven/<g>/<a>/pom.properties`
(groupId, artifactId, version): Maven writes one for the project it builds,
and a shaded jar keeps one per library shaded into it, so each becomes a
package. Archives inside an archive (Spring Boot's `BOOT-INF/lib`, a war's
`WEB-INF/lib`, an ear's modules, any `*.jar` entry) are read the same way,
their packages' path written `outer.jar!/BOOT-INF/lib/inner.jar`.

Without pom.properties (jars built by Gradle, Ant or bnd), the manifest
and the file name give what they can:
- artifactId and version: from a file named `<artifactId>-<version>.jar`,
  the way Maven repositories and build tools name jars; else the manifest:
  Implementation-Title, Specification-Title or the last part of
  Bundle-SymbolicName (if an identifier), and Implementation-Version,
  Bundle-Version or Specification-Version. The file name comes first
  because, on the 36 corpus jars that do have pom.properties, it is right
  for all of them while manifests are not: titles are display names
  ("FreeMarker", "Apache Commons IO"), OSGi pads versions (4.5 -> 4.5.0),
  and jaxb-api 2.3.1 says Implementation-Version 2.3.0;
- groupId: Implementation-Vendor-Id (Maven's archiver writes the groupId
  there); else a dotted Bundle-SymbolicName, Automatic-Module-Name or
  Bundle-Name whose last part ends the artifactId, minus that part
  (`org.freemarker.freemarker` -> `org.freemarker`, `io.qameta.allure.model`
  for allure-model -> `io.qameta.allure`, `org.eclipse.jetty.http` for
  jetty-http -> `org.eclipse.jetty`); else none, and the package is named by
  its artifactId alone (purl `pkg:maven/<artifactId>@<version>`), which no
  Maven advisory names. Vendor names ("The Apache Software Foundation") are
  never taken for a groupId. On those 36 jars this guess is right for 20,
  gives no group for 11 and a wrong one for 5 (old Apache Commons jars say
  `org.apache`, javax.* API jars name Sun or GlassFish).
When pom.properties name other artifacts but not the one the file name
says the archive is (a shaded jar built by Gradle), that identity is added.
An archive with no version anywhere gives no package.

Archives are untrusted: nesting depth, central directory size, entries,
and bytes inflated are bounded per file (`ArchiveLimits`), and an entry
that inflates more than `max_ratio` times is refused as a zip bomb. A
malformed archive, or one over a limit, is a ParseError naming it.

gradle.lockfile (and Gradle 6's `gradle/dependency-locks/<conf>.lockfile`):
`group:artifact:version=conf,...` lines; a dependency only in test
configurations is dev. pom.xml: `<dependencies>` of the project (not the
`<dependencyManagement>` list, which only pins versions), direct, `test`
scope as dev. Versions must be literal after substituting `${...}`
properties the same pom defines (`project.version`, `project.groupId`,
`<properties>`) or come from the same pom's dependencyManagement;
inherited or ranged versions cannot be known without the parent poms and
the dependency is left out. XML is parsed with defusedxml, DTDs refused.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO, Any
from xml.etree.ElementTree import Element
from xml.etree.ElementTree import ParseError as XmlParseError

import defusedxml.ElementTree as SafeET  # noqa: N812 - the usual alias

from scans.engine.catalogers.base import FileContent
from scans.engine.errors import ParseError
from scans.engine.models import Package
from scans.engine.purls import language_purl

ARCHIVE_SUFFIXES = (".jar", ".war", ".ear", ".jpi", ".hpi", ".par", ".sar", ".nar")
GRADLE_LOCKFILE = "gradle.lockfile"
POM = "pom.xml"
_MAX_TEXT_FILE = 16 << 20  # a lockfile or pom.xml
_POM_PROPERTIES = re.compile(r"META-INF/maven/[^/]+/[^/]+/pom\.properties")
_MANIFEST = "meta-inf/manifest.mf"
_FILE_NAME = re.compile(r"(?P<artifact>[A-Za-z0-9_.\-]+?)-(?P<version>\d[A-Za-z0-9_.\-+]*)")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.\-]+")
_PROPERTY_LINE = re.compile(r"([^=:\s]+)\s*[=:\s]\s*(.*)")
_GROUP = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)+")
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,  # compression methods zipfile lacks
    RuntimeError,  # encrypted entries
    ValueError,
    OSError,
    struct.error,
    UnicodeDecodeError,
)


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on the work one archive file (with everything nested in it) may cause."""

    max_depth: int = 4  # archives nested below the file itself
    max_entries: int = 500_000  # entries over all its archives
    max_directory_bytes: int = 16 << 20  # one central directory, which zipfile reads whole into memory
    max_nested_bytes: int = 128 << 20  # one nested archive, held in memory while read
    max_total_bytes: int = 512 << 20  # bytes inflated over all its archives
    max_metadata_bytes: int = 1 << 20  # one pom.properties or MANIFEST.MF
    max_ratio: int = 1000  # inflated / compressed size of one entry over 1 MiB


class JavaCataloger:
    name = "java"
    version = 1

    def __init__(self, limits: ArchiveLimits | None = None) -> None:
        self.limits = limits or ArchiveLimits()

    def wants(self, path: str) -> bool:
        if path.endswith(ARCHIVE_SUFFIXES):
            return True
        base = path.rsplit("/", 1)[-1]
        return base in (GRADLE_LOCKFILE, POM) or (base.endswith(".lockfile") and "/dependency-locks/" in path)

    def parse(self, file: FileContent) -> list[Package]:
        base = file.path.rsplit("/", 1)[-1]
        if base == POM:
            return parse_pom(file)
        if base.endswith(".lockfile"):
            return parse_gradle_lockfile(file)
        return parse_archive(file, self.limits)


def _package(name: str, version: str, path: str, **fields: Any) -> Package:
    return Package(
        type="maven", name=name, version=version, path=path, purl=language_purl("maven", name, version), **fields
    )


# --------------------------------------------------------------------------
# Archives


@dataclass
class _Budget:
    limits: ArchiveLimits
    entries: int = 0
    inflated: int = 0

    def count(self, entries: int, label: str) -> None:
        self.entries += entries
        if self.entries > self.limits.max_entries:
            raise ParseError(f"{label}: more than {self.limits.max_entries} archive entries (limit)")

    def spend(self, info: zipfile.ZipInfo, cap: int, label: str) -> None:
        name = f"{label}!/{info.filename}"
        if info.file_size > cap:
            raise ParseError(f"{name}: {info.file_size} bytes is over the {cap}-byte limit")
        if info.file_size > 1 << 20 and info.file_size > self.limits.max_ratio * max(info.compress_size, 1):
            raise ParseError(f"{name}: inflates more than {self.limits.max_ratio}:1 (zip bomb?)")
        self.inflated += info.file_size
        if self.inflated > self.limits.max_total_bytes:
            raise ParseError(f"{label}: archives inflate to more than {self.limits.max_total_bytes} bytes (limit)")


def parse_archive(file: FileContent, limits: ArchiveLimits | None = None) -> list[Package]:
    budget = _Budget(limits or ArchiveLimits())
    with file.open() as stream:
        return _read_archive(stream, file.path, budget, 0)


def _read_archive(stream: IO[bytes], label: str, budget: _Budget, depth: int) -> list[Package]:
    try:
        _check_directory(stream, label, budget.limits)
        with zipfile.ZipFile(stream) as archive:
            return _archive_packages(archive, label, budget, depth)
    except _ZIP_ERRORS as exc:
        raise ParseError(f"{label}: malformed archive ({exc})") from None


def _check_directory(stream: IO[bytes], label: str, limits: ArchiveLimits) -> None:
    """Refuse a central directory too large to read before zipfile reads it whole into memory."""
    size = stream.seek(0, io.SEEK_END)
    tail_at = max(0, size - (22 + 0xFFFF))  # the end record plus the longest comment
    stream.seek(tail_at)
    tail = stream.read()
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) - end < 22:
        return  # zipfile reports it
    entries, directory_size = struct.unpack("<2xHL", tail[end + 8 : end + 16])
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:
        directory_size = _zip64_directory_size(stream, tail_at + end)
    if directory_size > limits.max_directory_bytes:
        raise ParseError(f"{label}: central directory of {directory_size} bytes is over the limit")


def _zip64_directory_size(stream: IO[bytes], end_at: int) -> int:
    if end_at < 20:
        return 0
    stream.seek(end_at - 20)
    locator = stream.read(20)
    if locator[:4] != b"PK\x06\x07":
        return 0
    (record_at,) = struct.unpack("<Q", locator[8:16])
    stream.seek(record_at)
    record = stream.read(56)
    if record[:4] != b"PK\x06\x06" or len(record) < 56:
        return 0
    (directory_size,) = struct.unpack("<Q", record[40:48])
    return int(directory_size)


def _archive_packages(archive: zipfile.ZipFile, label: str, budget: _Budget, depth: int) -> list[Package]:
    infos = archive.infolist()
    budget.count(len(infos), label)
    packages = []
    for info in infos:
        if _POM_PROPERTIES.fullmatch(info.filename):
            props = _properties(_read_entry(archive, info, budget, budget.limits.max_metadata_bytes, label))
            package = _maven_package(props, label)
            if package is not None:
                packages.append(package)
    if not _names_itself(packages, label):
        manifest = next((i for i in infos if i.filename.lower() == _MANIFEST), None)
        fields = {}
        if manifest is not None:
            fields = _manifest(_read_entry(archive, manifest, budget, budget.limits.max_metadata_bytes, label))
        identity = manifest_identity(fields, label.rsplit("/", 1)[-1])
        if identity is not None:
            packages.append(_package(*identity, label))
    for info in infos:
        if info.filename.lower().endswith(ARCHIVE_SUFFIXES) and not info.is_dir():
            packages.extend(_nested(archive, info, label, budget, depth))
    return packages


def _nested(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, budget: _Budget, depth: int) -> list[Package]:
    name = f"{label}!/{info.filename}"
    if depth >= budget.limits.max_depth:
        raise ParseError(f"{name}: archives nested more than {budget.limits.max_depth} deep (limit)")
    data = _read_entry(archive, info, budget, budget.limits.max_nested_bytes, label)
    return _read_archive(io.BytesIO(data), name, budget, depth + 1)


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget, cap: int, label: str) -> bytes:
    budget.spend(info, cap, label)
    with archive.open(info) as entry:
        # zipfile stops at the declared size and checks the CRC; the cap guards a lying header anyway.
        data = entry.read(cap + 1)
    if len(data) > cap:
        raise ParseError(f"{label}!/{info.filename}: over the {cap}-byte limit")
    return data


def _properties(data: bytes) -> dict[str, str]:
    """The `key=value` lines of a Java properties file (what Maven writes: no continuations needed)."""
    props = {}
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = _PROPERTY_LINE.match(line)
        if match:
            props[match.group(1)] = match.group(2).replace("\\:", ":").replace("\\=", "=").strip()
    return props


def _maven_package(props: dict[str, str], label: str) -> Package | None:
    group, artifact, version = (props.get(k, "") for k in ("groupId", "artifactId", "version"))
    if not all(_IDENTIFIER.fullmatch(v) for v in (group, artifact)) or not version or " " in version:
        return None  # an incomplete pom.properties: the manifest may still tell
    return _package(f"{group}:{artifact}", version, label)


def _names_itself(packages: list[Package], label: str) -> bool:
    if not packages:
        return False
    match = _FILE_NAME.fullmatch(_stem(label.rsplit("/", 1)[-1]))
    if match is None:
        return True  # nothing to compare with: trust pom.properties
    artifact = match.group("artifact")
    return any(p.name.rsplit(":", 1)[-1] == artifact for p in packages)


def _stem(file_name: str) -> str:
    base, dot, suffix = file_name.rpartition(".")
    return base if dot and f".{suffix.lower()}" in ARCHIVE_SUFFIXES else file_name


def _manifest(data: bytes) -> dict[str, str]:
    """The main section of a MANIFEST.MF, keys lower-cased (the spec's names are case-insensitive)."""
    fields: dict[str, str] = {}
    last = ""
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break  # the main section ends at the first blank line
        if line.startswith(" "):
            if last:
                fields[last] += line[1:]  # a continuation line (headers wrap at 72 bytes)
            continue
        key, sep, value = line.partition(":")
        if sep:
            last = key.strip().lower()
            fields[last] = value.strip()
    return fields


def manifest_identity(fields: dict[str, str], file_name: str) -> tuple[str, str] | None:
    """(name, version) from a manifest and a file name, by the rules in the module docstring."""
    match = _FILE_NAME.fullmatch(_stem(file_name))
    if match:
        artifact, version = match.group("artifact", "version")
    else:
        artifact = _artifact_from_manifest(fields)
        version = _first(fields, "implementation-version", "bundle-version", "specification-version")
    if not artifact or not version or " " in version:
        return None
    group = _group_from_manifest(fields, artifact)
    return (f"{group}:{artifact}" if group else artifact), version


def _first(fields: dict[str, str], *keys: str) -> str:
    return next((fields[k] for k in keys if fields.get(k)), "")


def _artifact_from_manifest(fields: dict[str, str]) -> str:
    symbolic = _symbolic_name(fields.get("bundle-symbolicname", ""))
    for candidate in (fields.get("implementation-title", ""), fields.get("specification-title", ""), symbolic):
        candidate = candidate.rsplit(".", 1)[-1] if candidate is symbolic else candidate
        if _IDENTIFIER.fullmatch(candidate):
            return candidate
    return ""


def _symbolic_name(value: str) -> str:
    return value.split(";", 1)[0].strip()  # `org.example.foo;singleton:=true`


def _group_from_manifest(fields: dict[str, str], artifact: str) -> str:
    vendor_id = fields.get("implementation-vendor-id", "")
    if _IDENTIFIER.fullmatch(vendor_id):
        return vendor_id
    for key in ("bundle-symbolicname", "automatic-module-name", "bundle-name"):
        head, dot, last = _symbolic_name(fields.get(key, "")).rpartition(".")
        if dot and last and _GROUP.fullmatch(head) and _squash(artifact).endswith(_squash(last)):
            return head
    return ""


def _squash(name: str) -> str:
    return re.sub(r"[-_.]", "", name.lower())


# --------------------------------------------------------------------------
# Gradle lockfiles


def parse_gradle_lockfile(file: FileContent) -> list[Package]:
    text = _text(file, "Gradle lockfile")
    # Gradle 6 wrote one file per configuration, named after it, with bare coordinates.
    configuration = "" if file.path.endswith(GRADLE_LOCKFILE) else file.path.rsplit("/", 1)[-1][: -len(".lockfile")]
    packages = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("empty="):
            continue
        coordinates, _, configurations = line.partition("=")
        parts = coordinates.split(":")
        if len(parts) != 3 or not all(_IDENTIFIER.fullmatch(p) for p in parts[:2]) or not parts[2]:
            raise ParseError(f"{file.path}: line {number} is not group:artifact:version ({line[:80]!r})")
        names = [c for c in (configurations or configuration).split(",") if c]
        dev = bool(names) and all("test" in c.lower() for c in names)
        packages.append(_package(f"{parts[0]}:{parts[1]}", parts[2], file.path, dev=dev))
    return packages


def _text(file: FileContent, what: str) -> str:
    if file.size > _MAX_TEXT_FILE:
        raise ParseError(f"{file.path}: {file.size} bytes is too large for a {what}")
    try:
        return file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"{file.path}: {what} is not UTF-8 ({exc})") from None


# --------------------------------------------------------------------------
# pom.xml


@dataclass
class _Pom:
    root: Element
    ns: str
    properties: dict[str, str] = field(default_factory=dict)

    def find(self, element: Element, path: str) -> Element | None:
        return element.find("/".join(self.ns + part for part in path.split("/")))

    def text(self, element: Element, path: str) -> str:
        found = self.find(element, path)
        return (found.text or "").strip() if found is not None else ""

    def children(self, element: Element | None, name: str) -> list[Element]:
        return [] if element is None else element.findall(self.ns + name)


def parse_pom(file: FileContent) -> list[Package]:
    if file.size > _MAX_TEXT_FILE:
        raise ParseError(f"{file.path}: {file.size} bytes is too large for a pom.xml")
    try:
        root = SafeET.fromstring(file.read_bytes(), forbid_dtd=True)
    except (XmlParseError, ValueError, LookupError) as exc:  # defusedxml's refusals are ValueErrors
        raise ParseError(f"{file.path}: malformed pom.xml ({exc})") from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag != ns + "project":
        raise ParseError(f"{file.path}: the root element is not <project>")
    pom = _Pom(root, ns)
    pom.properties = _pom_properties(pom)
    managed = {
        _coordinates(pom, dep)[:2]: _coordinates(pom, dep)[2]
        for dep in pom.children(pom.find(root, "dependencyManagement/dependencies"), "dependency")
    }
    packages = []
    for dep in pom.children(pom.find(root, "dependencies"), "dependency"):
        group, artifact, version = _coordinates(pom, dep)
        version = version or managed.get((group, artifact), "")
        if group and artifact and version and not version.startswith(("[", "(")):
            dev = pom.text(dep, "scope") == "test"
            packages.append(_package(f"{group}:{artifact}", version, file.path, dev=dev, direct=True))
    return packages


def _pom_properties(pom: _Pom) -> dict[str, str]:
    root = pom.root
    props = {}
    declared = pom.find(root, "properties")
    for child in list(declared) if declared is not None else []:
        if isinstance(child.tag, str):  # comments and processing instructions have none
            props[child.tag.rpartition("}")[2]] = (child.text or "").strip()
    version = pom.text(root, "version") or pom.text(root, "parent/version")
    group = pom.text(root, "groupId") or pom.text(root, "parent/groupId")
    for prefix in ("project.", "pom.", ""):
        props[prefix + "version"] = version
        props[prefix + "groupId"] = group
    props["project.artifactId"] = pom.text(root, "artifactId")
    return props


def _coordinates(pom: _Pom, dep: Element) -> tuple[str, str, str]:
    group, artifact, version = (_substitute(pom.text(dep, k), pom.properties) for k in _COORDINATES)
    return group, artifact, version


_COORDINATES = ("groupId", "artifactId", "version")
_PROPERTY = re.compile(r"\$\{([^}]*)\}")


def _substitute(value: str, props: dict[str, str]) -> str:
    """`value` with `${name}` replaced from `props`; "" if any is left.

    A few rounds, for properties defined by other properties.
    """
    for _ in range(5):
        if "${" not in value:
            return value
        value = _PROPERTY.sub(lambda m: props.get(m.group(1), m.group(0)), value)
        if len(value) > 1024:
            return ""  # properties that grow: not a version
    return "" if "${" in value else value
