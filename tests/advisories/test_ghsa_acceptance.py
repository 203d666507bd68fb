"""debian12-app's npm packages and jars against osv-ghsa, checked against an evaluation written independently.

Issue 4's acceptance: every advisory of ../shared/feeds/osv-ghsa whose ranges hold the installed version is
reported, and nothing else. The expected sets are computed here from the raw OSV JSON in the feed's tar.gz and
from the unpacked image, without the engine's catalogers and without advisories.matching or advisories.versions:

- npm: name and version of every `node_modules/<name>/package.json`; an affected entry's ranges and listed
  versions are written as one node-semver range (">=a <b || <=c || =d") and decided by `semver.satisfies` of the
  copy bundled with npm, the npm ecosystem's own reference.
- Maven: groupId:artifactId and version of every jar's `pom.properties`; versions are ordered by Maven's own
  ComparableVersion, run by a few lines of Java against the maven-artifact jar of the installed Maven.

Withdrawn records never count.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from advisories.findings import match_analysis
from scans.engine.findings import Report
from tests.advisories.test_findings import analysed, sync
from tests.advisories.test_sync import feed_path
from tests.conftest import corpus_file
from tests.engine.test_corpus import unpack

pytestmark = pytest.mark.django_db

IMAGE = "debian12-app.docker.tar"
OSV_GHSA = "osv-ghsa/ghsa-advisories.tar.gz"
NODE_MODULES = "app/web/node_modules"
JARS = "opt/java/lib"
NODE = shutil.which("node")
NPM = shutil.which("npm")
JAVA = shutil.which("java")
# Maven's own lib directory, else a local repository
MAVEN_ARTIFACT_JARS = (
    (Path("/usr/share/maven/lib"), "maven-artifact*.jar"),
    (Path.home() / ".m2/repository/org/apache/maven/maven-artifact", "*/maven-artifact-*.jar"),
)
_POM_PROPERTIES = re.compile(r"META-INF/maven/[^/]+/[^/]+/pom\.properties")

# (introduced or None for "0", end or None for none, end included: last_affected rather than fixed)
Span = tuple[str | None, str | None, bool]
Triple = tuple[str, str, str]  # (package name, installed version, GHSA id)

_SATISFIES = """
const semver = require(%s);
const options = {includePrerelease: true};  // OSV orders pre-releases by precedence, like every other version
const pairs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
console.log(JSON.stringify(pairs.map(([version, range]) => {
  if (semver.valid(version) === null || semver.validRange(range, options) === null) {
    throw new Error(`not SemVer: ${version} / ${range}`);  // never decided by a guess
  }
  return semver.satisfies(version, range, options);
})));
"""
_COMPARE_JAVA = """
import java.io.BufferedReader;
import java.io.InputStreamReader;
import org.apache.maven.artifact.versioning.ComparableVersion;

