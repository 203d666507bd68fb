"""Matching real images against real feeds in PostgreSQL, checked against expectations computed independently.

Every expected set is computed here from the raw published files (secdb YAML,
tracker JSON, OSV YAML/JSON) and the image's own package data, read without
the engine's catalogers and without advisories.matching or
advisories.versions:

- apk: a small apk-version key written here from apk-tools' rules (numbers,
  letter, _suffixes, -rN), independent of advisories.versions so a shared bug
  cannot hide itself; the installed database is read straight from the layer.
- deb: `dpkg-query` on the unpacked image and `dpkg --compare-versions`.
- PyPI: importlib.metadata on the unpacked site-packages and packaging.version.
- Go: `go version -m` when Go is installed, else the build info decoded by a
  few lines here (the ELF/buildinfo layout), and npm's own node-semver for
  SemVer precedence.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import json
import re
import shutil
import struct
import subprocess
import tarfile
import zipfile
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion
from packaging.version import Version as PepVersion

from advisories.findings import database_state, match_analysis
from advisories.models import Advisory, Affected, Alias, AliasKind, Epss, FeedSync, Kev, Severity, SyncState
from advisories.sync import sync_feed
from scans.engine.models import Analysis, Distro, ImageMeta, Layer, Package
from scans.engine.targets import scan
from tests.advisories.test_sync import feed_path
from tests.conftest import corpus_file
from tests.engine.test_corpus import unpack

pytestmark = pytest.mark.django_db

DPKG = shutil.which("dpkg")
NODE = shutil.which("node")
GO = shutil.which("go")
NODE_SEMVER = Path("/usr/lib/node_modules/npm/node_modules/semver")
needs_dpkg = pytest.mark.skipif(DPKG is None, reason="dpkg (dpkg-query, dpkg --compare-versions) is not installed")

ALPINE_YAML = "alpine-secdb/yaml"
BOOKWORM = "debian-tracker-derived/bookworm.json"
OSV_PYPI = "osv-pypi/pypa-advisory-database-vulns.tar.gz"
OSV_GO = "osv-go/all.zip"


def sync(source: str, relative: str) -> FeedSync:
    run = sync_feed(source, str(feed_path(relative)))
    assert run.state == SyncState.SUCCEEDED, run.error
    return run


@functools.cache
def analysed(archive: str) -> Analysis:
    return scan(str(corpus_file(archive)))


@pytest.fixture(scope="module")
def debian_root(tmp_path_factory) -> Path:
    return unpack(corpus_file("debian12-app.docker.tar"), tmp_path_factory.mktemp("debian12-app") / "root")


def analysis_of(packages: list[Package], distro: Distro | None = None) -> Analysis:
    return Analysis(ImageMeta(reference="test"), distro, packages)


def cve_pairs(report) -> set[tuple[str, str]]:
    return {(f.package.name, i) for f in report.findings for i in f.all_ids if i.startswith("CVE-")}


# -- Alpine --------------------------------------------------------------------------------------------------------

_APK = re.compile(
    r"(?P<nums>\d+(?:\.\d+)*)(?P<letter>[a-z]?)(?P<suffixes>(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)"
    r"(?:-r(?P<rev>\d+))?"
)
_APK_SUFFIXES = ["alpha", "beta", "pre", "rc", "", "cvs", "svn", "git", "hg", "p"]  # "": no suffix
# secdb writes some ids with typos ("CVE_2019-2426"); the importer's reading of them (alpine_secdb._CVE) is the spec.
_SECDB_CVE = re.compile(r"\bCVE[-_ ]?(\d{4})-(\d{4,})")


def apk_key(version: str) -> tuple:
    """apk-tools' order for the versions seen here: numbers, then a letter, then _suffixes (pre-releases before
    the plain version, post-releases after), then -rN. Zero-led numbers, ~hash parts are not handled: asserted."""
    m = _APK.fullmatch(version)
    assert m, f"{version} is outside what this reference reads"
    found = re.findall(r"_([a-z]+)(\d*)", m["suffixes"])
    suffixes = [(_APK_SUFFIXES.index(name), int(n or 0)) for name, n in found] or [(_APK_SUFFIXES.index(""), 0)]
    return tuple(int(n) for n in m["nums"].split(".")), m["letter"], suffixes, int(m["rev"] or 0)


def apk_installed(archive: Path) -> list[tuple[str, str, str]]:
    """(name, version, origin) from lib/apk/db/installed of the image's only layer."""
    with tarfile.open(archive) as outer:
        (layer,) = json.load(outer.extractfile("manifest.json"))[0]["Layers"]
        with tarfile.open(fileobj=io.BytesIO(outer.extractfile(layer).read())) as inner:
            text = inner.extractfile("lib/apk/db/installed").read().decode()
    packages = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if line[1:2] == ":")
        packages.append((fields["P"], fields["V"], fields.get("o", fields["P"])))
    return packages


