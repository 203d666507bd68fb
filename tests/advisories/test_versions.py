"""Version ordering per ecosystem: a total order, and the same answers as the ecosystems' own tools.

References that run here: `dpkg --compare-versions`; rpm's own rpm.vercmp
(through `rpm --eval` and Lua); packaging.version for PEP 440; npm's bundled
node-semver for SemVer 2.0 (npm and Go); Maven's ComparableVersion from the
maven-artifact jar. apk-tools does not run on Debian, so apk is checked against
orderings picked by hand from the rules of apk-tools' src/version.c.

Each reference is fed many pairs per process: versions are sorted with our
comparison and adjacent pairs checked (if the tool agrees on every adjacent
pair of a sorted list, it sorts the list the same way), plus pairs far apart.
"""

from __future__ import annotations

import bz2
import functools
import importlib.metadata
import json
import random
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.parse
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.version import InvalidVersion as PackagingInvalidVersion
from packaging.version import Version as PackagingVersion
from univers import rpm as univers_rpm
from univers import versions as uv

from advisories.versions import cmp_versions, compare, parse, version_class

REPO = Path(__file__).resolve().parents[2]
FEEDS = REPO.parent / "shared" / "feeds"
SAMPLES = FEEDS / "samples"
UNIVERS = importlib.metadata.version("univers")

DPKG = shutil.which("dpkg")
RPM = shutil.which("rpm")
NODE = shutil.which("node")
JAVA = shutil.which("java")
NODE_SEMVER = Path("/usr/lib/node_modules/npm/node_modules/semver")  # the semver npm itself uses
MAVEN_ARTIFACT = next(iter(sorted(Path("/usr/share/maven/lib").glob("maven-artifact-*.jar"))), None)