public class Compare {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null;) {
            String[] pair = line.split("\\t");
            int order = new ComparableVersion(pair[0]).compareTo(new ComparableVersion(pair[1]));
            System.out.println(Integer.signum(order));
        }
    }
}
"""


@pytest.fixture(scope="module")
def debian_root(tmp_path_factory) -> Path:
    return unpack(corpus_file(IMAGE), tmp_path_factory.mktemp("debian12-app") / "root")


# -- the raw feed ----------------------------------------------------------------------------------------------------


@functools.cache
def ghsa_records() -> list[dict]:
    with tarfile.open(feed_path(OSV_GHSA)) as archive:
        return [json.load(archive.extractfile(m)) for m in archive if m.isfile() and m.name.endswith(".json")]


def spans(entry: dict) -> list[Span]:
    """The intervals of an affected entry's SEMVER and ECOSYSTEM ranges; GHSA writes each range as an introduced
    event followed by at most one fixed or last_affected, in that order (asserted)."""
    found: list[Span] = []
    for osv_range in entry.get("ranges") or []:
        if osv_range["type"] not in ("SEMVER", "ECOSYSTEM"):
            continue  # GIT: commits, not versions
        opened: list[str | None] = []
        for event in osv_range["events"]:
            ((kind, version),) = event.items()
            if kind == "introduced":
                assert not opened, osv_range
                opened.append(None if version == "0" else version)
            else:
                assert kind in ("fixed", "last_affected"), osv_range
                assert opened, osv_range
                found.append((opened.pop(), version, kind == "last_affected"))
        found += [(start, None, False) for start in opened]
    return found


def entries(ecosystem: str, names: set[str]) -> Iterator[tuple[str, bool, str, list[Span], list[str]]]:
    """(GHSA id, withdrawn, package, spans, listed versions) of every affected entry naming an installed package."""
    for record in ghsa_records():
        for entry in record.get("affected") or []:
            package = entry["package"]
            if package["ecosystem"] == ecosystem and package["name"] in names:
                yield (
                    record["id"],
                    bool(record.get("withdrawn")),
                    package["name"],
                    spans(entry),
                    entry.get("versions") or [],
                )


Question = tuple[str, list[Span], list[str]]  # (installed version, spans, listed versions)
Decide = Callable[[list[Question]], list[bool]]


def expected_triples(
    ecosystem: str, installed: set[tuple[str, str]], decide: Decide
) -> tuple[set[Triple], set[Triple]]:
    """(affected, affected but withdrawn): the (name, version, GHSA id) whose ranges or versions hold the version."""
    questions, triples = [], []
    for ghsa_id, withdrawn, name, found, listed in entries(ecosystem, {name for name, _ in installed}):
        for version in sorted(v for n, v in installed if n == name):
            if found or listed:  # an entry with neither affects nothing
                questions.append((version, found, listed))
                triples.append(((name, version, ghsa_id), withdrawn))
    answers = decide(questions)
    hits = [triple for triple, affected in zip(triples, answers, strict=True) if affected]
    return {t for t, withdrawn in hits if not withdrawn}, {t for t, withdrawn in hits if withdrawn}


def reported(report: Report, kind: str) -> set[Triple]:
    """(name, version, GHSA id) of every finding on a `kind` package, by the GHSA records in its evidence."""
    found = set()
    for finding in report.findings:
        if finding.package.type != kind:
            continue
        for evidence in finding.evidence:
            assert evidence.matched_version == finding.package.version
            if evidence.advisory_id.startswith("GHSA-"):
                found.add((finding.package.name, finding.package.version, evidence.advisory_id))
    return found


def difference(kind: str, packages: int, expected: set[Triple], actual: set[Triple], report: Report) -> str:
    return (
        f"{kind}: {packages} packages, {len(expected)} expected, {len(actual)} reported; "
        f"missing {sorted(expected - actual)}; extra {sorted(actual - expected)}; notes {report.notes}"
    )


# -- npm: node-semver ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_semver() -> Path:
    if NODE is None or NPM is None:
        pytest.skip("node and npm are needed: npm's bundled node-semver is the reference for npm ranges")
    root = subprocess.run([NPM, "root", "-g"], capture_output=True, text=True, check=True).stdout.strip()
    path = Path(root) / "npm" / "node_modules" / "semver"
    if not path.is_dir():
        pytest.skip(f"npm's bundled semver package is missing ({path})")
    return path


def semver_expression(found: list[Span], listed: list[str]) -> str:
    parts = []
    for start, end, included in found:
        lower = [f">={start}"] if start else []
        upper = [f"<={end}" if included else f"<{end}"] if end else []
        parts.append(" ".join(lower + upper) or "*")
    return " || ".join(parts + [f"={version}" for version in listed])


def npm_installed(root: Path) -> set[tuple[str, str]]:
    """(name, version) of every package directory under node_modules (scoped ones too), nested ones included."""
    found = set()
    for manifest in (root / NODE_MODULES).rglob("package.json"):
        holder = manifest.parent.parent
        if holder.name.startswith("@"):
            holder = holder.parent
        if holder.name == "node_modules":
            data = json.loads(manifest.read_text())
            found.add((data["name"], data["version"]))
    return found


def test_npm_packages_match_exactly_the_ghsa_records_holding_their_version(debian_root, node_semver):
    sync("osv", OSV_GHSA)
    installed = npm_installed(debian_root)
    packages = [p for p in analysed(IMAGE).packages if p.type == "npm"]
    assert len(installed) == 68  # the corpus README; ms three times (2.0.0, 2.1.1, 2.1.3)
    assert sorted((p.name, p.version) for p in packages) == sorted(installed)

    def satisfies(questions: list[Question]) -> list[bool]:
        pairs = [(version, semver_expression(found, listed)) for version, found, listed in questions]
        script = _SATISFIES % json.dumps(str(node_semver))
        run = subprocess.run([NODE, "-e", script], input=json.dumps(pairs), capture_output=True, text=True, check=True)
        return json.loads(run.stdout)

    expected, withdrawn = expected_triples("npm", installed, satisfies)
    report = match_analysis(analysed(IMAGE))
    actual = reported(report, "npm")
    # minimist 1.2.0 is inside GHSA-7fhm-mqm4-2wp7's range, and that record is withdrawn: it must not count
    assert ("minimist", "1.2.0", "GHSA-7fhm-mqm4-2wp7") in withdrawn
    assert not withdrawn & actual
    assert len(expected) > 20
    assert actual == expected, difference("npm", len(packages), expected, actual, report)


# -- Maven: ComparableVersion ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def maven_compare(tmp_path_factory) -> Callable[[set[tuple[str, str]]], dict[tuple[str, str], int]]:
    """Maven's ComparableVersion compareTo (-1, 0, 1) for each pair, in one java process."""
    found = [jar for folder, pattern in MAVEN_ARTIFACT_JARS for jar in sorted(folder.glob(pattern))]
    jars = [p for p in found if not p.name.endswith(("-sources.jar", "-javadoc.jar"))]
    if JAVA is None or not jars:
        pytest.skip("java and Maven's maven-artifact jar are needed: ComparableVersion is the reference for Maven")
    source = tmp_path_factory.mktemp("maven") / "Compare.java"
    source.write_text(_COMPARE_JAVA)

    def compare(pairs: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        ordered = sorted(pairs)
        stdin = "".join(f"{a}\t{b}\n" for a, b in ordered)
        run = subprocess.run([JAVA, "-cp", str(jars[0]), str(source)], input=stdin, capture_output=True, text=True,
                             check=True)  # fmt: skip
        return dict(zip(ordered, map(int, run.stdout.split()), strict=True))

    return compare


def maven_installed(root: Path) -> tuple[set[tuple[str, str]], list[str]]:
    """(groupId:artifactId, version) of every pom.properties in the jars, and the jars that have none."""
    found, bare = set(), []
    for jar in sorted((root / JARS).glob("*.jar")):
        with zipfile.ZipFile(jar) as archive:
            names = [n for n in archive.namelist() if _POM_PROPERTIES.fullmatch(n)]
            for name in names:
                lines = archive.read(name).decode().splitlines()
                fields = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
                found.add((f"{fields['groupId'].strip()}:{fields['artifactId'].strip()}", fields["version"].strip()))
        bare += [] if names else [jar.name]
    return found, bare


def in_span(version: str, span: Span, order: dict[tuple[str, str], int]) -> bool:
    start, end, included = span
    above = start is None or order[(version, start)] >= 0
    below = end is None or order[(version, end)] < (1 if included else 0)
    return above and below


def test_maven_jars_match_exactly_the_ghsa_records_holding_their_version(debian_root, maven_compare):
    sync("osv", OSV_GHSA)
    installed, bare = maven_installed(debian_root)
    packages = [p for p in analysed(IMAGE).packages if p.type == "maven"]
    assert (len(installed), len(bare)) == (36, 6)  # the corpus README: 42 jars, 36 with pom.properties
    from_poms = [p for p in packages if p.path.rsplit("/", 1)[-1] not in bare]
    assert sorted((p.name, p.version) for p in from_poms) == sorted(installed)
    # the six jars without pom.properties (allure-*, freemarker, jcommander) are named by no Maven entry of the
    # feed, so reading pom.properties alone cannot miss an expected finding
    feed_artifacts = {e["package"]["name"].split(":")[-1] for r in ghsa_records() for e in r.get("affected") or []
                      if e["package"]["ecosystem"] == "Maven"}  # fmt: skip
    assert not {re.sub(r"-\d.*", "", jar) for jar in bare} & feed_artifacts

    def decide(questions: list[Question]) -> list[bool]:
        bounds = {(v, b) for v, found, listed in questions for span in found for b in span[:2] if b is not None}
        order = maven_compare(bounds | {(v, b) for v, _, listed in questions for b in listed})
        return [any(in_span(v, span, order) for span in found) or any(order[(v, b)] == 0 for b in listed)
                for v, found, listed in questions]  # fmt: skip

    expected, withdrawn = expected_triples("Maven", installed, decide)
    report = match_analysis(analysed(IMAGE))
    actual = reported(report, "maven")
    assert not withdrawn & actual
    assert len(expected) > 20
    assert actual == expected, difference("maven", len(packages), expected, actual, report)