def secdb_fixes(release: str) -> dict[str, list[tuple[str, str]]]:
    """origin -> [(fixed version, CVE)] from the raw secdb YAML of one release (main and community)."""
    fixes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path in sorted(feed_path(f"{ALPINE_YAML}/v{release}").glob("*.yaml")):
        for item in yaml.safe_load(path.read_text()).get("packages") or []:
            for version, entries in (item["pkg"].get("secfixes") or {}).items():
                for entry in entries or []:
                    fixes[item["pkg"]["name"]] += [(str(version), f"CVE-{y}-{n}") for y, n in _SECDB_CVE.findall(entry)]
    return fixes


def secdb_expected(archive: Path, release: str) -> dict[tuple[str, str], set[str]]:
    """(package, CVE) -> fixed versions above the installed one: what must be reported."""
    fixes = secdb_fixes(release)
    expected: dict[tuple[str, str], set[str]] = defaultdict(set)
    for name, version, origin in apk_installed(archive):
        for fixed, cve in fixes.get(origin, ()):
            if fixed != "0" and apk_key(version) < apk_key(fixed):
                expected[(name, cve)].add(fixed)
    return dict(expected)


@pytest.mark.parametrize(("image", "release"), [("alpine37", "3.7"), ("alpine311", "3.11")])
def test_alpine_every_fix_above_the_installed_version_is_reported_and_nothing_else(image, release):
    sync("alpine-secdb", ALPINE_YAML)  # every release, v3.3 to v3.11: the others must not leak in
    archive = corpus_file(f"{image}.docker.tar")
    report = match_analysis(analysed(f"{image}.docker.tar"))
    expected = secdb_expected(archive, release)

    # the release's data covers the image (alpine311's 3.11.13 of 2021 is past every fix of the 2020 files, so
    # nothing is expected there; alpine37 has two)
    assert {origin for *_, origin in apk_installed(archive)} & set(secdb_fixes(release))
    assert len(expected) == {"3.7": 2, "3.11": 0}[release]
    assert cve_pairs(report) == set(expected)
    for finding in report.findings:
        assert finding.fix_state == "fixed"
        assert {e.release for e in finding.evidence} == {release}
        wanted = set().union(*(expected[(finding.package.name, i)] for i in finding.all_ids if i.startswith("CVE-")))
        assert set(finding.fixed_versions) == wanted, finding.id
        assert finding.package.layer is not None
        assert finding.package.path == "lib/apk/db/installed"
    assert report.unsupported == ""
    assert report.notes == []
    assert not report.database.empty
    assert "alpine-secdb" in report.database.sources


ALPINE_RELEASES = ("3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11")


def test_alpine37_gets_no_rows_of_other_releases():
    sync("alpine-secdb", ALPINE_YAML)
    archive = corpus_file("alpine37.docker.tar")
    report = match_analysis(analysed("alpine37.docker.tar"))
    own = set(secdb_expected(archive, "3.7"))
    traps = set().union(*(secdb_expected(archive, r) for r in ALPINE_RELEASES if r != "3.7")) - own
    assert traps, "no (package, CVE) tells the releases apart; the test would prove nothing"
    assert not traps & cve_pairs(report)
    assert {(e.distro, e.release) for f in report.findings for e in f.evidence} == {("alpine", "3.7")}


