"""The gate's policy: .vigilignore, OpenVEX and CycloneDX VEX, and the gate itself. No Django, no database."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import given, settings
from hypothesis import strategies as st

from scans.engine import policy, reports
from scans.engine.findings import Finding, Report, Suppression
from scans.engine.models import Distro
from scans.engine.policy import PolicyError, apply_policy, gate, parse_ignorefile, parse_vex, purl_matches
from tests.engine.report_factories import (
    all_findings,
    make_deb,
    make_django_finding,
    make_kev_finding,
    make_libc6_finding,
    make_lodash_finding,
    make_nscd_finding,
    make_report,
    make_unfixed_finding,
)

FIXTURES = Path(__file__).parent / "fixtures"
UBUNTU_OPENVEX = Path(__file__).resolve().parents[2].parent / "shared/feeds/samples/ubuntu-openvex/CVE-2023-38545.json"
TODAY = date(2025, 1, 15)


def suppressions(report: Report) -> dict[str, Suppression | None]:
    return {f"{f.package.name}:{f.id}": f.suppression for f in report.findings}


def suppressed_keys(report: Report) -> set[str]:
    return {key for key, s in suppressions(report).items() if s is not None}


# --- .vigilignore ---------------------------------------------------------------------------------------------


def test_ignorefile_mapping_and_list_shapes_read_alike():
    mapping = parse_ignorefile("ignore:\n  - id: CVE-2024-2961\n    reason: not reachable\n")
    bare = parse_ignorefile("- id: CVE-2024-2961\n  reason: not reachable\n")
    assert [(e.id, e.reason, e.number) for e in mapping] == [(e.id, e.reason, e.number) for e in bare]
    assert parse_ignorefile("") == []
    assert parse_ignorefile("ignore:\n") == []


def test_ignore_by_alias_suppresses_the_finding_under_its_preferred_id():
    entries = parse_ignorefile("ignore:\n  - id: ghsa-vm8q-m57g-pff3\n    reason: Truncator never sees user input\n")
    report = apply_policy(make_report(all_findings()), ignore=entries, today=TODAY)
    assert suppressed_keys(report) == {"Django:CVE-2024-27351"}
    suppression = suppressions(report)["Django:CVE-2024-27351"]
    assert suppression == Suppression(by="ignorefile", reason="Truncator never sees user input", source=".vigilignore")


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        ("libc6", {"libc6:CVE-2024-2961"}),
        ("glibc", {"libc6:CVE-2024-2961"}),  # the source package a Debian advisory names
        ("libc-bin", set()),
    ],
)
def test_ignore_by_package_name(package, expected):
    entries = parse_ignorefile(f"- id: CVE-2024-2961\n  package: {package}\n  reason: r\n")
    report = apply_policy(make_report(all_findings()), ignore=entries, today=TODAY)
    assert suppressed_keys(report) == expected


@pytest.mark.parametrize(
    ("purl", "suppressed"),
    [
        ("pkg:pypi/django", True),
        ("pkg:pypi/Django@4.2.10", True),
        ("pkg:pypi/django@4.2.9", False),
        ("pkg:npm/django", False),
    ],
)
def test_ignore_by_purl_matches_type_namespace_name_and_version_when_given(purl, suppressed):
    entries = parse_ignorefile(f"- id: CVE-2024-27351\n  purl: '{purl}'\n  reason: r\n")
    report = apply_policy(make_report(all_findings()), ignore=entries, today=TODAY)
    assert ("Django:CVE-2024-27351" in suppressed_keys(report)) is suppressed


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("pkg:deb/debian/libc6", True),
        ("pkg:deb/debian/libc6@2.36-9%2Bdeb12u3", True),
        ("pkg:deb/debian/libc6@2.36-9+deb12u3?arch=amd64", True),
        ("pkg:deb/debian/libc6@2.36-9+deb12u3?arch=arm64", False),  # a qualifier both carry must agree
        ("pkg:deb/debian/libc6?distro=bookworm", True),  # except distro, spelled differently by each producer
        ("pkg:deb/ubuntu/libc6", False),
        ("pkg:deb/debian/libc6@2.36-9+deb12u4", False),
        ("not a purl", False),
    ],
)
def test_purl_matching(pattern, matches):
    assert purl_matches(pattern, make_deb("libc6", "2.36-9+deb12u3", source="glibc").purl) is matches


def test_expired_entries_are_reported_not_applied():
    entries = parse_ignorefile(
        "ignore:\n"
        "  - id: CVE-2023-45853\n    package: zlib1g\n    reason: MiniZip is not built\n    expires: 2025-01-14\n"
        "  - id: CVE-2021-23337\n    reason: template() unused\n    expires: '2025-01-15'\n"
    )
    report = apply_policy(make_report(all_findings()), ignore=entries, today=TODAY)
    assert suppressed_keys(report) == {"lodash:CVE-2021-23337"}  # applies through its expiry day
    assert suppressions(report)["lodash:CVE-2021-23337"].expires == date(2025, 1, 15)
    assert report.notes == [
        ".vigilignore: ignore entry 1 (CVE-2023-45853 in zlib1g) expired on 2025-01-14; it no longer applies"
    ]
    assert "expired on 2025-01-14" in reports.to_table(report)
    assert "expired on 2025-01-14" in json.loads(reports.to_json(report))["notes"][0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- id: CVE-2024-2961\n", r"entry 1 \(CVE-2024-2961\): `reason` is required"),
        ("- reason: because\n", r"entry 1: `id` is required"),
        (
            "- id: A\n  reason: r\n- id: CVE-1\n  reason: r\n  expire: 2025-01-01\n",
            r"entry 2 \(CVE-1\): unknown key\(s\) expire",
        ),
        ("- id: CVE-1\n  reason: r\n  expires: next week\n", r"entry 1 \(CVE-1\): `expires` must be a date"),
        ("- id: CVE-1\n  reason: r\n  expires: 2025-01-01 10:00:00\n", r"not a time"),
        ("- id: CVE-1\n  reason: r\n  package: zlib\n  purl: pkg:deb/debian/zlib1g\n", r"not both"),
        ("- id: CVE-1\n  reason: r\n  purl: zlib\n", r"entry 1 \(CVE-1\): `purl` 'zlib' is not a valid package URL"),
        ("- id: CVE-1\n  reason: [a, b]\n", r"`reason` must be text"),
        ("- CVE-2024-2961\n", r"entry 1: expected a mapping"),
        ("ignores:\n  - id: CVE-1\n", r"unknown key\(s\) ignores"),
        ("just text\n", r"expected an `ignore:` list"),
        ("- id: [\n", r"not valid YAML"),
    ],
)
def test_bad_ignorefile_is_a_policy_error_naming_the_entry(text, message):
    with pytest.raises(PolicyError, match=message) as excinfo:
        parse_ignorefile(text, source="ci/.vigilignore")
    assert str(excinfo.value).startswith("ci/.vigilignore: ")


def test_load_ignorefile(tmp_path):
    path = tmp_path / ".vigilignore"
    path.write_text("ignore:\n  - id: CVE-2024-2961\n    reason: r\n")
    (entry,) = policy.load_ignorefile(path)
    assert entry.source == str(path)
    with pytest.raises(PolicyError, match="cannot read"):
        policy.load_ignorefile(tmp_path / "missing")


# --- OpenVEX -----------------------------------------------------------------------------------------------------


def ubuntu_curl_report() -> Report:
    """curl on three Ubuntu releases: Canonical's VEX says not_affected, fixed and affected respectively."""
    findings = []
    for version_id, version in (
        ("14.04", "7.35.0-1ubuntu2.20+esm19"),
        ("22.04", "7.81.0-1ubuntu1.24"),
        ("16.04", "7.47.0-1ubuntu2.19"),
    ):
        package = make_deb("curl", version, distro=Distro(id="ubuntu", version_id=version_id))
        findings.append(
            make_libc6_finding(id="CVE-2023-38545", package=package, fixed_versions=(), title="curl: SOCKS5")
        )
    return make_report(findings)


