"""make_* factories for reports: small, realistic findings as the matcher hands them over."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from scans.engine.findings import DatabaseState, Evidence, Finding, FixState, Report
from scans.engine.models import Analysis, Distro, ImageMeta, Layer, Package, Platform
from scans.engine.purls import language_purl, purl_for

BASE_LAYER = Layer(
    index=0,
    digest="sha256:7d7d1ce1d9e1c3b1b0c9c7b6f7a0f6e0d4f1f0a2c7f3d3b5e8a1c2d3e4f5a6b7",
    diff_id="sha256:1f5e1c2d3b4a5968778695a4b3c2d1e0f9e8d7c6b5a49382716051f4e3d2c1b0",
    media_type="application/vnd.oci.image.layer.v1.tar+gzip",
    size=29_125_374,
)
APP_LAYER = Layer(
    index=3,
    digest="sha256:a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2",
    diff_id="sha256:b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3",
    media_type="application/vnd.oci.image.layer.v1.tar+gzip",
    size=4_511_203,
)
DEBIAN_12 = Distro(id="debian", version_id="12", codename="bookworm", pretty_name="Debian GNU/Linux 12 (bookworm)")


def make_image(**overrides: object) -> ImageMeta:
    image = ImageMeta(
        reference="registry.example.com/team/app:1.4",
        manifest_digest="sha256:5b0b93d32bd0ed1ce5f9a9bd2f67d0b97b3c6ec6dbd3b1e7dc5a8a7c8e3c2f10",
        config_digest="sha256:0c1e2d3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d",
        media_type="application/vnd.oci.image.manifest.v1+json",
        platform=Platform(),
        repo_tags=("registry.example.com/team/app:1.4",),
        layers=(BASE_LAYER, APP_LAYER),
    )
    return replace(image, **overrides)  # type: ignore[arg-type]


def make_deb(
    name: str, version: str, source: str = "", source_version: str = "", distro: Distro = DEBIAN_12
) -> Package:
    package = Package(
        type="deb",
        name=name,
        version=version,
        arch="amd64",
        source_name=source or name,
        source_version=source_version or version,
        path="var/lib/dpkg/status",
        layer=BASE_LAYER,
    )
    package.purl = purl_for(package, distro)
    return package


def make_language_package(purl_type: str, name: str, version: str, path: str) -> Package:
    return Package(
        type=purl_type,
        name=name,
        version=version,
        path=path,
        layer=APP_LAYER,
        purl=language_purl(purl_type, name, version),
    )


def make_libc6_finding(**overrides: object) -> Finding:
    """glibc's iconv overflow on Debian 12, decided by the Debian tracker through DSA-5673-1."""
    package = make_deb("libc6", "2.36-9+deb12u3", source="glibc")
    finding = Finding(
        id="CVE-2024-2961",
        aliases=(),
        package=package,
        fix_state=FixState.FIXED,
        fixed_versions=("2.36-9+deb12u7",),
        severity="HIGH",
        severity_source="debian",
        cvss_vector="CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H",
        cvss_score=8.1,
        title="glibc: out-of-bounds write in iconv() converting to ISO-2022-CN-EXT",
        description=(
            "The iconv() function in the GNU C Library versions 2.39 and older may overflow the output buffer "
            "passed to it by up to 4 bytes when converting strings to the ISO-2022-CN-EXT character set."
        ),
        references=(
            "https://security-tracker.debian.org/tracker/CVE-2024-2961",
            "https://www.openwall.com/lists/oss-security/2024/04/17/9",
        ),
        cwes=("CWE-787",),
        epss_score=0.62718,
        epss_percentile=0.98012,
        evidence=(
            Evidence(
                advisory_id="DSA-5673-1",
                source="debian-tracker",
                feed="debian-tracker-derived",
                ecosystem="Debian:12",
                distro="debian",
                release="bookworm",
                package="glibc",
                matched_version="2.36-9+deb12u3",
                range="introduced 0, fixed 2.36-9+deb12u7",
                status="resolved",
            ),
        ),
    )
    return replace(finding, **overrides)  # type: ignore[arg-type]


def make_nscd_finding(**overrides: object) -> Finding:
    """A glibc nscd bug on libc6: the VEX fixture says nscd is not present."""
    finding = make_libc6_finding(
        id="CVE-2024-33599",
        severity="MEDIUM",
        cvss_vector="CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H",
        cvss_score=5.9,
        title="glibc: stack-based buffer overflow in netgroup cache of nscd",
        description="nscd: a stack-based buffer overflow in its netgroup cache.",
        references=("https://security-tracker.debian.org/tracker/CVE-2024-33599",),
        cwes=("CWE-121",),
        epss_score=None,
        epss_percentile=None,
    )
    return replace(finding, **overrides)  # type: ignore[arg-type]