def test_alpine311_gets_only_v311_rows():
    sync("alpine-secdb", ALPINE_YAML)
    archive = corpus_file("alpine311.docker.tar")
    # 3.11.13 (2021) is newer than every fix in the secdb files (2020): no release's rows hold its versions ...
    assert not any(secdb_expected(archive, r) for r in ALPINE_RELEASES)
    assert match_analysis(analysed("alpine311.docker.tar")).findings == []
    # ... so a later fix of musl is added, in a neighbouring release and then in 3.11 itself
    row = Affected.objects.filter(advisory__advisory_id="CVE-2019-14697", release="3.11", package="musl").get()
    later = [{"type": "ECOSYSTEM", "events": [["introduced", "0"], ["fixed", "1.1.24-r10"]]}]
    Affected.objects.filter(pk=row.pk).update(ranges=later, release="3.12")
    Affected.objects.create(advisory=row.advisory, ecosystem="Alpine", distro="alpine", release="3.10",
                            package="musl", ranges=later, status="fixed")  # fmt: skip
    assert match_analysis(analysed("alpine311.docker.tar")).findings == []
    Affected.objects.filter(pk=row.pk).update(release="3.11")
    report = match_analysis(analysed("alpine311.docker.tar"))
    assert cve_pairs(report) == {("musl", "CVE-2019-14697"), ("musl-utils", "CVE-2019-14697")}
    assert {(e.distro, e.release) for f in report.findings for e in f.evidence} == {("alpine", "3.11")}


@pytest.mark.parametrize(("image", "release"), [("alpine37", "3.7"), ("alpine311", "3.11")])
def test_a_package_fixed_in_its_installed_version_does_not_match(image, release):
    sync("alpine-secdb", ALPINE_YAML)
    installed = apk_installed(corpus_file(f"{image}.docker.tar"))
    fixes = secdb_fixes(release)
    already_fixed = {
        (name, cve)
        for name, version, origin in installed
        for fixed, cve in fixes.get(origin, ())
        if fixed != "0" and apk_key(fixed) <= apk_key(version)
    }
    assert already_fixed
    assert not already_fixed & cve_pairs(match_analysis(analysed(f"{image}.docker.tar")))


def test_a_fix_released_in_exactly_the_installed_version_does_not_match():
    sync("alpine-secdb", ALPINE_YAML)
    # libressl 2.6.5-r0 in alpine37; v3.7/main.yaml: 2.6.5-r0 fixed CVE-2018-0732 and CVE-2018-0495
    assert ("2.6.5-r0", "CVE-2018-0732") in secdb_fixes("3.7")["libressl"]
    reported = cve_pairs(match_analysis(analysed("alpine37.docker.tar")))
    assert not {cve for name, cve in reported if name.startswith("libressl")} & {"CVE-2018-0732", "CVE-2018-0495"}


def test_a_release_without_data_is_reported_unsupported_never_clean():
    sync("alpine-secdb", ALPINE_YAML)  # v3.3 to v3.11 only
    report = match_analysis(analysed("alpine320.docker.tar"))
    assert report.findings == []
    assert report.unsupported == (
        "alpine 3.20: the advisory database has no Alpine data for this release; 14 package(s) not checked"
    )


# -- Debian --------------------------------------------------------------------------------------------------------


def dpkg_lt(a: str, b: str) -> bool:
    return subprocess.run([DPKG, "--compare-versions", a, "lt", b], check=False).returncode == 0