def test_ubuntu_openvex_only_not_affected_suppresses_and_the_justification_shows():
    if not UBUNTU_OPENVEX.exists():
        pytest.skip(f"{UBUNTU_OPENVEX} is missing: ../shared/feeds must sit beside the repository")
    statements = policy.load_vex(UBUNTU_OPENVEX)
    assert {s.status for s in statements} == {"fixed", "affected", "not_affected"}
    report = apply_policy(ubuntu_curl_report(), vex=statements, today=TODAY)
    by_version = {f.package.version: f.suppression for f in report.findings}
    assert by_version["7.81.0-1ubuntu1.24"] is None  # fixed: the scanner still sees a vulnerable version
    assert by_version["7.47.0-1ubuntu2.19"] is None  # affected
    suppression = by_version["7.35.0-1ubuntu2.20+esm19"]
    assert suppression is not None
    assert (suppression.by, suppression.source) == ("vex", str(UBUNTU_OPENVEX))
    assert suppression.reason.startswith("not_affected (vulnerable_code_not_present): This package (for the given")
    assert policy.vex_analysis(suppression)[:2] == ("not_affected", "vulnerable_code_not_present")
    for fmt in ("table", "html", "json", "sarif", "junit"):
        assert "vulnerable_code_not_present" in reports.render_report(report, fmt), fmt
    assert r"vulnerable\_code\_not\_present" in reports.to_markdown(report)  # Markdown-escaped, shown as written
    cdx = json.loads(reports.to_cyclonedx(report))
    (analysis,) = [v["analysis"] for v in cdx["vulnerabilities"] if "analysis" in v]
    assert (analysis["state"], analysis["justification"]) == ("not_affected", "code_not_present")