needs_dpkg = pytest.mark.skipif(DPKG is None, reason="dpkg is not installed")
needs_rpm = pytest.mark.skipif(RPM is None, reason="rpm is not installed")
needs_node_semver = pytest.mark.skipif(
    NODE is None or not NODE_SEMVER.is_dir(), reason=f"node or npm's semver ({NODE_SEMVER}) is not installed"
)
needs_maven = pytest.mark.skipif(
    JAVA is None or MAVEN_ARTIFACT is None, reason="java or /usr/share/maven/lib/maven-artifact-*.jar is missing"
)
fast = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
batched = settings(
    max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def feeds() -> Path:
    if not FEEDS.is_dir():
        pytest.skip(f"{FEEDS} is missing: the shared feeds must sit beside the repository (../shared/feeds)")
    return FEEDS


# --- reference implementations ------------------------------------------------------------------------------------


def dpkg_compare(pairs: list[tuple[str, str]]) -> list[int]:
    """dpkg --compare-versions on every pair, in one shell (dpkg compares one pair per process)."""
    script = (
        'IFS="\t"; while read -r a b; do if dpkg --compare-versions "$a" lt "$b"; then echo -1;'
        ' elif dpkg --compare-versions "$a" eq "$b"; then echo 0; else echo 1; fi; done'
    )
    lines = "".join(f"{a}\t{b}\n" for a, b in pairs)
    out = subprocess.run(["sh", "-c", script], input=lines, capture_output=True, text=True, check=True)
    return [int(x) for x in out.stdout.split()]


def rpm_compare(pairs: list[tuple[str, str]]) -> list[int]:
    """rpm.vercmp (rpm's rpmverCmp on parsed EVRs) on every pair, in one Lua chunk run by rpm itself."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.tsv"
        path.write_text("".join(f"{a}\t{b}\n" for a, b in pairs))
        chunk = (
            f'for l in io.lines("{path}") do local a, b = l:match("^(.-)\\t(.*)$");'
            ' print(rpm.vercmp(a, b) .. "\\n") end'
        )
        out = subprocess.run(["rpm", "--eval", f"%{{lua: {chunk}}}"], capture_output=True, text=True, check=True)
    return [int(x) for x in out.stdout.split()]


def packaging_compare(pairs: list[tuple[str, str]]) -> list[int]:
    result = []
    for a, b in pairs:
        x, y = PackagingVersion(a), PackagingVersion(b)
        result.append((x > y) - (x < y))
    return result


NODE_COMPARE = r"""
const semver = require(process.argv[1]);
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
const answers = lines.map((l) => { const [a, b] = l.split("\t"); return String(semver.compare(a, b)); });
process.stdout.write(answers.join("\n"));
"""


def node_semver_compare(pairs: list[tuple[str, str]]) -> list[int]:
    lines = "".join(f"{a}\t{b}\n" for a, b in pairs)
    out = subprocess.run(
        ["node", "-e", NODE_COMPARE, str(NODE_SEMVER)], input=lines, capture_output=True, text=True, check=True
    )
    return [int(x) for x in out.stdout.split()]


def maven_compare_chain(versions: list[str]) -> list[int]:
    """Maven's ComparableVersion main() compares each argument with the next one."""
    out = subprocess.run(
        ["java", "-cp", str(MAVEN_ARTIFACT), "org.apache.maven.artifact.versioning.ComparableVersion", *versions],
        capture_output=True,
        text=True,
        check=True,
    )
    signs = {"<": -1, "==": 0, ">": 1}
    return [signs[m.group(1)] for m in re.finditer(r"^   \S+ (<|==|>) \S+$", out.stdout, re.MULTILINE)]


def ours(ecosystem: str, pairs: Iterable[tuple[str, str]]) -> list[int]:
    return [compare(ecosystem, a, b) for a, b in pairs]


def sorted_pairs(ecosystem: str, versions: Iterable[str], far: int = 0) -> list[tuple[str, str]]:
    """Adjacent pairs of the versions sorted our way, then `far` pairs of random members."""
    ordered = [v.string for v in sorted(parse(ecosystem, s) for s in set(versions))]  # parsed once, sorted by our <
    pairs = list(zip(ordered, ordered[1:], strict=False))
    rng = random.Random(1)  # noqa: S311 - test data, not crypto
    pairs += [(rng.choice(ordered), rng.choice(ordered)) for _ in range(far)] if ordered else []
    return pairs


def disagreements(pairs: list[tuple[str, str]], mine: list[int], theirs: list[int]) -> list[str]:
    assert len(mine) == len(theirs) == len(pairs), "the reference answered a different number of pairs"
    return [f"{a} vs {b}: ours {x}, reference {y}" for (a, b), x, y in zip(pairs, mine, theirs, strict=True) if x != y]


# --- versions from the real feeds ---------------------------------------------------------------------------------


def osv_versions(record: dict[str, Any], ecosystems: tuple[str, ...]) -> Iterator[str]:
    """Every version an OSV record names for the ecosystems: range events (not GIT) and explicit versions."""
    for affected in record.get("affected") or ():
        if str((affected.get("package") or {}).get("ecosystem", "")).split(":")[0] not in ecosystems:
            continue
        for r in affected.get("ranges") or ():
            if r.get("type") != "GIT":
                for event in r.get("events") or ():
                    yield from (str(v) for v in event.values())
        yield from (str(v) for v in affected.get("versions") or ())


def _json_files(*globs: str) -> Iterator[Any]:
    for pattern in globs:
        for path in sorted(feeds().glob(pattern)):
            yield json.loads(path.read_bytes())


def _zip_records(path: Path) -> Iterator[Any]:
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(".json"):
                yield json.loads(archive.read(name))


def _tar_records(path: Path, suffix: str) -> Iterator[Any]:
    with tarfile.open(path) as archive:
        for member in archive:
            if member.isreg() and member.name.endswith(suffix):
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                # BaseLoader keeps every scalar a string, as written: "1.10" stays "1.10", not the float 1.1
                yield yaml.load(data, Loader=yaml.CBaseLoader) if suffix == ".yaml" else json.loads(data)  # noqa: S506 - BaseLoader builds only str, list and dict


def _tracker_versions(path: Path) -> Iterator[str]:
    for cves in json.loads(path.read_bytes()).values():
        for cve in cves.values():
            for release in (cve.get("releases") or {}).values():
                yield from filter(None, [release.get("fixed_version"), *(release.get("repositories") or {}).values()])


def _dpkg_feed_versions() -> Iterator[str]:
    for path in (
        FEEDS / "debian-tracker-derived/bookworm.json",
        *sorted(SAMPLES.glob("debian-security-tracker-json/*")),
    ):
        yield from _tracker_versions(path)
    for record in _json_files("samples/osv-debian/*.json", "samples/ubuntu-osv/**/*.json"):
        yield from osv_versions(record, ("Debian", "Ubuntu"))


def _rpm_feed_versions() -> Iterator[str]:
    for file in sorted(SAMPLES.glob("redhat-csaf-*/*.json")):
        for m in re.finditer(r'"pkg:rpm/[^"@]+@([^"?]+)(?:\?([^"]*))?"', file.read_text()):
            epoch = urllib.parse.parse_qs(m.group(2) or "").get("epoch", [""])[0]
            version = urllib.parse.unquote(m.group(1))
            yield f"{epoch}:{version}" if epoch else version
    for file in sorted(SAMPLES.glob("redhat-oval-v2/*/*.xml.bz2")):
        yield from re.findall(r"evr_string[^>]*>([^<]+)<", bz2.decompress(file.read_bytes()).decode())
    for record in _json_files("samples/osv-almalinux/*.json", "samples/osv-rocky/*.json"):
        yield from osv_versions(record, ("AlmaLinux", "Rocky Linux"))


def _apk_feed_versions() -> Iterator[str]:
    for file in sorted(FEEDS.glob("alpine-secdb/**/*.yaml")) + sorted(FEEDS.glob("alpine-secdb/**/*.json")):
        data = yaml.load(file.read_bytes(), Loader=yaml.CBaseLoader)  # noqa: S506 - str, list, dict only; reads JSON too
        for package in data.get("packages") or ():
            yield from (package["pkg"].get("secfixes") or {})
    for record in _json_files("samples/osv-alpine/*.json", "samples/osv-chainguard/*.json"):
        yield from osv_versions(record, ("Alpine", "Chainguard", "Wolfi"))


def _pypi_feed_versions() -> Iterator[str]:
    for record in _tar_records(FEEDS / "osv-pypi/pypa-advisory-database-vulns.tar.gz", ".yaml"):
        yield from osv_versions(record, ("PyPI",))
    for record in _tar_records(FEEDS / "osv-ghsa/ghsa-advisories.tar.gz", ".json"):
        yield from osv_versions(record, ("PyPI",))
    for record in _zip_records(SAMPLES / "osv-all-zip/pypi-all.zip"):
        yield from osv_versions(record, ("PyPI",))


def _ghsa_feed_versions(ecosystem: str) -> Iterator[str]:
    for record in _tar_records(FEEDS / "osv-ghsa/ghsa-advisories.tar.gz", ".json"):
        yield from osv_versions(record, (ecosystem,))
    if ecosystem == "Go":
        for zipped in (FEEDS / "osv-go/all.zip", SAMPLES / "osv-all-zip/go-all.zip"):
            for record in _zip_records(zipped):
                yield from osv_versions(record, ("Go",))


FEED_VERSIONS = {
    "dpkg": _dpkg_feed_versions,
    "rpm": _rpm_feed_versions,
    "apk": _apk_feed_versions,
    "pypi": _pypi_feed_versions,
    "npm": functools.partial(_ghsa_feed_versions, "npm"),
    "Go": functools.partial(_ghsa_feed_versions, "Go"),
    "Maven": functools.partial(_ghsa_feed_versions, "Maven"),
}


@functools.cache
def feed_versions(scheme: str) -> tuple[str, ...]:
    feeds()
    # OSV's "introduced: 0" means "from the first version", not a version string
    return tuple(sorted(set(FEED_VERSIONS[scheme]()) - {"0"}))


# --- strategies: realistic version strings per scheme -------------------------------------------------------------

numbers = st.sampled_from(["0", "1", "2", "3", "9", "10", "11", "01", "2023", "20240101"])
small_numbers = st.sampled_from(["0", "1", "2", "3", "9", "10", "11"])


def joined(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map("".join)


def optional(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), strategy)


def repeated(strategy: st.SearchStrategy[str], max_size: int = 3) -> st.SearchStrategy[str]:
    return st.lists(strategy, max_size=max_size).map("".join)


dpkg_words = st.sampled_from(["a", "b", "rc", "dfsg", "ubuntu", "deb", "build", "git", "Z"])
dpkg_piece = st.one_of(
    joined(st.sampled_from([".", "+", "~", ""]), numbers), joined(st.sampled_from([".", "+", "~", ""]), dpkg_words)
)
dpkg_versions = joined(
    optional(small_numbers.map(lambda e: f"{e}:")),
    numbers,
    repeated(dpkg_piece, 4),
    optional(joined(st.just("-"), st.one_of(numbers, dpkg_words), repeated(dpkg_piece, 3))),
)

rpm_piece = st.one_of(
    joined(st.sampled_from([".", "_", "+", "~", "^", ""]), numbers),
    joined(st.sampled_from([".", "_", "+", "~", "^"]), st.sampled_from(["a", "b", "rc", "el", "git", "Z"])),
)
rpm_versions = joined(
    optional(small_numbers.map(lambda e: f"{e}:")),
    numbers,
    repeated(rpm_piece, 4),
    optional(joined(st.just("-"), st.one_of(numbers, st.sampled_from(["el", "rc", "a"])), repeated(rpm_piece, 3))),
)
# every release present: rpm orders a missing release before all releases, which is also a total order; mixed in
rpm_versions_mixed = st.one_of(rpm_versions, rpm_versions.map(lambda v: v.rsplit("-", 1)[0]))

apk_versions = joined(
    numbers,
    repeated(numbers.map(lambda n: f".{n}"), 3),
    optional(st.sampled_from(["a", "b", "z"])),
    repeated(
        joined(
            st.sampled_from([f"_{s}" for s in ("alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p")]),
            optional(numbers),
        ),  # fmt: skip
        2,
    ),
    optional(st.sampled_from(["~1234", "~abcd", "~2345"])),
    optional(small_numbers.map(lambda r: f"-r{r}")),
)

pep440_pre = st.sampled_from(["a", "b", "rc", "alpha", "beta", "c", "pre", "preview", "-a", ".rc", "_b"])
pep440_versions = joined(
    optional(st.sampled_from(["v", "V"])),
    optional(small_numbers.map(lambda e: f"{e}!")),
    numbers,
    repeated(numbers.map(lambda n: f".{n}"), 3),
    optional(joined(pep440_pre, optional(small_numbers))),
    optional(joined(st.sampled_from([".post", "post", "-", ".r", "-rev"]), small_numbers)),
    optional(joined(st.sampled_from([".dev", "dev", "-dev"]), optional(small_numbers))),
    optional(joined(st.just("+"), st.sampled_from(["local", "ubuntu.1", "1", "abc.2"]))),
)

semver_ident = st.sampled_from(["alpha", "beta", "rc", "0", "1", "2", "10", "x-y", "Alpha"])
semver_versions = joined(
    small_numbers,
    small_numbers.map(lambda n: f".{n}"),
    small_numbers.map(lambda n: f".{n}"),
    optional(joined(st.just("-"), st.lists(semver_ident, min_size=1, max_size=3).map(".".join))),
    optional(st.sampled_from(["+build", "+001", "+exp.sha.5114f85", "+incompatible"])),
)
go_versions = st.one_of(
    semver_versions.map(lambda v: f"v{v}"),
    st.sampled_from(["v0.0.0-20130808000456-233bccbb1abe", "v0.0.0-20210101000000-abcdefabcdef", "v1.2.4-0.2022"]),
)

maven_qualifiers = ["alpha", "beta", "rc", "cr", "m", "milestone", "SNAPSHOT", "Final", "GA", "RELEASE", "sp", "a", "b"]
maven_versions = joined(
    numbers,
    repeated(numbers.map(lambda n: f".{n}"), 3),
    optional(
        joined(
            st.sampled_from([".", "-", ""]),
            st.sampled_from(maven_qualifiers),
            optional(joined(st.sampled_from(["", "-", "."]), small_numbers)),
        )  # fmt: skip
    ),
    optional(st.just("-SNAPSHOT")),
)
# Maven's own order is a total order only while a qualifier after a dot ends the version: ComparableVersion reads
# a trailing ".X" as "-X" but a ".X-Y" as a plain item, and 0 > 0.alpha-SNAPSHOT > 0.sp > 0 (see the test below)
maven_total_versions = st.one_of(
    joined(numbers, repeated(numbers.map(lambda n: f".{n}"), 3),
           optional(joined(st.sampled_from(["-", ""]), st.sampled_from(maven_qualifiers), optional(small_numbers))),
           optional(st.just("-SNAPSHOT"))),
    joined(numbers, repeated(numbers.map(lambda n: f".{n}"), 3), st.just("."), st.sampled_from(maven_qualifiers)),
)  # fmt: skip

gem_versions = joined(
    small_numbers,
    repeated(small_numbers.map(lambda n: f".{n}"), 3),
    optional(joined(st.sampled_from([".pre", ".rc", ".alpha", ".beta", ".a", "-"]), small_numbers)),
    optional(st.sampled_from([".pre", ".rc", ".a"])),
)
nuget_versions = joined(
    small_numbers,
    repeated(small_numbers.map(lambda n: f".{n}"), 3),
    optional(joined(st.just("-"), st.lists(semver_ident, min_size=1, max_size=2).map(".".join))),
    optional(st.sampled_from(["+meta", "+1"])),
)
composer_versions = joined(
    optional(st.just("v")),
    small_numbers,
    repeated(small_numbers.map(lambda n: f".{n}"), 3),
    optional(
        joined(
            st.sampled_from(["-alpha", "-beta", "-RC", "-rc", "-patch", "-p", "-a", "-b", "-pl"]),
            optional(small_numbers),
        )
    ),  # fmt: skip
    optional(st.just("-dev")),
)

SCHEMES = [
    ("Debian", dpkg_versions),
    ("Red Hat", rpm_versions_mixed),
    ("Alpine", apk_versions),
    ("PyPI", pep440_versions),
    ("npm", semver_versions),
    ("Go", go_versions),
    ("Maven", maven_total_versions),
    ("RubyGems", gem_versions),
    ("NuGet", nuget_versions),
    ("Packagist", composer_versions),
]


# --- total order --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ecosystem", "strategy"), SCHEMES, ids=[e for e, _ in SCHEMES])
@fast
@given(data=st.data())
def test_comparison_is_a_total_order(ecosystem, strategy, data):
    versions = data.draw(st.lists(strategy, min_size=2, max_size=8))
    parsed = [parse(ecosystem, v) for v in versions]  # the strategies make only valid versions
    for x in parsed:
        assert cmp_versions(x, x) == 0, f"{x.string} is not equal to itself"
    for x in parsed:
        for y in parsed:
            c = cmp_versions(x, y)
            assert c == -cmp_versions(y, x), f"{x.string} vs {y.string} is not antisymmetric"
            assert (x < y, x == y, x > y) == (c < 0, c == 0, c > 0), f"{x.string} vs {y.string}: operators disagree"
            assert (x <= y, x >= y, x != y) == (c <= 0, c >= 0, c != 0)
            if c == 0:
                assert hash(x) == hash(y), f"{x.string} == {y.string} but their hashes differ"
    ordered = sorted(parsed, key=functools.cmp_to_key(cmp_versions))
    for i, x in enumerate(ordered):  # transitivity: a sorted list is sorted for every pair, not just adjacent ones
        for y in ordered[i + 1 :]:
            assert cmp_versions(x, y) <= 0, f"not transitive: {x.string} sorts before {y.string} but compares after"


def test_version_class_covers_every_ecosystem_of_the_contract():
    from advisories.importers.base import ECOSYSTEMS

    for ecosystem in ECOSYSTEMS:
        assert issubclass(version_class(ecosystem), uv.Version)
    assert version_class("Debian:12") is version_class("Debian")
    with pytest.raises(ValueError, match="no version scheme"):
        version_class("Nonsense")


@pytest.mark.parametrize(
    ("ecosystem", "version"),
    [("Debian", "1.0 1"), ("Debian", "a1"), ("Debian", "1:"), ("Debian", "١.٠"), ("Red Hat", "1.0-"), ("Red Hat", "é"),
     ("Alpine", "v1.0"), ("Alpine", ""), ("npm", "1.2.3.4"), ("npm", "01.2.3"), ("PyPI", "1.0-foo-bar"),
     ("Packagist", "dev-main"), ("Maven", "")],
)  # fmt: skip
def test_unparsable_versions_raise_value_error(ecosystem, version):
    with pytest.raises(ValueError, match="not a"):
        compare(ecosystem, version, "1")


# --- dpkg ---------------------------------------------------------------------------------------------------------


@needs_dpkg
@batched
@given(st.lists(dpkg_versions, min_size=60, max_size=60))
def test_dpkg_agrees_on_generated_versions(versions):
    pairs = sorted_pairs("Debian", versions) + list(zip(versions[:30], reversed(versions), strict=False))
    assert disagreements(pairs, ours("Debian", pairs), dpkg_compare(pairs)) == []


@needs_dpkg
def test_dpkg_agrees_on_every_debian_and_ubuntu_version_in_the_feeds():
    versions = feed_versions("dpkg")
    assert len(versions) > 400, "the Debian tracker and Ubuntu OSV samples name several hundred versions"
    pairs = sorted_pairs("Debian", versions, far=60)
    assert disagreements(pairs, ours("Debian", pairs), dpkg_compare(pairs)) == []


# --- rpm ----------------------------------------------------------------------------------------------------------


@needs_rpm
@batched
@given(st.lists(rpm_versions_mixed, min_size=100, max_size=100))
def test_rpm_agrees_on_generated_versions(versions):
    pairs = sorted_pairs("Red Hat", versions) + list(zip(versions[:50], reversed(versions), strict=False))
    assert disagreements(pairs, ours("Red Hat", pairs), rpm_compare(pairs)) == []


@needs_rpm
def test_rpm_agrees_on_every_red_hat_version_in_the_feeds():
    versions = feed_versions("rpm")
    assert len(versions) > 70, "CSAF purls, OVAL evr strings and AlmaLinux/Rocky OSV events"
    pairs = sorted_pairs("Red Hat", versions, far=200)
    assert disagreements(pairs, ours("Red Hat", pairs), rpm_compare(pairs)) == []


# --- PEP 440 ------------------------------------------------------------------------------------------------------


@batched
@given(st.lists(pep440_versions, min_size=100, max_size=100))
def test_pep440_agrees_with_packaging_on_generated_versions(versions):
    pairs = sorted_pairs("PyPI", versions) + list(zip(versions[:50], reversed(versions), strict=False))
    assert disagreements(pairs, ours("PyPI", pairs), packaging_compare(pairs)) == []


def _packaging_accepts(version: str) -> bool:
    try:
        PackagingVersion(version)
    except PackagingInvalidVersion:
        return False
    return True


def test_pep440_agrees_with_packaging_on_every_pypi_version_in_the_feeds():
    versions = feed_versions("pypi")
    assert len(versions) > 10_000, "osv-pypi alone lists over ten thousand affected versions"
    valid = [v for v in versions if _packaging_accepts(v)]
    rejected = sorted(set(versions) - set(valid))
    for version in rejected:  # legacy, non-PEP 440 strings that PyPI once allowed
        with pytest.raises(ValueError, match="not a PyPI version"):
            parse("PyPI", version)
    parsed = sorted(parse("PyPI", v) for v in valid)
    pairs = [(a.string, b.string) for a, b in zip(parsed, parsed[1:], strict=False)]
    assert disagreements(pairs, [cmp_versions(a, b) for a, b in zip(parsed, parsed[1:], strict=False)],
                         packaging_compare(pairs)) == []  # fmt: skip


# --- SemVer: npm and Go -------------------------------------------------------------------------------------------


@needs_node_semver
@batched
@given(st.lists(semver_versions, min_size=200, max_size=200))
def test_semver_agrees_with_npm_semver_on_generated_versions(versions):
    pairs = sorted_pairs("npm", versions) + list(zip(versions[:100], reversed(versions), strict=False))
    assert disagreements(pairs, ours("npm", pairs), node_semver_compare(pairs)) == []


@needs_node_semver
def test_semver_agrees_with_npm_semver_on_every_npm_and_go_version_in_the_feeds():
    npm, go = feed_versions("npm"), feed_versions("Go")
    assert len(go) > 2000, "golang/vulndb names a few thousand module versions"
    pairs = sorted_pairs("npm", npm, far=50)
    go_pairs = sorted_pairs("Go", go, far=300)
    assert disagreements(pairs, ours("npm", pairs), node_semver_compare(pairs)) == []
    # Go's x/mod/semver orders like SemVer 2.0 with a leading "v"; node-semver reads the "v" too
    assert disagreements(go_pairs, ours("Go", go_pairs), node_semver_compare(go_pairs)) == []


# --- Maven --------------------------------------------------------------------------------------------------------


@needs_maven
@batched
@given(st.lists(maven_versions, min_size=300, max_size=300))
def test_maven_agrees_with_comparable_version_on_generated_versions(versions):
    pairs = list(zip(versions, versions[1:], strict=False))
    assert disagreements(pairs, ours("Maven", pairs), maven_compare_chain(versions)) == []


@needs_maven
def test_maven_itself_is_not_transitive_everywhere_and_we_follow_it():
    """Maven 3.8 orders 0 > 0.alpha-SNAPSHOT > 0.sp > 0; matching Maven matters more than a total order here."""
    cycle = ["0", "0.alpha-SNAPSHOT", "0.sp", "0"]
    assert maven_compare_chain(cycle) == [1, 1, 1]
    assert [compare("Maven", a, b) for a, b in zip(cycle, cycle[1:], strict=False)] == [1, 1, 1]


@needs_maven
def test_maven_agrees_with_comparable_version_on_every_maven_version_in_the_feeds():
    pairs = sorted_pairs("Maven", feed_versions("Maven"))
    chain = [a for a, _ in pairs] + [pairs[-1][1]]
    assert disagreements(pairs, ours("Maven", pairs), maven_compare_chain(chain)) == []


# --- apk ----------------------------------------------------------------------------------------------------------

# Orderings that follow from apk-tools' src/version.c, in the style of its test/unit/version.data.
APK_ORDERINGS = """
1.0_alpha < 1.0_beta
1.0_beta < 1.0_pre
1.0_pre < 1.0_rc
1.0_rc < 1.0
1.0 < 1.0_p1
1.0_alpha1 < 1.0_alpha2
1.0_alpha9 < 1.0_alpha10
1.0_alpha < 1.0_alpha1
1.0_alpha_pre2 < 1.0_alpha
1.0_cvs < 1.0_svn
1.0_svn < 1.0_git
1.0_git < 1.0_hg
1.0_hg < 1.0_p
1.0 < 1.0_git20230717
1.0_rc1 < 1.0_p1
1.0-r1 < 1.0-r2
1.0-r9 < 1.0-r10
1.0 < 1.0-r0
1.2.9 < 1.2.10
1.2 < 1.2.1
1.2 < 1.2a
1.2a < 1.2b
1.2b-r1 < 1.2b-r2
1.01 < 1.1
8.2.0 < 8.2.001
8.2.0015 < 8.2.002
1.0 < 1.00
1.06-r6 < 006
20050718-r1 < 20050718-r2
2.0_rc1 > 1.9.9
3.1_p16 < 3.1_p17
1.0~1234 < 1.0~2345
1.0~1234-r1 > 1.0~1234-r0
1.0~1234-r1 < 1.0~2345-r0
1.2.4_git20230717-r5 > 1.2.4-r5
1.0 = 1.0
01.0 = 1.0
1.0-r1 = 1.0-r01
1.0_p1 = 1.0_p01
"""

APK_INVALID = ["", "v1.0", ".1", "a", "_pre1", "-r1", "1.0A", "1.0bc", "0.1a1", "0.1a.1", "0.1_foo", "0.1_",
               "0.1__alpha", "0.1_1_alpha", "0.1-r", "0.1-r2-r3", "0.1-r2.1", "0.1-r2_p3", "0.1-pre1", "1.0~",
               "1.0~xyz", "1.0~1234_pre1", "0.8.21.r2"]  # fmt: skip


@pytest.mark.parametrize("line", [line for line in APK_ORDERINGS.strip().splitlines()])
def test_apk_orderings(line):
    a, op, b = line.split()
    expected = {"<": -1, "=": 0, ">": 1}[op]
    assert compare("Alpine", a, b) == expected
    assert compare("Alpine", b, a) == -expected


@pytest.mark.parametrize("version", APK_INVALID)
def test_apk_refuses_what_apk_refuses(version):
    with pytest.raises(ValueError, match="not a"):
        parse("Alpine", version)


# Fixed versions in alpine-secdb that apk-tools itself would refuse: typos in the published data.
SECDB_TYPOS = {"0.12.5.-r0", "0.8.21.r2", "1.0.4.-r0", "1.11-20-r0", "1.18.-r2", "1.7.5.-r1", "10.2.22.r0",
               "10.2.24.r0", "10.2.26.r0", "2.15.r-r1", "2.7.16-33", "4.10-1-r1", "4.8.0.-r1", "57-1-r2",
               "6.6.2p1-r0"}  # fmt: skip


def test_apk_reads_every_alpine_wolfi_and_chainguard_version_in_the_feeds():
    versions = feed_versions("apk")
    assert len(versions) > 1400, "alpine-secdb v3.3-v3.11 alone names about 1500 fixed versions"
    refused = set()
    for version in versions:
        try:
            parse("Alpine", version)
        except ValueError:
            refused.add(version)
    assert refused == SECDB_TYPOS
    ordered = sorted(parse("Alpine", v) for v in set(versions) - refused)
    rng = random.Random(2)  # noqa: S311 - test data, not crypto
    for _ in range(1000):  # sorted for far pairs too, not only for the neighbours sorted() compared
        i, j = sorted(rng.sample(range(len(ordered)), 2))
        assert ordered[i] <= ordered[j], (ordered[i].string, ordered[j].string)


# --- univers bugs fixed in advisories/versions.py -----------------------------------------------------------------


def univers_answer(cls: type[uv.Version], a: str, b: str) -> str:
    try:
        x, y = cls(a), cls(b)
    except (ValueError, TypeError):
        return "invalid"
    answers = [op for op, holds in (("<", x < y), ("==", x == y), (">", x > y)) if holds]
    return answers[0] if len(answers) == 1 else "neither <, == nor >" if not answers else "/".join(answers)


# (ecosystem, a, b, univers class, what univers says, what the reference says, the reference)
UNIVERS_BUGS = [
    ("Debian", "1.0", "1.00", uv.DebianVersion, "neither <, == nor >", "==", "dpkg"),
    ("Debian", "2:1.2.3", "2:1.2.03", uv.DebianVersion, "neither <, == nor >", "==", "dpkg"),
    ("Red Hat", "1.0-2-1", "1.0-10", uv.RpmVersion, "<", ">", "rpm: release after the last '-'"),
    ("Red Hat", "1.0", "1.0-~1", uv.RpmVersion, ">", "<", "rpm: a missing release sorts first"),
    ("Alpine", "1.2.4_git20230717-r5", "1.2.4-r5", uv.AlpineLinuxVersion, "invalid", ">", "apk: _git suffix"),
    ("Alpine", "1.0~1234-r1", "1.0~2345-r0", uv.AlpineLinuxVersion, "invalid", "<", "apk: ~commit hash"),
    ("Alpine", "021109-r3", "20060512", uv.AlpineLinuxVersion, "invalid", "<", "apk: leading zero"),
    ("Alpine", "1.0", "1.00", uv.AlpineLinuxVersion, "==", "<", "apk: zero-led parts sort as strings"),
    ("Alpine", "7.50.1", "7.50.1-r0", uv.AlpineLinuxVersion, "==", "<", "apk: no revision sorts before -r0"),
    ("Go", "v2.0.0+incompatible", "v2.0.0", uv.GolangVersion, "neither <, == nor >", "==", "Go: build is ignored"),
    ("npm", "1.0.0+a", "1.0.0+b", uv.SemverVersion, "neither <, == nor >", "==", "npm semver"),
    ("Maven", "5.0.0.RELEASE", "5.0.0", uv.MavenVersion, ">", "==", "Maven 3.8 ComparableVersion"),
    ("Maven", "0.sp", "0.0.alpha", uv.MavenVersion, "<", ">", "Maven 3.8: .alpha reads as -alpha (MNG-7644)"),
    ("Maven", "2", "2-ga.10", uv.MavenVersion, "==", "<", "Maven 3.8: a sub-list against nothing (MNG-6964)"),
    ("Packagist", "1.0-beta1", "1.0-RC1", uv.ComposerVersion, ">", "<", "Composer: beta < RC"),
    ("Packagist", "1.0.0.0", "1.0.0", uv.ComposerVersion, "neither <, == nor >", "==", "Composer"),
]


@pytest.mark.parametrize(
    ("ecosystem", "a", "b", "univers_class", "univers_says", "reference_says", "reference"),
    UNIVERS_BUGS,
    ids=[f"{e}:{a}-vs-{b}" for e, a, b, *_ in UNIVERS_BUGS],
)
def test_univers_bug_is_fixed_locally(ecosystem, a, b, univers_class, univers_says, reference_says, reference):
    """The installed univers compares a vs b as `univers_says`; the reference tool says `reference_says`."""
    assert univers_answer(univers_class, a, b) == univers_says, (
        f"univers {UNIVERS} now answers {a} vs {b} differently: check whether the wrapper in advisories/versions.py "
        "is still needed"
    )
    assert {"<": -1, "==": 0, ">": 1}[reference_says] == compare(ecosystem, a, b), reference


@needs_dpkg
@needs_rpm
@needs_node_semver
@needs_maven
def test_univers_bug_cases_agree_with_the_tools_that_run_here():
    def maven(pairs: list[tuple[str, str]]) -> list[int]:
        return [maven_compare_chain([a, b])[0] for a, b in pairs]

    tools = (("Debian", dpkg_compare), ("Red Hat", rpm_compare), ("npm", node_semver_compare),
             ("Go", node_semver_compare), ("Maven", maven))  # fmt: skip
    for ecosystem, run in tools:
        pairs = [(a, b) for e, a, b, *_ in UNIVERS_BUGS if e == ecosystem]
        assert disagreements(pairs, ours(ecosystem, pairs), run(pairs)) == [], ecosystem


def test_univers_rpm_equal_versions_hash_alike():
    """univers: RpmVersion("1.0") == RpmVersion("1.00") but their hashes differ, which breaks sets and dicts."""
    assert univers_rpm.compare_rpm_versions("1.0", "1.00") == 0
    assert len({uv.RpmVersion("1.0"), uv.RpmVersion("1.00")}) == 2
    assert len({parse("Red Hat", "1.0"), parse("Red Hat", "1.00"), parse("Red Hat", "0:1.0")}) == 1
    assert len({parse("Debian", "1.0"), parse("Debian", "1.00"), parse("Debian", "0:1.0-0")}) == 1


def test_regression_nuget_parse_error_is_a_value_error():
    # univers' InvalidNuGetVersion is not a ValueError; parse() must still raise ValueError.
    with pytest.raises(ValueError, match="is not a NuGet version"):
        parse("NuGet", ":")
