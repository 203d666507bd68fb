"""SBOM output: CycloneDX 1.6 and SPDX 2.3, validated by their own libraries."""

from __future__ import annotations

import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.json import json_parser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from scans.engine import sbom
from scans.engine.analyzer import Analyzer
from scans.engine.models import Analysis, Platform
from scans.engine.sources import open_local
from tests.conftest import corpus_file


@pytest.fixture(scope="module")
def debian(tmp_path_factory) -> Analysis:
    work = tmp_path_factory.mktemp("work")
    with open_local(str(corpus_file("debian12-app.docker.tar")), Platform()) as source:
        return Analyzer(work).run(source)


def test_cyclonedx_is_valid_1_6_with_one_component_per_package(debian):
    text = sbom.to_cyclonedx(debian)
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert errors is None, errors
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6"
    libraries = [c for c in doc["components"] if c["type"] == "library"]
    assert len(libraries) == len(debian.packages)
    assert sum(1 for p in debian.packages if p.type == "deb") == 88
    (os_component,) = [c for c in doc["components"] if c["type"] == "operating-system"]
    assert (os_component["name"], os_component["version"]) == ("debian", "12")
    libc = next(c for c in libraries if c["name"] == "libc6")
    props = {p["name"]: p["value"] for p in libc["properties"]}
    assert props["vigil:package:source_name"] == "glibc"
    assert props["vigil:package:source_version"] == libc["version"]
    assert props["vigil:layer:diff_id"] == debian.image.layers[0].diff_id
    assert props["vigil:package:path"] == "var/lib/dpkg/status"
    assert libc["purl"] == f"pkg:deb/debian/libc6@{libc['version'].replace('+', '%2B')}?arch=amd64&distro=debian-12"
    assert doc["metadata"]["component"]["type"] == "container"


def test_spdx_is_valid_2_3(debian, tmp_path):
    path = tmp_path / "sbom.spdx.json"
    path.write_text(sbom.to_spdx(debian))
    document = json_parser.parse_from_file(str(path))
    assert validate_full_spdx_document(document, "SPDX-2.3") == []
    purls = {ref.locator for p in document.packages for ref in p.external_references}
    assert purls == {p.purl for p in debian.packages}


def test_json_and_table(debian):
    doc = json.loads(sbom.to_json(debian))
    assert doc["schema"] == "vigil.analysis/v1"
    assert len(doc["packages"]) == len(debian.packages)
    table = sbom.to_table(debian)
    assert "Debian GNU/Linux 12 (bookworm)" in table
    assert "libc6" in table
    assert "glibc" in table


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        sbom.render(Analysis(image=None, distro=None, packages=[]), "xml")  # type: ignore[arg-type]


def test_a_licence_expression_beside_other_licences_is_still_valid_cyclonedx(debian):
    import dataclasses

    mixed = dataclasses.replace(
        debian, packages=[dataclasses.replace(debian.packages[0], licenses=("GPL-2.0-or-later AND MIT", "BSD"))]
    )
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom.to_cyclonedx(mixed)) is None