def test_openvex_ids_come_from_name_id_and_url_aliases():
    doc = {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "statements": [
            {
                "vulnerability": {"@id": "https://nvd.nist.gov/vuln/detail/CVE-2024-2961"},
                "products": [{"@id": "pkg:deb/debian/libc6"}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_present",
            }
        ],
    }
    (statement,) = parse_vex(json.dumps(doc))
    assert "CVE-2024-2961" in statement.ids
    report = apply_policy(make_report(all_findings()), vex=[statement], today=TODAY)
    assert suppressed_keys(report) == {"libc6:CVE-2024-2961"}


def test_openvex_subcomponents_apply_inside_the_named_image_only():
    statements = policy.load_vex(FIXTURES / "vex/openvex-image.json")
    report = apply_policy(make_report(all_findings()), vex=statements, today=TODAY)
    assert suppressed_keys(report) == {"libc6:CVE-2024-33599"}  # under_investigation suppresses nothing
    assert suppressions(report)["libc6:CVE-2024-33599"].reason == (
        "not_affected (vulnerable_code_not_in_execute_path): nscd is not installed and not started in this image."
    )
    other_image = make_report(all_findings())
    other_image.analysis.image = replace(other_image.analysis.image, manifest_digest="sha256:" + "0" * 64)
    assert suppressed_keys(apply_policy(other_image, vex=statements, today=TODAY)) == set()


def openvex(*statements: dict[str, object]) -> str:
    return json.dumps({"@context": "https://openvex.dev/ns/v0.2.0", "statements": list(statements)})


def statement(status: str, timestamp: str, **extra: object) -> dict[str, object]:
    return {
        "vulnerability": {"name": "CVE-2024-2961"},
        "products": [{"@id": "pkg:deb/debian/libc6"}],
        "status": status,
        "timestamp": timestamp,
        **extra,
    }


@pytest.mark.parametrize(
    ("first", "second", "suppressed"), [("not_affected", "affected", False), ("affected", "not_affected", True)]
)
def test_the_latest_vex_statement_decides(first, second, suppressed):
    why = {"justification": "component_not_present"}
    older = statement(first, "2024-05-01T00:00:00Z", **(why if first == "not_affected" else {}))
    newer = statement(second, "2024-06-01T00:00:00Z", **(why if second == "not_affected" else {}))
    for doc in (openvex(older, newer), openvex(newer, older)):  # by time, not by order in the file
        report = apply_policy(make_report([make_libc6_finding()]), vex=parse_vex(doc), today=TODAY)
        assert (report.findings[0].suppression is not None) is suppressed


def test_openvex_v0_0_string_forms():
    doc = {
        "@context": "https://openvex.dev/ns",
        "statements": [
            {
                "vulnerability": "CVE-2024-2961",
                "products": ["pkg:oci/app?repository_url=registry.example.com/team/app"],
                "subcomponents": ["pkg:deb/debian/libc6"],
                "status": "not_affected",
                "impact_statement": "iconv is never called with ISO-2022-CN-EXT",
            }
        ],
    }
    report = apply_policy(make_report(all_findings()), vex=parse_vex(json.dumps(doc)), today=TODAY)
    assert suppressed_keys(report) == {"libc6:CVE-2024-2961"}
    assert (
        suppressions(report)["libc6:CVE-2024-2961"].reason == "not_affected: iconv is never called with ISO-2022-CN-EXT"
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            openvex(statement("not_affected", "2024-05-01T00:00:00Z")),
            r"statement 1: not_affected needs a justification",
        ),
        (openvex(statement("maybe", "2024-05-01T00:00:00Z")), r"statement 1: status 'maybe'"),
        (
            openvex(statement("not_affected", "2024-05-01T00:00:00Z", justification="trust_me")),
            r"justification 'trust_me'",
        ),
        (openvex(statement("fixed", "yesterday")), r"statement 1: timestamp 'yesterday'"),
        (openvex({**statement("fixed", "2024-05-01T00:00:00Z"), "products": []}), r"statement 1: no products"),
        (openvex({"status": "fixed", "products": [{"@id": "pkg:deb/debian/x"}]}), r"statement 1: no vulnerability"),
        (json.dumps({"document": {}, "vulnerabilities": []}), r"CSAF VEX is not supported"),
        (json.dumps({"hello": "world"}), r"neither OpenVEX"),
        ("{not json", r"not valid JSON"),
        (json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6"}), r"without vulnerabilities"),
        (
            json.dumps({"bomFormat": "CycloneDX", "vulnerabilities": [{"id": "CVE-1", "analysis": {"state": "fine"}}]}),
            r"vulnerability 1 \(CVE-1\): analysis.state 'fine'",
        ),
        (
            json.dumps(
                {"bomFormat": "CycloneDX", "vulnerabilities": [{"id": "CVE-1", "analysis": {"state": "not_affected"}}]}
            ),
            r"vulnerability 1 \(CVE-1\): affects names no component",
        ),
    ],
)
def test_bad_vex_is_a_policy_error_naming_the_statement(doc, message):
    with pytest.raises(PolicyError, match=message) as excinfo:
        parse_vex(doc, source="app.vex.json")
    assert str(excinfo.value).startswith("app.vex.json: ")


