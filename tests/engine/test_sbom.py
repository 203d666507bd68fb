"""SBOM output: CycloneDX 1.6 and SPDX 2.3, validated by their own libraries."""

from __future__ import annotations

import contextlib
import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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


def test_cyclonedx_carries_the_dependency_graph_of_the_node_app(debian):
    doc = json.loads(sbom.to_cyclonedx(debian))
    refs = {c["bom-ref"]: c for c in doc["components"]}
    edges = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
    express = next(ref for ref, c in refs.items() if c.get("purl", "").startswith("pkg:npm/express@"))
    assert {refs[r]["name"] for r in edges[express]} >= {"body-parser", "cookie", "qs"}
    jackson = next(c for c in doc["components"] if c["name"] == "jackson-databind")
    assert jackson["group"] == "com.fasterxml.jackson.core"


@pytest.mark.parametrize("writer", [sbom.to_cyclonedx, sbom.to_spdx])
def test_sboms_read_back_give_the_same_packages(debian, writer, tmp_path):
    path = tmp_path / "sbom.json"
    path.write_text(writer(debian))
    again = sbom.read_sbom(path)
    assert sorted(p.purl for p in again.packages if p.version) == sorted(p.purl for p in debian.packages if p.version)
    assert (again.distro.id, again.distro.version_id) == ("debian", "12")
    libc = next(p for p in again.packages if p.name == "libc6")
    assert libc.source_name == "glibc"


_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30), st.just("CycloneDX"),
                   st.just("pkg:deb/debian/a@1?distro=debian-12"), st.just("SPDX-2.3"))  # fmt: skip
json_documents = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "bomFormat",
                    "components",
                    "purl",
                    "spdxVersion",
                    "packages",
                    "externalRefs",
                    "referenceType",
                    "referenceLocator",
                    "type",
                    "name",
                    "version",
                    "properties",
                    "comment",
                ]
            ),
            inner,
            max_size=6,
        )
    ),  # fmt: skip
    max_leaves=25,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300), json_documents.map(lambda d: json.dumps(d).encode())))
def test_read_sbom_fails_only_with_value_error(tmp_path, data):
    path = tmp_path / "garbage.json"
    path.write_bytes(data)
    with contextlib.suppress(ValueError):
        sbom.read_sbom(path)