@needs_dpkg
def test_debian_every_listed_fix_is_reported_on_every_binary_of_its_source(debian_root):
    sync("debian-tracker", BOOKWORM)
    tracker = json.loads(feed_path(BOOKWORM).read_text())
    listing = subprocess.run(
        ["dpkg-query", f"--admindir={debian_root}/var/lib/dpkg", "-W", "-f",
         "${Package}\t${source:Package}\t${source:Version}\n"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    expected = {}
    for line in listing.splitlines():
        binary, source, source_version = line.split("\t")
        for cve, entry in tracker.get(source, {}).items():
            bookworm = entry["releases"]["bookworm"]
            if bookworm["status"] == "resolved" and dpkg_lt(source_version, bookworm["fixed_version"]):
                expected[(binary, cve)] = (bookworm["fixed_version"],)

    report = match_analysis(analysed("debian12-app.docker.tar"))
    reported = {(f.package.name, f.id): f.fixed_versions for f in report.findings if f.package.type == "deb"}
    assert {cve for _, cve in expected} == {cve for issues in tracker.values() for cve in issues}  # all 15
    assert reported == expected
    for finding in report.findings:
        assert finding.fix_state == "fixed"
        assert finding.severity == "UNKNOWN"
        assert finding.package.path.startswith("var/lib/dpkg/status")
        assert finding.package.layer.index == 0
        (evidence,) = finding.evidence
        assert evidence.source == "debian-tracker"
        assert evidence.release == "12"
        assert evidence.package == finding.package.source_name


# -- never false findings ------------------------------------------------------------------------------------------

PERL = Package("deb", "perl-base", "5.36.0-7+deb12u3", source_name="perl", source_version="5.36.0-7+deb12u3")


def test_nvd_records_never_create_findings_on_distro_packages():
    sync("debian-tracker", BOOKWORM)
    nvd = sync("nvd", "samples/nvd-api-2.0/vunnel-full-page.json")
    assert not Affected.objects.filter(advisory__feed=nvd.feed).exists()  # the importer never writes ranges
    advisory = Advisory.objects.filter(feed=nvd.feed).first()
    # even a row that slipped in (an importer bug) is refused: NVD ranges are upstream's, distros backport fixes
    Affected.objects.create(advisory=advisory, ecosystem="Debian", distro="debian", release="12", package="perl",
                            ranges=[{"type": "ECOSYSTEM", "events": [["introduced", "0"], ["fixed", "99"]]}],
                            status="fixed")  # fmt: skip
    report = match_analysis(analysis_of([PERL], Distro("debian", "12")))
    assert advisory.advisory_id not in {i for f in report.findings for i in f.all_ids}
    assert len(report.findings) == 13  # perl's CVEs in bookworm.json, and nothing else


def test_withdrawn_advisories_never_match():
    run = sync("osv", OSV_PYPI)
    withdrawn = Advisory.objects.filter(feed=run.feed, withdrawn__isnull=False, affected__isnull=False).first()
    row = withdrawn.affected.first()
    introduced = next(v for kind, v in row.ranges[0]["events"] if kind == "introduced") if row.ranges else "0"
    version = row.versions[0] if row.versions else introduced if introduced != "0" else "0.0.0.dev0"
    package = Package("pypi", row.package, version)
    assert withdrawn.advisory_id not in {e.advisory_id for f in match_analysis(analysis_of([package])).findings
                                         for e in f.evidence}  # fmt: skip
    Advisory.objects.filter(pk=withdrawn.pk).update(withdrawn=None)  # the same record, not withdrawn, does match
    assert withdrawn.advisory_id in {e.advisory_id for f in match_analysis(analysis_of([package])).findings
                                     for e in f.evidence}  # fmt: skip


# -- enrichment and the database's state ---------------------------------------------------------------------------


def test_nvd_severity_kev_and_epss_enrich_distro_findings():
    sync("debian-tracker", BOOKWORM)
    tracker = json.loads(feed_path(BOOKWORM).read_text())
    cve = sorted(tracker["apt"])[0]
    nvd = Advisory.objects.create(feed="nvd:test", source="nvd", advisory_id=cve, content_hash="x")
    Alias.objects.create(advisory=nvd, alias=cve, kind=AliasKind.SELF)
    vector = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"
    Severity.objects.create(advisory=nvd, type="CVSS_V3", source="nvd", vector=vector, score=8.1, rating="HIGH")
    Kev.objects.create(cve_id=cve, date_added=date(2025, 1, 2))
    Epss.objects.create(cve_id=cve, score=0.02, percentile=0.8, date=date(2025, 1, 2))
    apt = Package("deb", "apt", "2.6.1", source_name="apt", source_version="2.6.1")
    (finding,) = match_analysis(analysis_of([apt], Distro("debian", "12"))).findings
    assert finding.id == cve
    assert (finding.severity, finding.severity_source, finding.cvss_vector, finding.cvss_score) == (
        "HIGH", "nvd", vector, 8.1)  # fmt: skip
    assert (finding.kev, finding.kev_date_added, finding.epss_score, finding.epss_percentile) == (
        True, date(2025, 1, 2), 0.02, 0.8)  # fmt: skip
    assert [e.advisory_id for e in finding.evidence] == [cve]  # NVD enriches, never decides a match


def test_database_state_empty_fresh_and_stale(settings):
    state, notes = database_state()
    assert state.empty
    assert state.sources == ()
    assert notes == ["the advisory database is empty: no package was checked against advisories"]
    run = sync("debian-tracker", BOOKWORM)
    sync("kev", "kev/known_exploited_vulnerabilities.json")
    state, notes = database_state()
    assert (state.empty, state.stale, state.sources) == (False, False, ("debian-tracker", "kev"))
    assert state.last_sync
    assert state.age_hours < 1
    assert notes == []
    settings.VIGIL_ADVISORY_MAX_AGE_HOURS = 24
    state, notes = database_state(now=timezone.now() + timedelta(hours=30))
    assert state.stale
    assert 29 < state.age_hours < 31
    assert notes[0].startswith(f"advisory feed {run.feed} was last synced 30 h ago (limit 24 h)")
    report = match_analysis(analysis_of([PERL], Distro("debian", "12")))
    assert not report.database.stale
    assert report.database.sources == ("debian-tracker", "kev")


def test_packages_of_an_ecosystem_without_data_are_noted():
    sync("debian-tracker", BOOKWORM)
    sync("osv", OSV_GO)
    packages = [
        Package("npm", "lodash", "4.17.15"),
        Package("pypi", "Django", "3.2"),
        Package("pypi", "rsa", "4.0"),
        Package("golang", "example.com/clean", "v1.0.0"),
        Package("binary", "busybox", "1.36.1"),
        PERL,
    ]
    report = match_analysis(analysis_of(packages, Distro("debian", "12")))
    assert report.notes == [
        "no PyPI advisories in the database: 2 package(s) not checked",
        "no npm advisories in the database: 1 package(s) not checked",
        "1 binary package(s) not matched: no advisory feed covers that type",
    ]  # Go has data: a module without advisories is simply clean
    assert report.unsupported == ""


def test_the_number_of_queries_does_not_grow_with_the_number_of_packages(django_assert_max_num_queries):
    sync("debian-tracker", BOOKWORM)
    sync("osv", OSV_GO)

    def packages(n: int) -> list[Package]:
        made = []
        for i in range(n):
            made += [
                Package("deb", f"perl-{i}", f"5.36.0-{i % 9}", source_name="perl", source_version=f"5.36.0-{i % 9}"),
                Package("deb", f"lib{i}", "1.0-1", source_name=f"src{i}", source_version="1.0-1"),
                Package("golang", "stdlib", f"go1.{i % 20 + 1}.{i % 5}"),
                Package("golang", f"example.com/m{i}", "v1.0.0"),
            ]
        return made

    counts = []
    for n in (1, 250):
        with CaptureQueriesContext(connection) as queries:
            report = match_analysis(analysis_of(packages(n), Distro("debian", "12")))
        assert report.findings
        counts.append(len(queries))
    assert counts[0] == counts[1]
    with django_assert_max_num_queries(10):
        match_analysis(analysis_of(packages(250), Distro("debian", "12")))


# -- Python --------------------------------------------------------------------------------------------------------

SITE_PACKAGES = "usr/local/lib/python3.11/site-packages"


def osv_in_range(version, events, parse) -> bool:
    """OSV's IncludedInRanges, written from the schema's pseudo-code; `parse` orders the ecosystem's versions."""
    limits = [v for k, v in events if k == "limit"]
    if limits and not any(v == "*" or parse(version) < parse(v) for v in limits):
        return False
    zero = [e for e in events if e == ("introduced", "0")]  # "0" sorts before every version
    ordered = zero + sorted((e for e in events if e[0] != "limit" and e not in zero), key=lambda e: parse(e[1]))
    vulnerable = False
    for kind, bound in ordered:
        if kind == "introduced" and (bound == "0" or parse(version) >= parse(bound)):
            vulnerable = True
        elif (
            kind == "fixed"
            and parse(version) >= parse(bound)
            or kind == "last_affected"
            and parse(version) > parse(bound)
        ):
            vulnerable = False
    return vulnerable


def pysec_records():
    with tarfile.open(feed_path(OSV_PYPI)) as archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".yaml") and "/vulns/" in member.name:
                yield yaml.safe_load(archive.extractfile(member).read())


def pypi_expected(installed: dict[str, str]) -> dict[tuple[str, str], set[str]]:
    """(package, PYSEC id) -> the fixes to upgrade to, for every record whose ranges or versions hold the installed
    version (PEP 440); the fix of a range is its lowest fixed event above the installed version."""
    expected: dict[tuple[str, str], set[str]] = {}
    for rec in pysec_records():
        if rec.get("withdrawn"):
            continue
        for entry in rec.get("affected") or []:
            name = canonicalize_name(entry["package"]["name"])
            if entry["package"]["ecosystem"] != "PyPI" or name not in installed:
                continue
            version = PepVersion(installed[name])
            listed = any(PepVersion(v) == version for v in entry.get("versions") or [] if _pep440(v))
            ranges = [[tuple(e.items())[0] for e in r["events"]] for r in entry.get("ranges") or []
                      if r["type"] == "ECOSYSTEM"]  # fmt: skip
            holding = [events for events in ranges if osv_in_range(str(version), events, PepVersion)]
            if listed or holding:
                fixes = [min((v for k, v in events if k == "fixed" and PepVersion(v) > version), key=PepVersion,
                             default=None) for events in holding]  # fmt: skip
                expected[(name, rec["id"])] = {f for f in fixes if f}
    return expected


def _pep440(text: str) -> bool:
    try:
        PepVersion(text)
    except InvalidVersion:
        return False
    return True


def test_pypi_packages_match_exactly_the_osv_records_holding_their_version(debian_root):
    sync("osv", OSV_PYPI)
    site = debian_root / SITE_PACKAGES
    dists = list(importlib.metadata.distributions(path=[str(site)]))
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in dists}
    assert "flask" not in installed  # a later layer deleted it
    assert set(installed) == {"django", "requests", "pyyaml", "jinja2", "urllib3", "werkzeug"}
    layer = Layer(1, "sha256:layer2", "sha256:layer2")
    packages = [Package("pypi", d.metadata["Name"], d.version, path=SITE_PACKAGES,
                        layer=layer) for d in dists]  # fmt: skip

    report = match_analysis(analysis_of(packages, Distro("debian", "12")))
    reported = {(canonicalize_name(f.package.name), e.advisory_id) for f in report.findings for e in f.evidence}
    expected = pypi_expected(installed)
    assert len(expected) > 20
    assert reported == set(expected)
    assert report.notes == []
    for finding in report.findings:
        assert len({e.advisory_id for e in finding.evidence}) == len(finding.evidence)
        assert finding.package.layer is layer
        name = canonicalize_name(finding.package.name)
        fixes = set().union(*(expected[(name, e.advisory_id)] for e in finding.evidence))
        assert set(finding.fixed_versions) == fixes, finding.id
        assert finding.fix_state == ("fixed" if fixes else "affected")