def make_django_finding(**overrides: object) -> Finding:
    """A PyPI finding from a GitHub advisory, keyed by its CVE, the GHSA and PYSEC ids as aliases."""
    package = make_language_package(
        "pypi", "Django", "4.2.10", "usr/local/lib/python3.11/site-packages/Django-4.2.10.dist-info/METADATA"
    )
    finding = Finding(
        id="CVE-2024-27351",
        aliases=("GHSA-vm8q-m57g-pff3", "PYSEC-2024-47"),
        package=package,
        fix_state=FixState.FIXED,
        fixed_versions=("4.2.11",),
        severity="MEDIUM",
        severity_source="ghsa",
        cvss_vector="CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H",
        cvss_score=5.9,
        title="Django Regular expression denial-of-service in django.utils.text.Truncator.words()",
        description="Truncator.words() with html=True is subject to a potential regular expression denial-of-service.",
        references=(
            "https://github.com/advisories/GHSA-vm8q-m57g-pff3",
            "https://www.djangoproject.com/weblog/2024/mar/04/security-releases/",
        ),
        cwes=("CWE-1333",),
        evidence=(
            Evidence(
                advisory_id="GHSA-vm8q-m57g-pff3",
                source="osv",
                feed="osv-pypi",
                ecosystem="PyPI",
                package="django",
                matched_version="4.2.10",
                range="introduced 4.2, fixed 4.2.11",
            ),
        ),
    )
    return replace(finding, **overrides)  # type: ignore[arg-type]


def make_kev_finding(**overrides: object) -> Finding:
    """libwebp's heap overflow: on CISA's Known Exploited Vulnerabilities list."""
    finding = Finding(
        id="CVE-2023-4863",
        aliases=(),
        package=make_deb("libwebp7", "1.2.4-0.2", source="libwebp"),
        fix_state=FixState.FIXED,
        fixed_versions=("1.2.4-0.2+deb12u1",),
        severity="CRITICAL",
        severity_source="nvd",
        cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H",
        cvss_score=8.8,
        title="libwebp: heap buffer overflow in WebP codec",
        references=("https://security-tracker.debian.org/tracker/CVE-2023-4863",),
        cwes=("CWE-787",),
        kev=True,
        kev_date_added=date(2023, 9, 13),
        epss_score=0.93471,
        epss_percentile=0.99814,
    )
    return replace(finding, **overrides)  # type: ignore[arg-type]


def make_unfixed_finding(**overrides: object) -> Finding:
    """zlib's MiniZip overflow: Debian will not fix it in bookworm."""
    finding = Finding(
        id="CVE-2023-45853",
        aliases=(),
        package=make_deb("zlib1g", "1:1.2.13.dfsg-1", source="zlib"),
        fix_state=FixState.WILL_NOT_FIX,
        severity="CRITICAL",
        severity_source="nvd",
        cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        cvss_score=9.8,
        title="zlib: integer overflow and heap overflow in MiniZip zipOpenNewFileInZip4_64",
        cwes=("CWE-190",),
    )
    return replace(finding, **overrides)  # type: ignore[arg-type]


def make_lodash_finding(**overrides: object) -> Finding:
    finding = Finding(
        id="CVE-2021-23337",
        aliases=("GHSA-35jh-r3h4-6jhm",),
        package=make_language_package("npm", "lodash", "4.17.20", "app/node_modules/lodash/package.json"),
        fix_state=FixState.FIXED,
        fixed_versions=("4.17.21",),
        severity="HIGH",
        severity_source="ghsa",
        cvss_vector="CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H",
        cvss_score=7.2,
        title="Command Injection in lodash",
        references=("https://github.com/advisories/GHSA-35jh-r3h4-6jhm",),
        cwes=("CWE-77", "CWE-94"),
    )
    return replace(finding, **overrides)  # type: ignore[arg-type]


def make_low_unknown_findings() -> list[Finding]:
    """A LOW distro finding, and an npm one whose rating is left out on purpose: every severity shows up."""
    low = Finding(
        id="CVE-2011-3374",
        aliases=(),
        package=make_deb("apt", "2.6.1"),
        fix_state=FixState.AFFECTED,
        severity="LOW",
        severity_source="debian",
        title="apt: does not correctly validate downloaded keys",
    )
    unknown = Finding(
        id="GHSA-vh95-rmgr-6w4m",
        aliases=(),
        package=make_language_package("npm", "minimist", "1.2.5", "app/node_modules/minimist/package.json"),
        fix_state=FixState.FIXED,
        fixed_versions=("1.2.6",),
    )
    return [low, unknown]


def make_database(**overrides: object) -> DatabaseState:
    state = DatabaseState(
        sources=("debian-tracker", "kev", "osv"),
        last_sync="2025-01-14T06:00:00+00:00",
        age_hours=30.0,
        empty=False,
        stale=False,
    )
    return replace(state, **overrides)  # type: ignore[arg-type]


def make_report(findings: list[Finding], *, extra_packages: tuple[Package, ...] = (), **overrides: object) -> Report:
    """A report over an inventory holding each finding's package once, plus `extra_packages`."""
    packages: list[Package] = []
    for package in [f.package for f in findings] + list(extra_packages):
        if package not in packages:
            packages.append(package)
    analysis = Analysis(image=make_image(), distro=DEBIAN_12, packages=packages, analyzers={"dpkg": 1, "python": 1})
    report = Report(analysis=analysis, findings=list(findings), database=make_database())
    return replace(report, **overrides)  # type: ignore[arg-type]


def all_findings() -> list[Finding]:
    return [
        make_libc6_finding(),
        make_nscd_finding(),
        make_django_finding(),
        make_kev_finding(),
        make_unfixed_finding(),
        make_lodash_finding(),
        *make_low_unknown_findings(),
    ]
