"""The matcher's pure part: lookups, OSV range semantics, statuses, merging, severity, KEV/EPSS. No database."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisories import matching
from advisories.importers.base import SeverityScore
from advisories.matching import Candidate, Enrichment, Lookup, RangeSpec, Record
from scans.engine.findings import FixState
from scans.engine.models import Distro, Layer, Package

DEBIAN = Distro("debian", "12", "bookworm")
ALPINE = Distro("alpine", "3.11.13")
NO_DISTRO = None


def record(vuln_id: str, source: str = "osv", pk: int | None = None, **fields) -> Record:
    return Record(pk=pk if pk is not None else hash(vuln_id) & 0xFFFFFF, id=vuln_id, source=source, **fields)


def row(rec: Record, ecosystem: str, package: str, *ranges: RangeSpec, **fields) -> Candidate:
    return Candidate(rec, ecosystem, package, ranges=ranges, **fields)


def osv_range(*events: tuple[str, str], kind: str = "ECOSYSTEM") -> RangeSpec:
    return RangeSpec(kind, events)


def pypi(name: str, version: str) -> Package:
    return Package("pypi", name, version, path="usr/lib/python3/site-packages/x.dist-info/METADATA")


def ids_of(result: matching.Result) -> set[tuple[str, str]]:
    return {(f.package.name, f.id) for f in result.findings}


# -- the matcher needs no Django ---------------------------------------------------------------------------------


def test_matching_imports_no_django():
    code = "import sys, advisories.matching\nassert not [m for m in sys.modules if m.split('.')[0] == 'django']"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# -- lookups -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("package", "distro", "expected"),
    [
        # Debian: the source package and its version; the release is VERSION_ID's major
        (Package("deb", "libc6", "2.36-9+deb12u4", source_name="glibc", source_version="2.36-9+deb12u4"),
         Distro("debian", "12"), Lookup("Debian", "debian", "12", ("glibc",), "2.36-9+deb12u4")),
        (Package("deb", "libpcre2-8-0", "10.42-1"), Distro("debian", "", "trixie"),
         Lookup("Debian", "debian", "13", ("libpcre2-8-0",), "10.42-1")),
        (Package("deb", "bash", "5.1-6ubuntu1", source_name="bash", source_version="5.1-6ubuntu1"),
         Distro("ubuntu", "22.04"), Lookup("Ubuntu", "ubuntu", "22.04", ("bash",), "5.1-6ubuntu1")),
        # Alpine: the origin, release major.minor; edge; Wolfi and Chainguard are rolling
        (Package("apk", "libcrypto1.1", "1.1.1l-r0", source_name="openssl"), Distro("alpine", "3.11.13"),
         Lookup("Alpine", "alpine", "3.11", ("openssl",), "1.1.1l-r0")),
        (Package("apk", "musl", "1.2.5-r0", source_name="musl"), Distro("alpine", "3.21.0_alpha20240807"),
         Lookup("Alpine", "alpine", "edge", ("musl",), "1.2.5-r0")),
        (Package("apk", "glibc", "2.39-r5", source_name="glibc"), Distro("wolfi", "20230201"),
         Lookup("Wolfi", "wolfi", "rolling", ("glibc",), "2.39-r5")),
        # rpm: name and source name; the epoch only when it is not 0; the module stream
        (Package("rpm", "curl", "7.61.1-22.el8", source_name="curl", epoch=None), Distro("rhel", "8.8"),
         Lookup("Red Hat", "rhel", "8", ("curl",), "7.61.1-22.el8")),
        (Package("rpm", "libuuid", "2.32.1-42.el8", source_name="util-linux", epoch=0), Distro("centos", "8"),
         Lookup("Red Hat", "rhel", "8", ("libuuid", "util-linux"), "2.32.1-42.el8")),
        (Package("rpm", "openssl-libs", "1.1.1k-9.el8", source_name="openssl", epoch=1), Distro("rocky", "8.9"),
         Lookup("Rocky Linux", "rocky", "8", ("openssl-libs", "openssl"), "1:1.1.1k-9.el8")),
        (Package("rpm", "nodejs", "18.14.2-2.module+el8", source_name="nodejs", epoch=1,
                 modularity_label="nodejs:18:8080020230425095526:63b34585"), Distro("almalinux", "8.8"),
         Lookup("AlmaLinux", "almalinux", "8", ("nodejs",), "1:18.14.2-2.module+el8", "nodejs:18")),
        (Package("rpm", "bash", "5.2.15-1.amzn2023.0.2", source_name="bash"), Distro("amzn", "2023"),
         Lookup("Amazon Linux", "amzn", "2023", ("bash",), "5.2.15-1.amzn2023.0.2")),
        # language packages: OSV ecosystem, normalised name, no distro
        (Package("pypi", "PyYAML", "5.3.1"), DEBIAN, Lookup("PyPI", names=("pyyaml",), version="5.3.1")),
        (Package("pypi", "zope.interface", "5.0"), NO_DISTRO, Lookup("PyPI", names=("zope-interface",),
                                                                     version="5.0")),
        (Package("npm", "@babel/core", "7.0.0"), DEBIAN, Lookup("npm", names=("@babel/core",), version="7.0.0")),
        (Package("maven", "org.yaml:snakeyaml", "1.23"), DEBIAN,
         Lookup("Maven", names=("org.yaml:snakeyaml",), version="1.23")),
        (Package("golang", "golang.org/x/sys", "v0.0.0-20210908233432-aa78b53d3365"), DEBIAN,
         Lookup("Go", names=("golang.org/x/sys",), version="0.0.0-20210908233432-aa78b53d3365")),
        (Package("golang", "stdlib", "go1.17.2"), DEBIAN, Lookup("Go", names=("stdlib",), version="1.17.2")),
        (Package("cargo", "smallvec", "1.6.0"), NO_DISTRO, Lookup("crates.io", names=("smallvec",), version="1.6.0")),
        (Package("composer", "Symfony/HTTP-Kernel", "4.4.0"), NO_DISTRO,
         Lookup("Packagist", names=("symfony/http-kernel",), version="4.4.0")),
    ],
)  # fmt: skip
def test_lookup(package, distro, expected):
    assert matching.lookup(package, distro) == expected


@pytest.mark.parametrize(
    ("toolchain", "semver"),
    [("go1.17.2", "1.17.2"), ("go1.17", "1.17.0"), ("go1.21rc2", "1.21.0-rc.2"), ("go1.9beta1", "1.9.0-beta.1"),
     ("go1.22.0 X:nocoverageredesign", "1.22.0"), ("v1.17.2", "1.17.2"), ("1.20.1", "1.20.1"),
     ("v2.0.0+incompatible", "2.0.0+incompatible"), ("(devel)", "(devel)")],
)  # fmt: skip
def test_go_versions_are_written_as_osv_writes_them(toolchain, semver):
    assert matching.go_version(toolchain) == semver


def test_os_packages_without_a_known_distro_are_unsupported_not_clean():
    packages = [Package("deb", "bash", "5.2"), Package("apk", "musl", "1.2"), Package("binary", "x", "1")]
    planned = matching.plan(packages, Distro("arch", "rolling"))
    assert planned.lookups == []
    assert planned.unsupported == {"deb packages on arch rolling": 1, "apk packages on arch rolling": 1}
    assert planned.unmatched_types == {"binary": 1}
    unknown = matching.plan(packages[:1], None)
    assert unknown.unsupported == {"deb packages in an image whose distribution is unknown": 1}


# -- OSV ranges ----------------------------------------------------------------------------------------------------

GHSA = record("GHSA-aaaa-bbbb-cccc", "osv")


def affected(version: str, *ranges: RangeSpec, ecosystem="PyPI", versions=()) -> bool:
    found = Lookup(ecosystem, names=("p",), version=version)
    return matching.match_candidate(found, row(GHSA, ecosystem, "p", *ranges, versions=versions)) is not None


@pytest.mark.parametrize(
    ("version", "expected"),
    [("0.9", True), ("1.0", True), ("1.4.9", True), ("1.5", False), ("2.0", False), ("0.0.1a1", True)],
)
def test_introduced_fixed(version, expected):
    assert affected(version, osv_range(("introduced", "0"), ("fixed", "1.5"))) is expected


@pytest.mark.parametrize(("version", "expected"), [("0.9", False), ("1.0", True), ("1.2", True), ("1.2.1", False)])
def test_introduced_last_affected(version, expected):
    assert affected(version, osv_range(("introduced", "1.0"), ("last_affected", "1.2"))) is expected


@pytest.mark.parametrize(("version", "expected"), [("1.0", True), ("1.9", True), ("2.0", False), ("9", False)])
def test_limit_bounds_the_range(version, expected):
    assert affected(version, osv_range(("introduced", "1.0"), ("limit", "2.0"))) is expected
    assert affected(version, osv_range(("introduced", "1.0"), ("limit", "*"))) is True


@pytest.mark.parametrize(
    ("version", "expected"),
    [("0.5", True), ("1.0", False), ("1.5", False), ("2.0", True), ("2.4", True), ("2.5", False), ("3.0", False)],
)
def test_several_intervals_in_one_range_and_unsorted_events(version, expected):
    events = (("introduced", "2.0"), ("fixed", "2.5"), ("introduced", "0"), ("fixed", "1.0"))
    assert affected(version, osv_range(*events)) is expected


@pytest.mark.parametrize(("version", "expected"), [("1.1", True), ("1.3", False), ("2.2", True), ("2.4", False)])
def test_several_ranges(version, expected):
    first = osv_range(("introduced", "1.0"), ("fixed", "1.2"))
    second = osv_range(("introduced", "2.0"), ("fixed", "2.3"))
    assert affected(version, first, second) is expected


def test_a_listed_version_takes_its_fix_from_the_ranges():
    rows = [row(GHSA, "PyPI", "django", osv_range(("introduced", "3.2"), ("fixed", "3.2.4")), versions=("3.2",))]
    (finding,) = matching.match([pypi("Django", "3.2")], NO_DISTRO, rows).findings
    assert (finding.fix_state, finding.fixed_versions) == (FixState.FIXED, ("3.2.4",))
    listed_only = [row(GHSA, "PyPI", "django", osv_range(("introduced", "4.0"), ("fixed", "4.0.1")), versions=("3.2",))]
    (finding,) = matching.match([pypi("Django", "3.2")], NO_DISTRO, listed_only).findings
    assert (finding.fix_state, finding.fixed_versions) == (FixState.AFFECTED, ())
    assert finding.evidence[0].range == "version 3.2 listed"


def test_explicit_versions_list_with_and_without_ranges():
    assert affected("3.2", versions=("3.1", "3.2"))
    assert affected("3.2.0", versions=("3.2",))  # PEP 440: the same version
    assert not affected("3.3", versions=("3.1", "3.2"))
    assert affected("3.2", osv_range(("introduced", "0"), ("fixed", "1.0")), versions=("3.2",))


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.0.0+build.5", False), ("1.0.0-rc.1+build", True), ("0.9.9+meta", True), ("v1.0.0", False)],
)
def test_semver_ranges_ignore_build_metadata(version, expected):
    spec = osv_range(("introduced", "0"), ("fixed", "1.0.0"), kind="SEMVER")
    assert affected(version, spec, ecosystem="npm") is expected


def test_semver_range_on_go_pseudo_versions_and_introduced_zero():
    spec = osv_range(("introduced", "0"), ("fixed", "0.0.0-20220412211240-33da011f77ad"), kind="SEMVER")
    assert affected("0.0.0-20210908233432-aa78b53d3365", spec, ecosystem="Go")
    assert not affected("0.0.0-20220412211240-33da011f77ad", spec, ecosystem="Go")
    assert not affected("0.1.0", spec, ecosystem="Go")


def test_git_ranges_are_ignored():
    spec = osv_range(("introduced", "0"), ("fixed", "a" * 40), kind="GIT")
    assert not affected("1.0", spec)


def test_fixed_versions_are_the_next_fix_of_each_matching_range():
    ranges = (
        osv_range(("introduced", "0"), ("fixed", "2.2.10-r0")),
        osv_range(("introduced", "0"), ("fixed", "2.4.2-r0")),
    )
    rec = record("CVE-2017-1", "alpine-secdb")
    rows = [row(rec, "Alpine", "wireshark", *ranges, distro="alpine", release="3.11", status="fixed")]
    old = Package("apk", "wireshark", "2.2.1-r0", source_name="wireshark")
    mid = Package("apk", "wireshark", "2.4.0-r0", source_name="wireshark")
    found = {f.package.version: f.fixed_versions for f in matching.match([old, mid], ALPINE, rows).findings}
    assert found == {"2.2.1-r0": ("2.2.10-r0", "2.4.2-r0"), "2.4.0-r0": ("2.4.2-r0",)}


def test_unparsable_installed_version_is_a_note_never_a_guess():
    rows = [row(record("GO-2022-0001"), "Go", "example.com/m", osv_range(("introduced", "0"), ("fixed", "1.2.0"),
                                                                          kind="SEMVER"))]  # fmt: skip
    result = matching.match([Package("golang", "example.com/m", "(devel)")], NO_DISTRO, rows)
    assert result.findings == []
    assert result.notes == ["golang example.com/m '(devel)' is not a Go version: GO-2022-0001 not checked"]


def test_unparsable_range_version_is_a_note_and_other_ranges_still_count():
    bad = row(record("PYSEC-1"), "PyPI", "p", osv_range(("introduced", "0"), ("fixed", "not a version!")))
    good = row(record("PYSEC-2"), "PyPI", "p", osv_range(("introduced", "0"), ("fixed", "2.0")))
    result = matching.match([pypi("p", "1.0")], NO_DISTRO, [bad, good])
    assert ids_of(result) == {("p", "PYSEC-2")}
    assert len(result.notes) == 1
    assert "PYSEC-1" in result.notes[0]
    assert "not a PyPI version" in result.notes[0]


# -- distro statuses and the rows that may never match ---------------------------------------------------------------

PERL = Package("deb", "perl-base", "5.36.0-7+deb12u3", source_name="perl", source_version="5.36.0-7+deb12u3",
               path="var/lib/dpkg/status", layer=Layer(0, "sha256:l0", "sha256:l0"))  # fmt: skip


def debian_row(vuln_id: str, status: str, *ranges: RangeSpec, release="12", severity="", source="debian-tracker"):
    rec = record(vuln_id, source)
    return row(rec, "Debian", "perl", *ranges, distro="debian", release=release, status=status, severity=severity)


FIXED_LATER = osv_range(("introduced", "0"), ("fixed", "5.36.0-7+deb12u4"))


@pytest.mark.parametrize(
    ("status", "ranges", "fix_state"),
    [
        ("fixed", (FIXED_LATER,), FixState.FIXED),
        ("affected", (), FixState.AFFECTED),
        ("will_not_fix", (), FixState.WILL_NOT_FIX),
        ("deferred", (), FixState.DEFERRED),
        ("not_affected", (), None),
        ("fixed", (osv_range(("introduced", "0"), ("fixed", "5.36.0-7+deb12u3")),), None),  # fixed in this version
        ("fixed", (osv_range(("introduced", "0"), ("fixed", "5.36.0-7")),), None),
    ],
)
def test_distro_statuses(status, ranges, fix_state):
    result = matching.match([PERL], DEBIAN, [debian_row("CVE-2023-1", status, *ranges)])
    assert [f.fix_state for f in result.findings] == ([fix_state] if fix_state else [])


def test_the_finding_carries_layer_path_fix_and_evidence():
    (finding,) = matching.match([PERL], DEBIAN, [debian_row("CVE-2023-1", "fixed", FIXED_LATER)]).findings
    assert finding.package is PERL
    assert finding.package.layer.index == 0
    assert finding.fixed_versions == ("5.36.0-7+deb12u4",)
    (evidence,) = finding.evidence
    assert (evidence.advisory_id, evidence.source, evidence.package, evidence.release) == (
        "CVE-2023-1", "debian-tracker", "perl", "12")  # fmt: skip
    assert evidence.matched_version == "5.36.0-7+deb12u3"
    assert evidence.range == "introduced 0, fixed 5.36.0-7+deb12u4"


def test_rows_of_other_releases_upstream_nvd_and_withdrawn_records_never_match():
    rows = [
        debian_row("CVE-2023-11", "fixed", FIXED_LATER, release="11"),
        debian_row("CVE-2023-13", "affected", release="13"),
        debian_row("CVE-2023-3", "fixed", FIXED_LATER, source="nvd"),
        row(record("CVE-2023-4", "osv"), "Debian", "perl-base", FIXED_LATER, distro="debian", release="12"),  # binary
        row(record("GHSA-perl-perl-perl"), "PyPI", "perl", osv_range(("introduced", "0"))),  # upstream, no distro
        row(record("CVE-2023-5", "debian-tracker", withdrawn=True), "Debian", "perl", FIXED_LATER, distro="debian",
            release="12", status="fixed"),
    ]  # fmt: skip
    assert matching.match([PERL], DEBIAN, rows).findings == []


def test_module_streams():
    nodejs = Package("rpm", "nodejs", "18.14.2-2.module+el8.8.0", source_name="nodejs", epoch=1,
                     modularity_label="nodejs:18:8080020230425095526:63b34585")  # fmt: skip
    fixed = osv_range(("introduced", "0"), ("fixed", "1:18.20.2-1.module+el8.9.0"))

    def rows(module):
        return [row(record("CVE-2024-1", "redhat-csaf"), "Red Hat", "nodejs", fixed, distro="rhel", release="8",
                    status="fixed", module=module)]  # fmt: skip

    assert ids_of(matching.match([nodejs], Distro("rhel", "8.8"), rows("nodejs:18"))) == {("nodejs", "CVE-2024-1")}
    assert matching.match([nodejs], Distro("rhel", "8.8"), rows("nodejs:20")).findings == []
    assert ids_of(matching.match([nodejs], Distro("rhel", "8.8"), rows(""))) == {("nodejs", "CVE-2024-1")}


def test_rpm_fixed_versions_without_epoch_0_compare_with_installed_epoch_0():
    curl = Package("rpm", "curl", "7.76.1-26.el9_3.2", source_name="curl", epoch=0)
    rows = [row(record("CVE-2023-38545", "redhat-csaf"), "Red Hat", "curl",
                osv_range(("introduced", "0"), ("fixed", "7.76.1-26.el9_3.3")), distro="rhel", release="9",
                status="fixed")]  # fmt: skip
    assert ids_of(matching.match([curl], Distro("rhel", "9.3"), rows)) == {("curl", "CVE-2023-38545")}
    curl.version = "7.76.1-26.el9_3.3"
    assert matching.match([curl], Distro("rhel", "9.3"), rows).findings == []


# -- one finding per vulnerability ---------------------------------------------------------------------------------

ANY = osv_range(("introduced", "0"), ("fixed", "9.0"))


def test_aliases_merge_into_one_finding_with_every_id():
    rows = [
        row(record("PYSEC-2021-1", aliases=("CVE-2021-33203", "GHSA-68w8-qjq3-2gfm")), "PyPI", "django", ANY),
        row(record("GHSA-68w8-qjq3-2gfm", aliases=("CVE-2021-33203",)), "PyPI", "django", ANY),
        row(record("GHSA-xxxx-yyyy-zzzz"), "PyPI", "django", ANY),  # another vulnerability
    ]
    result = matching.match([pypi("Django", "3.2")], NO_DISTRO, rows)
    assert [(f.id, f.aliases) for f in result.findings] == [
        ("CVE-2021-33203", ("GHSA-68w8-qjq3-2gfm", "PYSEC-2021-1")),
        ("GHSA-xxxx-yyyy-zzzz", ()),
    ]
    assert [e.advisory_id for e in result.findings[0].evidence] == ["GHSA-68w8-qjq3-2gfm", "PYSEC-2021-1"]


def test_preferred_id_is_cve_then_ghsa_then_the_first():
    assert matching.preferred_id(["PYSEC-1", "GHSA-a", "CVE-1"]) == "CVE-1"
    assert matching.preferred_id(["GO-2021-1", "GHSA-a"]) == "GHSA-a"
    assert matching.preferred_id(["GO-2021-1", "PYSEC-1"]) == "GO-2021-1"


def test_an_id_shared_by_several_cves_does_not_merge_them():
    # Alpine secdb: "CVE-2017-10920 XSA-224", "CVE-2017-10921 XSA-224", "CVE-2017-10922 XSA-224"
    cves = ("CVE-2017-10920", "CVE-2017-10921", "CVE-2017-10922")
    rows = [row(record(cve, "alpine-secdb", aliases=("XSA-224",)), "Alpine", "xen", ANY, distro="alpine",
                release="3.11", status="fixed") for cve in cves]  # fmt: skip
    xen = Package("apk", "xen", "4.9.0-r0", source_name="xen")
    result = matching.match([xen], ALPINE, rows)
    assert [f.id for f in result.findings] == ["CVE-2017-10920", "CVE-2017-10921", "CVE-2017-10922"]
    assert result.findings[0].aliases == ("XSA-224",)


def test_a_record_naming_two_cves_keeps_the_second_as_an_alias():
    rows = [row(record("GHSA-two-cves-here", aliases=("CVE-2020-2", "CVE-2020-1")), "npm", "x", ANY)]
    (finding,) = matching.match([Package("npm", "x", "1.0.0")], NO_DISTRO, rows).findings
    assert finding.id == "CVE-2020-1"
    assert set(finding.aliases) == {"CVE-2020-2", "GHSA-two-cves-here"}


def test_upstream_and_related_ids_are_not_merged_except_a_distro_cve_record():
    ubuntu = Distro("ubuntu", "22.04")
    openssl = Package("deb", "libssl3", "3.0.2-0ubuntu1", source_name="openssl", source_version="3.0.2-0ubuntu1")

    def ubuntu_row(rec):
        return row(rec, "Ubuntu", "openssl", osv_range(("introduced", "0"), ("fixed", "3.0.2-0ubuntu1.10")),
                   distro="ubuntu", release="22.04", status="fixed")  # fmt: skip

    rows = [
        ubuntu_row(record("USN-6000-1", "ubuntu", upstream=("CVE-2023-1", "CVE-2023-2"))),
        ubuntu_row(record("UBUNTU-CVE-2023-1", "ubuntu", upstream=("CVE-2023-1",))),
        ubuntu_row(record("UBUNTU-CVE-2023-2", "ubuntu", upstream=("CVE-2023-2",))),
    ]
    result = matching.match([openssl], ubuntu, rows)
    assert [(f.id, f.aliases) for f in result.findings] == [
        ("CVE-2023-1", ("UBUNTU-CVE-2023-1",)),
        ("CVE-2023-2", ("UBUNTU-CVE-2023-2",)),
        ("USN-6000-1", ()),
    ]


def test_fix_state_of_a_merged_finding_is_the_most_actionable():
    rows = [debian_row("CVE-2023-1", "will_not_fix"), debian_row("CVE-2023-1", "fixed", FIXED_LATER, source="osv")]
    (finding,) = matching.match([PERL], DEBIAN, rows).findings
    assert finding.fix_state == FixState.FIXED
    assert finding.fixed_versions == ("5.36.0-7+deb12u4",)


# -- severity ------------------------------------------------------------------------------------------------------

CVSS_GHSA = SeverityScore("CVSS_V3", "ghsa", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, "CRITICAL")
CVSS_NVD = SeverityScore("CVSS_V3", "nvd", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", 5.3, "MEDIUM")
CVSS_NVD_V2 = SeverityScore("CVSS_V2", "nvd", "AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5, "HIGH")


def severity_of(package, distro, rows, severities):
    enrichment = Enrichment(severities=severities)
    (finding,) = matching.match([package], distro, rows, enrichment).findings
    return finding.severity, finding.severity_source, finding.cvss_vector, finding.cvss_score


def test_the_distro_rating_of_the_package_comes_first_for_distro_packages():
    rows = [debian_row("CVE-2023-1", "fixed", FIXED_LATER, severity="low")]
    scores = {"CVE-2023-1": [CVSS_GHSA, CVSS_NVD, SeverityScore("vendor", "debian", rating="high")]}
    assert severity_of(PERL, DEBIAN, rows, scores) == ("LOW", "debian", CVSS_GHSA.vector, 9.8)


def test_the_distro_advisory_rating_when_the_row_has_none():
    rows = [debian_row("CVE-2023-1", "fixed", FIXED_LATER, severity="not yet assigned")]
    scores = {"CVE-2023-1": [CVSS_NVD, SeverityScore("vendor", "debian", rating="medium")]}
    assert severity_of(PERL, DEBIAN, rows, scores) == ("MEDIUM", "debian", CVSS_NVD.vector, 5.3)


def test_not_yet_assigned_falls_through_to_ghsa_then_nvd():
    rows = [debian_row("CVE-2023-1", "fixed", FIXED_LATER, severity="not yet assigned")]
    ghsa = SeverityScore("vendor", "ghsa", rating="MODERATE")
    assert severity_of(PERL, DEBIAN, rows, {"CVE-2023-1": [CVSS_NVD, ghsa]})[:2] == ("MEDIUM", "ghsa")
    assert severity_of(PERL, DEBIAN, rows, {"CVE-2023-1": [CVSS_NVD]}) == ("MEDIUM", "nvd", CVSS_NVD.vector, 5.3)
    assert severity_of(PERL, DEBIAN, rows, {}) == ("UNKNOWN", "", "", None)


@pytest.mark.parametrize(
    ("word", "severity"),
    [("unimportant", "LOW"), ("negligible", "LOW"), ("low", "LOW"), ("Moderate", "MEDIUM"), ("Important", "HIGH"),
     ("high**", ""), ("critical", "CRITICAL"), ("not yet assigned", ""), ("end-of-life", ""), ("untriaged", "")],
)  # fmt: skip
def test_severity_words(word, severity):
    assert matching.normalize_severity(word) == severity


def test_language_packages_ignore_distro_ratings_and_prefer_ghsa_over_nvd():
    rows = [row(record("GHSA-aaaa-bbbb-cccc", "osv", aliases=("CVE-2021-1",)), "PyPI", "p", ANY)]
    scores = {
        "CVE-2021-1": [SeverityScore("vendor", "debian", rating="high"), CVSS_NVD],
        "GHSA-aaaa-bbbb-cccc": [SeverityScore("vendor", "ghsa", rating="LOW"), CVSS_GHSA],
    }
    assert severity_of(pypi("p", "1.0"), NO_DISTRO, rows, scores) == ("LOW", "ghsa", CVSS_GHSA.vector, 9.8)
    del scores["GHSA-aaaa-bbbb-cccc"]
    assert severity_of(pypi("p", "1.0"), NO_DISTRO, rows, scores) == ("MEDIUM", "nvd", CVSS_NVD.vector, 5.3)


def test_cvss_v3_is_kept_over_v2_of_the_same_source():
    rows = [row(record("CVE-2021-1", "osv"), "PyPI", "p", ANY)]
    assert severity_of(pypi("p", "1.0"), NO_DISTRO, rows, {"CVE-2021-1": [CVSS_NVD_V2, CVSS_NVD]}) == (
        "MEDIUM", "nvd", CVSS_NVD.vector, 5.3)  # fmt: skip
    assert severity_of(pypi("p", "1.0"), NO_DISTRO, rows, {"CVE-2021-1": [CVSS_NVD_V2]})[:2] == ("HIGH", "nvd")


# -- KEV and EPSS --------------------------------------------------------------------------------------------------


def test_kev_and_epss_attach_by_any_cve_of_the_finding():
    rows = [row(record("GHSA-jfh8-c2jp-5v3q", aliases=("CVE-2021-44228", "CVE-2021-45046")), "Maven",
                "org.apache.logging.log4j:log4j-core", ANY)]  # fmt: skip
    enrichment = Enrichment(
        kev={"CVE-2021-45046": date(2023, 5, 1), "CVE-2021-44228": date(2021, 12, 10)},
        epss={"CVE-2021-44228": (0.944, 0.9999), "CVE-2021-45046": (0.5, 0.9)},
    )
    package = Package("maven", "org.apache.logging.log4j:log4j-core", "2.14.1")
    (finding,) = matching.match([package], NO_DISTRO, rows, enrichment).findings
    assert finding.id == "CVE-2021-44228"
    assert (finding.kev, finding.kev_date_added) == (True, date(2021, 12, 10))
    assert (finding.epss_score, finding.epss_percentile) == (0.944, 0.9999)
    (plain,) = matching.match([package], NO_DISTRO, rows).findings
    assert (plain.kev, plain.kev_date_added, plain.epss_score) == (False, None, None)


# -- never raises --------------------------------------------------------------------------------------------------

VERSION_TEXT = st.one_of(
    st.text(max_size=24),
    st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}([-+~_.:][0-9a-zA-Z.]{0,6}){0,3}", fullmatch=True),
    st.sampled_from(["0", "*", "", "v1", "1:", ":1", "1.0-", "go1.17", "(devel)", "1.0.0+a+b", "-1"]),
)
EVENT = st.tuples(st.sampled_from(["introduced", "fixed", "last_affected", "limit", "bogus"]), VERSION_TEXT)
RANGE = st.builds(RangeSpec, st.sampled_from(["ECOSYSTEM", "SEMVER", "GIT", "OTHER"]),
                  st.lists(EVENT, max_size=5).map(tuple))  # fmt: skip
ECOSYSTEM = st.sampled_from(["PyPI", "npm", "Go", "Maven", "crates.io", "RubyGems", "NuGet", "Packagist", "Debian",
                             "Alpine", "Red Hat"])  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ecosystem=ECOSYSTEM,
    version=VERSION_TEXT,
    ranges=st.lists(RANGE, max_size=3),
    listed=st.lists(VERSION_TEXT, max_size=3),
    status=st.sampled_from(["", "fixed", "affected", "not_affected"]),
)
def test_matching_never_raises(ecosystem, version, ranges, listed, status):
    found = Lookup(ecosystem, names=("p",), version=version)
    candidate = row(record("X-1"), ecosystem, "p", *ranges, versions=tuple(listed), status=status)
    notes: set[str] = set()
    result = matching.evaluate_package(Package("pypi", "p", version), found, [candidate], notes)
    findings = matching.build_findings([result], Enrichment())
    assert len(findings) <= 1
    assert all(f.fix_state in FixState.ALL for f in findings)