# -- Go ------------------------------------------------------------------------------------------------------------

ESBUILD = "usr/local/bin/esbuild"


def go_buildinfo(data: bytes) -> tuple[str, str]:
    """(toolchain version, modinfo) of a Go binary, as `go version -m` reads them (debug/buildinfo)."""
    at = data.find(b"\xff Go buildinf:")
    ptr_size, flags = data[at + 14], data[at + 15]
    endian = ">" if flags & 1 else "<"
    if flags & 2:  # go1.18 and later: two varint-prefixed strings after the 32-byte header
        strings, pos = [], at + 32
        for _ in range(2):
            n = shift = 0
            while data[pos] & 0x80:
                n, shift, pos = n | (data[pos] & 0x7F) << shift, shift + 7, pos + 1
            n, pos = n | data[pos] << shift, pos + 1
            strings.append(data[pos : pos + n])
            pos += n
        return strings[0].decode(), strings[1][16:-16].decode()
    # before go1.18: pointers to Go string headers, resolved through the ELF program headers
    assert data[:6] == b"\x7fELF\x02\x01", "only little-endian ELF64 here"
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads = []
    for i in range(phnum):
        kind, _, offset, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if kind == 1:  # PT_LOAD
            loads.append((vaddr, offset, filesz))

    def read(address: int, n: int) -> bytes:
        vaddr, offset, _ = next(seg for seg in loads if seg[0] <= address < seg[0] + seg[2])
        return data[offset + address - vaddr : offset + address - vaddr + n]

    def go_string(pointer_at: int) -> bytes:
        (header,) = struct.unpack_from(endian + "Q", data, pointer_at)
        pointer, length = struct.unpack(endian + "QQ", read(header, 2 * ptr_size))
        return read(pointer, length)

    return go_string(at + 16).decode(), go_string(at + 16 + ptr_size)[16:-16].decode()


