"""Inventories out: CycloneDX 1.6 and SPDX 2.3 JSON, Vigil's JSON, a table.

The CycloneDX output is a contract other tools read: one component per
package, its purl, and `vigil:` properties for the source package and the
layer that introduced it. Documents are built with cyclonedx-python-lib and
spdx-tools, which also validate what they write.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL
from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.document import CreationInfo, Document
from spdx_tools.spdx.model.package import ExternalPackageRef, ExternalPackageRefCategory
from spdx_tools.spdx.model.package import Package as SpdxPackage
from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

from scans.engine.distro import describe as describe_distro
from scans.engine.models import Analysis, Distro, ImageMeta, Package

TOOL_NAME = "vigil"
TOOL_VERSION = "0.1.0"
FORMATS = ("table", "json", "cyclonedx", "spdx")

# CycloneDX property names (Vigil's namespace, per the CycloneDX property taxonomy convention).
PROP_SOURCE_NAME = "vigil:package:source_name"
PROP_SOURCE_VERSION = "vigil:package:source_version"
PROP_PATH = "vigil:package:path"
PROP_LAYER_DIGEST = "vigil:layer:digest"
PROP_LAYER_DIFF_ID = "vigil:layer:diff_id"
PROP_LAYER_INDEX = "vigil:layer:index"


def package_properties(package: Package) -> list[tuple[str, str]]:
    props = [
        (PROP_SOURCE_NAME, package.source_name),
        (PROP_SOURCE_VERSION, package.source_version),
        (PROP_PATH, package.path),
    ]
    if package.layer is not None:
        props += [
            (PROP_LAYER_DIGEST, package.layer.digest),
            (PROP_LAYER_DIFF_ID, package.layer.diff_id),
            (PROP_LAYER_INDEX, str(package.layer.index)),
        ]
    if package.modularity_label:
        props.append(("vigil:package:modularity_label", package.modularity_label))
    return [(k, v) for k, v in props if v]


def _image_name(analysis: Analysis) -> str:
    image = analysis.image
    return image.repo_tags[0] if image.repo_tags else image.reference or image.manifest_digest or "image"


def _image_properties(analysis: Analysis) -> list[tuple[str, str]]:
    image = analysis.image
    props = [
        ("vigil:image:reference", image.reference),
        ("vigil:image:manifest_digest", image.manifest_digest),
        ("vigil:image:index_digest", image.index_digest),
        ("vigil:image:config_digest", image.config_digest),
        ("vigil:image:platform", str(image.platform)),
    ]
    props += [("vigil:image:tag", tag) for tag in image.repo_tags]
    return [(k, v) for k, v in props if v]


def _unique_refs(packages: list[Package]) -> Iterator[tuple[Package, str]]:
    seen: dict[str, int] = {}
    for package in packages:
        ref = package.purl or f"{package.type}:{package.name}@{package.version}"
        count = seen.get(ref, 0)
        seen[ref] = count + 1
        yield package, ref if count == 0 else f"{ref}#{count}"


def _licenses(factory: LicenseFactory, texts: tuple[str, ...]) -> list[Any]:
    """CycloneDX allows one SPDX expression or a list of single licences, not a mix of both."""
    if len(texts) == 1:
        return [factory.make_from_string(texts[0])]
    made = [factory.make_from_string(text) for text in texts]
    if all(hasattr(license_, "id") or hasattr(license_, "name") for license_ in made):
        return made
    return [factory.make_with_name(text) for text in texts]


def _purl_key(text: str, with_version: bool) -> str:
    purl = PackageURL.from_string(text)
    return f"{purl.type}/{purl.namespace or ''}/{purl.name}" + (f"@{purl.version}" if with_version else "")


def _register_graph(bom: Bom, by_package: list[tuple[Package, Component]]) -> None:
    """Package -> dependency edges where the source gave a graph (lockfiles, installed trees).

    A dependency named without a version (Python's Requires-Dist) points at
    the installed package of that name, when there is one.
    """
    exact: dict[str, Component] = {}
    loose: dict[str, Component] = {}
    for package, component in by_package:
        if package.purl:
            exact.setdefault(_purl_key(package.purl, True), component)
            loose.setdefault(_purl_key(package.purl, False), component)
    for package, component in by_package:
        targets = []
        for dependency in package.dependencies:
            try:
                found = exact.get(_purl_key(dependency, True)) or loose.get(_purl_key(dependency, False))
            except ValueError:
                continue
            if found is not None and found is not component:
                targets.append(found)
        if targets:
            bom.register_dependency(component, targets)


def to_cyclonedx(analysis: Analysis) -> str:
    """CycloneDX 1.6 JSON."""
    licenses = LicenseFactory()
    image = Component(
        type=ComponentType.CONTAINER,
        name=_image_name(analysis),
        version=analysis.image.manifest_digest or analysis.image.config_digest or None,
        bom_ref="image",
        properties=[Property(name=k, value=v) for k, v in _image_properties(analysis)],
    )
    metadata = BomMetaData(component=image, timestamp=datetime.now(UTC))
    metadata.tools = ToolRepository(
        components=[Component(type=ComponentType.APPLICATION, name=TOOL_NAME, version=TOOL_VERSION)]
    )
    bom = Bom(metadata=metadata, serial_number=uuid.uuid4())
    components = []
    if analysis.distro is not None:
        os_component = Component(
            type=ComponentType.OPERATING_SYSTEM,
            name=analysis.distro.id,
            version=analysis.distro.version_id or None,
            bom_ref=f"os:{analysis.distro.id}@{analysis.distro.version_id}",
        )
        components.append(os_component)
    by_package: list[tuple[Package, Component]] = []
    for package, ref in _unique_refs(analysis.packages):
        purl = PackageURL.from_string(package.purl) if package.purl else None
        # Maven's groupId, npm's scope and a Go module's host path are CycloneDX's `group`.
        group = purl.namespace if purl is not None and package.type not in ("deb", "apk", "rpm") else None
        component = Component(
            type=ComponentType.LIBRARY,
            group=group,
            name=purl.name if group and purl is not None else package.name,
            version=package.version or None,
            bom_ref=ref,
            purl=purl,
            licenses=_licenses(licenses, package.licenses),
            properties=[Property(name=k, value=v) for k, v in package_properties(package)],
        )
        components.append(component)
        by_package.append((package, component))
    for component in components:
        bom.components.add(component)
    bom.register_dependency(image, components)
    _register_graph(bom, by_package)
    return JsonV1Dot6(bom).output_as_string(indent=2)


def to_spdx(analysis: Analysis) -> str:
    """SPDX 2.3 JSON."""
    name = _image_name(analysis)
    created = datetime.now(UTC).replace(microsecond=0)
    creation = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=name,
        document_namespace=f"https://vigil.invalid/spdx/{uuid.uuid4()}",
        creators=[Actor(ActorType.TOOL, f"{TOOL_NAME}-{TOOL_VERSION}")],
        created=created,
    )
    image_id = "SPDXRef-Image"
    packages = [
        SpdxPackage(
            spdx_id=image_id,
            name=name,
            download_location=SpdxNoAssertion(),
            version=analysis.image.manifest_digest or analysis.image.config_digest or None,
            files_analyzed=False,
            comment="; ".join(f"{k}={v}" for k, v in _image_properties(analysis)) or None,
        )
    ]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, image_id)]
    for number, (package, _) in enumerate(_unique_refs(analysis.packages), start=1):
        spdx_id = f"SPDXRef-Package-{package.type}-{number}"
        refs = (
            [ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", package.purl)]
            if package.purl
            else []
        )
        packages.append(
            SpdxPackage(
                spdx_id=spdx_id,
                name=package.name,
                download_location=SpdxNoAssertion(),
                version=package.version,
                files_analyzed=False,
                source_info=f"built from {package.source_name} {package.source_version}"
                if package.source_name
                else None,
                license_declared=SpdxNoAssertion(),
                license_concluded=SpdxNoAssertion(),
                license_comment="; ".join(package.licenses) or None,
                copyright_text=SpdxNoAssertion(),
                external_references=refs,
                comment="; ".join(f"{k}={v}" for k, v in package_properties(package)) or None,
            )
        )
        relationships.append(Relationship(image_id, RelationshipType.CONTAINS, spdx_id))
    document = Document(creation_info=creation, packages=packages, relationships=relationships)
    out = io.StringIO()
    write_document_to_stream(document, out, validate=True)
    return out.getvalue()


def to_json(analysis: Analysis) -> str:
    """Vigil's own JSON: the analysis as the engine produced it."""
    doc = {
        "schema": "vigil.analysis/v1",
        "image": {**asdict(analysis.image), "platform": str(analysis.image.platform)},
        "distro": asdict(analysis.distro) if analysis.distro else None,
        "packages": [asdict(p) for p in analysis.packages],
        "warnings": analysis.warnings,
        "analyzers": analysis.analyzers,
    }
    return json.dumps(doc, indent=2, sort_keys=True)


def to_table(analysis: Analysis) -> str:
    image = analysis.image
    lines = [
        f"Image:    {image.reference}",
        f"Digest:   {image.manifest_digest or image.config_digest}",
        f"Platform: {image.platform}",
        f"OS:       {describe_distro(analysis.distro)}",
        f"Packages: {len(analysis.packages)}",
        "",
    ]
    rows = [("TYPE", "NAME", "VERSION", "ARCH", "SOURCE", "LAYER")]
    for p in analysis.packages:
        source = p.source_name if p.source_version == p.version else f"{p.source_name} {p.source_version}"
        layer = f"{p.layer.index} {p.layer.diff_id[7:19]}" if p.layer else ""
        rows.append((p.type, p.name, p.version, p.arch, source, layer))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines += [f"warning: {w}" for w in analysis.warnings]
    return "\n".join(lines) + "\n"


def render(analysis: Analysis, fmt: str) -> str:
    writers = {"table": to_table, "json": to_json, "cyclonedx": to_cyclonedx, "spdx": to_spdx}
    if fmt not in writers:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return writers[fmt](analysis)


# --------------------------------------------------------------------------
# SBOMs in: CycloneDX and SPDX JSON documents become an Analysis to match.

MAX_SBOM_BYTES = 256 << 20
_NAMESPACED = {"maven": ":", "npm": "/", "golang": "/", "composer": "/"}


def _package_from_purl(text: str, properties: dict[str, str], path: str) -> Package | None:
    try:
        purl = PackageURL.from_string(text)
    except ValueError:
        return None
    if not purl.version:
        return None
    separator = _NAMESPACED.get(purl.type)
    name = f"{purl.namespace}{separator}{purl.name}" if separator and purl.namespace else purl.name
    qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
    epoch = qualifiers.get("epoch")
    return Package(
        type=purl.type,
        name=name,
        version=purl.version,
        arch=qualifiers.get("arch", ""),
        source_name=properties.get(PROP_SOURCE_NAME, name),
        source_version=properties.get(PROP_SOURCE_VERSION, purl.version),
        epoch=int(epoch) if epoch and epoch.isdigit() else None,
        path=properties.get(PROP_PATH, path),
        purl=text,
    )


def _distro_from_purls(packages: list[Package]) -> Distro | None:
    """The distro OS packages name in their `distro` qualifier (debian-12, 3.11.13 for apk)."""
    for package in packages:
        if package.type not in ("deb", "apk", "rpm"):
            continue
        purl = PackageURL.from_string(package.purl)
        qualifier = (purl.qualifiers or {}).get("distro", "") if isinstance(purl.qualifiers, dict) else ""
        if not qualifier or not purl.namespace:
            continue
        version = qualifier.removeprefix(f"{purl.namespace}-")
        return Distro(id=purl.namespace, version_id=version)
    return None


def _cyclonedx_components(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    stack = list(doc.get("components") or [])
    while stack and len(found) < 1_000_000:
        component = stack.pop()
        if isinstance(component, dict):
            found.append(component)
            stack.extend(component.get("components") or [])
    return found


def _from_cyclonedx(doc: dict[str, Any], name: str) -> Analysis:
    packages, distro = [], None
    for component in _cyclonedx_components(doc):
        if component.get("type") == "operating-system" and isinstance(component.get("name"), str):
            distro = Distro(id=str(component["name"]).lower(), version_id=str(component.get("version") or ""))
            continue
        props = {
            str(p.get("name")): str(p.get("value")) for p in component.get("properties") or [] if isinstance(p, dict)
        }
        purl = component.get("purl")
        package = _package_from_purl(purl, props, name) if isinstance(purl, str) else None
        if package is not None:
            packages.append(package)
    return Analysis(ImageMeta(reference=name, media_type="cyclonedx"), distro or _distro_from_purls(packages), packages)


def _from_spdx(doc: dict[str, Any], name: str) -> Analysis:
    packages = []
    for item in doc.get("packages") or []:
        if not isinstance(item, dict):
            continue
        # Vigil writes its properties into the package comment ("key=value; ..."): read them back.
        props = dict(
            part.split("=", 1)
            for part in str(item.get("comment") or "").split("; ")
            if part.startswith("vigil:") and "=" in part
        )
        for ref in item.get("externalRefs") or []:
            if (
                isinstance(ref, dict)
                and ref.get("referenceType") == "purl"
                and isinstance(ref.get("referenceLocator"), str)
            ):
                package = _package_from_purl(ref["referenceLocator"], props, name)
                if package is not None:
                    packages.append(package)
    return Analysis(ImageMeta(reference=name, media_type="spdx"), _distro_from_purls(packages), packages)


def read_sbom(path: Path) -> Analysis:
    """The packages of a CycloneDX or SPDX JSON SBOM; ValueError for anything else."""
    with path.open("rb") as f:
        raw = f.read(MAX_SBOM_BYTES + 1)
    if len(raw) > MAX_SBOM_BYTES:
        raise ValueError(f"{path} is larger than {MAX_SBOM_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path} is not JSON ({exc})") from None
    if isinstance(doc, dict) and doc.get("bomFormat") == "CycloneDX":
        analysis = _from_cyclonedx(doc, str(path))
    elif isinstance(doc, dict) and str(doc.get("spdxVersion", "")).startswith("SPDX-"):
        analysis = _from_spdx(doc, str(path))
    else:
        raise ValueError(f"{path} is neither a CycloneDX nor an SPDX JSON document")
    analysis.packages.sort(key=lambda p: (p.type, p.name, p.version, p.path))
    return analysis