# --- CycloneDX VEX ------------------------------------------------------------------------------------------------


def test_cyclonedx_vex_fixture_is_valid_cyclonedx_1_6():
    text = (FIXTURES / "vex/cyclonedx-vex.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None


def test_cyclonedx_vex_suppresses_not_affected_and_false_positive_by_bom_ref_and_bom_link():
    statements = policy.load_vex(FIXTURES / "vex/cyclonedx-vex.json")
    report = apply_policy(make_report(all_findings()), vex=statements, today=TODAY)
    assert suppressed_keys(report) == {"lodash:CVE-2021-23337", "Django:CVE-2024-27351"}  # exploitable does not
    lodash = suppressions(report)["lodash:CVE-2021-23337"]
    assert lodash.reason == (
        "not_affected (code_not_reachable): The app never calls _.template; lodash is only used for deep cloning."
    )
    assert suppressions(report)["Django:CVE-2024-27351"].reason.startswith("false_positive: Django is vendored")
    cdx = json.loads(reports.to_cyclonedx(report))
    states = {v["id"]: v.get("analysis", {}).get("state") for v in cdx["vulnerabilities"]}
    assert states["CVE-2021-23337"] == "not_affected"
    assert states["CVE-2024-27351"] == "false_positive"


def test_vex_comes_before_the_ignore_file_and_existing_suppressions_stay():
    entries = parse_ignorefile("- id: CVE-2021-23337\n  reason: accepted\n")
    statements = policy.load_vex(FIXTURES / "vex/cyclonedx-vex.json")
    triaged = Suppression(by="triage", reason="accepted by the owner", source="service")
    findings = [make_lodash_finding(), make_django_finding(suppression=triaged)]
    report = apply_policy(make_report(findings), ignore=entries, vex=statements, today=TODAY)
    assert [f.suppression.by for f in report.findings] == ["vex", "triage"]


def test_apply_policy_returns_a_new_report():
    original = make_report(all_findings())
    entries = parse_ignorefile("- id: CVE-2024-2961\n  reason: r\n  expires: 2020-01-01\n")
    result = apply_policy(original, ignore=entries, today=TODAY)
    assert result is not original
    assert original.notes == []
    assert all(f.suppression is None for f in original.findings)
    assert len(result.notes) == 1


# --- the gate ------------------------------------------------------------------------------------------------------


def ids(findings: list[Finding]) -> set[str]:
    return {f.id for f in findings}


def test_gate_thresholds_and_ignore_unfixed():
    report = make_report(all_findings())
    high = {"CVE-2024-2961", "CVE-2023-4863", "CVE-2023-45853", "CVE-2021-23337"}
    assert ids(gate(report)) == high  # HIGH and CRITICAL by default
    assert ids(gate(report, severities={"CRITICAL"})) == {"CVE-2023-4863", "CVE-2023-45853"}
    assert ids(gate(report, severities=["medium", "HIGH", "CRITICAL"])) == high | {"CVE-2024-33599", "CVE-2024-27351"}
    # zlib's CRITICAL has no fix: --ignore-unfixed lets it through.
    assert ids(gate(report, ignore_unfixed=True)) == high - {"CVE-2023-45853"}
    assert ids(gate(report, severities=set())) == {f.id for f in report.findings}  # no filter, never "nothing fails"
    with pytest.raises(ValueError, match="unknown severity SEVERE"):
        gate(report, severities={"SEVERE"})


def test_suppressed_findings_do_not_fail_the_gate():
    statements = policy.load_vex(FIXTURES / "vex/cyclonedx-vex.json")
    report = apply_policy(make_report([make_lodash_finding(), make_kev_finding()]), vex=statements, today=TODAY)
    assert ids(gate(report)) == {"CVE-2023-4863"}
    clean = apply_policy(make_report([make_lodash_finding()]), vex=statements, today=TODAY)
    assert gate(clean) == []


def test_gate_counts_a_nonstandard_severity_as_unknown():
    odd = make_unfixed_finding(severity="important")
    assert gate(make_report([odd])) == []
    assert gate(make_report([odd]), severities={"UNKNOWN"}) == [odd]


def test_parse_severities():
    assert policy.parse_severities("high, CRITICAL,") == {"HIGH", "CRITICAL"}
    with pytest.raises(ValueError, match="unknown severity SEVERE"):
        policy.parse_severities("HIGH,SEVERE")


def test_nscd_finding_is_medium_so_that_it_passes_the_default_gate():
    assert gate(make_report([make_nscd_finding()])) == []


# --- hostile input: the parsers only ever raise PolicyError -------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
vex_keys = st.sampled_from(
    ["@context", "statements", "vulnerability", "products", "status", "justification", "impact_statement", "@id",
     "subcomponents", "identifiers", "purl", "timestamp", "bomFormat", "vulnerabilities", "id", "analysis", "state",
     "affects", "ref", "references", "components", "bom-ref", "metadata", "aliases", "name"]
)  # fmt: skip
vex_like = st.recursive(
    st.none()
    | st.text(max_size=30)
    | st.sampled_from(["not_affected", "CycloneDX", "pkg:deb/debian/libc6", "CVE-2024-2961"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(vex_keys, inner, max_size=6),
    max_leaves=25,
)


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [prefix]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        found += _paths(child, (*prefix, key))
    return found


def _replaced(doc: object, path: tuple[object, ...], value: object) -> object:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]  # type: ignore[index]
    parent[path[-1]] = value  # type: ignore[index]
    return doc


def _vex_bases() -> list[object]:
    bases = [json.loads((FIXTURES / "vex" / name).read_text()) for name in ("cyclonedx-vex.json", "openvex-image.json")]
    ubuntu = json.loads(
        openvex(statement("not_affected", "2024-05-01T00:00:00Z", justification="component_not_present"))
    )
    return [*bases, ubuntu]


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_vex_parser_only_raises_policy_error_on_damaged_documents(data):
    """Valid documents with one to three nodes replaced by arbitrary JSON: the parser's real attack surface."""
    doc = copy.deepcopy(data.draw(st.sampled_from(_vex_bases())))
    for _ in range(data.draw(st.integers(1, 3))):
        doc = _replaced(doc, data.draw(st.sampled_from(_paths(doc))), data.draw(json_values))
    try:
        statements = parse_vex(json.dumps(doc))
    except PolicyError:
        return
    apply_policy(make_report(all_findings()), vex=statements, today=TODAY)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | json_values.map(json.dumps))
def test_ignorefile_parser_only_raises_policy_error(text):
    try:
        entries = parse_ignorefile(text)
    except PolicyError:
        return
    apply_policy(make_report(all_findings()), ignore=entries, today=TODAY)


@settings(max_examples=500, deadline=None)
@given(vex_like | json_values)
def test_vex_parser_only_raises_policy_error(doc):
    try:
        statements = parse_vex(json.dumps(doc))
    except PolicyError:
        return
    apply_policy(make_report(all_findings()), vex=statements, today=TODAY)