def go_modules(binary: Path) -> dict[str, str]:
    """module path -> version, "stdlib" -> the toolchain version; from `go version -m`, else decoded here."""
    if GO:
        text = subprocess.run([GO, "version", "-m", str(binary)], capture_output=True, text=True, check=True).stdout
        toolchain = text.split(": ", 1)[1].split()[0]
        lines = [line.strip().split("\t") for line in text.splitlines()[1:]]
    else:
        toolchain, modinfo = go_buildinfo(binary.read_bytes())
        lines = [line.split("\t") for line in modinfo.splitlines()]
    modules = {parts[1]: parts[2] for parts in lines if parts[0] in ("mod", "dep")}
    return {**modules, "stdlib": toolchain}


def semver_compare(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """npm's node-semver compare(a, b) for each pair, in one node process."""
    script = (f"const semver = require({str(NODE_SEMVER)!r});"
              "const pairs = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "console.log(JSON.stringify(pairs.map(([a, b]) => semver.compare(a, b))));")  # fmt: skip
    out = subprocess.run([NODE, "-e", script], input=json.dumps(pairs), capture_output=True, text=True, check=True)
    return dict(zip(map(tuple, pairs), json.loads(out.stdout), strict=True))


class _Semver:
    """A version ordered by a table of node-semver answers."""

    table: dict[tuple[str, str], int] = {}

    def __init__(self, text: str) -> None:
        self.text = text

    def _cmp(self, other: _Semver) -> int:
        return self.table[(self.text, other.text)]

    def __lt__(self, other):
        return self._cmp(other) < 0

    def __gt__(self, other):
        return self._cmp(other) > 0

    def __ge__(self, other):
        return self._cmp(other) >= 0


def go_osv_records():
    with zipfile.ZipFile(feed_path(OSV_GO)) as archive:
        for name in archive.namelist():
            if name.endswith(".json"):
                yield json.loads(archive.read(name))


def go_expected(modules: dict[str, str]) -> dict[tuple[str, str], set[str]]:
    """(module, GO id) -> the fixes to upgrade to, for every record whose ranges hold the module's version."""
    versions = {m: v.removeprefix("v") for m, v in modules.items()}
    versions["stdlib"] = modules["stdlib"].removeprefix("go")  # go1.17.2 -> 1.17.2: golang/vulndb's spelling
    relevant = []
    for rec in go_osv_records():
        if rec.get("withdrawn"):
            continue
        for entry in rec.get("affected") or []:
            name = entry["package"]["name"]
            if entry["package"]["ecosystem"] == "Go" and name in versions:
                for r in entry.get("ranges") or []:
                    assert r["type"] == "SEMVER"
                    relevant.append((rec["id"], name, [tuple(e.items())[0] for e in r["events"]]))
    texts = {versions[name] for _, name, _ in relevant} | {v for *_, events in relevant for _, v in events} - {"0"}
    _Semver.table = semver_compare([(a, b) for a in texts for b in texts])
    expected: dict[tuple[str, str], set[str]] = defaultdict(set)
    for vuln_id, name, events in relevant:
        if osv_in_range(versions[name], events, _Semver):
            installed = _Semver(versions[name])
            fixes = [_Semver(v) for k, v in events if k == "fixed" and _Semver(v) > installed]
            expected[(name, vuln_id)] |= {min(fixes).text} if fixes else set()
    return dict(expected)


@pytest.mark.skipif(NODE is None or not NODE_SEMVER.is_dir(), reason=f"node or npm's semver ({NODE_SEMVER}) missing")
def test_go_binary_modules_and_toolchain_match_exactly_the_osv_records_holding_their_version(debian_root):
    sync("osv", OSV_GO)
    modules = go_modules(debian_root / ESBUILD)
    # what the corpus README says `go version -m` prints
    assert modules == {"stdlib": "go1.17.2", "github.com/evanw/esbuild": "(devel)",
                       "golang.org/x/sys": "v0.0.0-20210908233432-aa78b53d3365"}  # fmt: skip
    packages = [Package("golang", name, version, path=ESBUILD) for name, version in modules.items()]

    report = match_analysis(analysis_of(packages, Distro("debian", "12")))
    reported = {(f.package.name, e.advisory_id) for f in report.findings for e in f.evidence}
    expected = go_expected(modules)
    assert {name for name, _ in expected} == {"stdlib", "golang.org/x/sys"}
    assert len(expected) > 50
    assert reported == set(expected)
    for finding in report.findings:
        fixes = set().union(*(expected[(finding.package.name, e.advisory_id)] for e in finding.evidence))
        assert set(finding.fixed_versions) == fixes, finding.id
        if finding.package.name == "stdlib":
            assert {e.matched_version for e in finding.evidence} == {"1.17.2"}
