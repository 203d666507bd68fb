"""The Node cataloger: installed trees and every lockfile format, against npm's own listing.

The lockfile fixtures under fixtures/node were written by the real tools
(npm 6 for v1, npm 11 for v2/v3, yarn 1.22, yarn 4.5, pnpm 7/8/9) from one
small project of ours, so every format must give the same inventory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scans.engine.analyzer import Analyzer
from scans.engine.catalogers.base import FileContent
from scans.engine.catalogers.node import NodeCataloger
from scans.engine.errors import ParseError
from scans.engine.models import Package, Platform
from scans.engine.sources import open_local
from tests.conftest import corpus_file
from tests.engine.memfile import MemFile
from tests.engine.test_corpus import unpack

FIXTURES = Path(__file__).parent / "fixtures" / "node"
MS_200 = "pkg:npm/ms@2.0.0"


def wanted_files(root: Path) -> dict[str, MemFile]:
    """The files the cataloger wants in a root file system, as the layer reader keeps them (links not followed)."""
    cataloger = NodeCataloger()
    files = {}
    for directory, _, names in os.walk(root):  # never descends into linked folders, as the reader's tree
        for name in names:
            full = Path(directory, name)
            path = full.relative_to(root).as_posix()
            if not full.is_symlink() and cataloger.wants(path):
                files[path] = MemFile(path, full.read_bytes())
    return files


def catalog(root: Path) -> list[Package]:
    """What the analyzer does with the cataloger, plus the `merge` hook it is to call afterwards."""
    cataloger = NodeCataloger()
    files = wanted_files(root)
    packages = [p for path in sorted(files) for p in cataloger.parse(files[path])]
    return cataloger.merge(packages, files)


def rows(packages: list[Package]) -> set[tuple[object, ...]]:
    return {(p.name, p.version, p.direct, p.dev, p.dependencies) for p in packages}


# -- wants ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("app/node_modules/express/package.json", True),
        ("node_modules/express/package.json", True),
        ("app/node_modules/@types/node/package.json", True),
        ("app/node_modules/a/node_modules/@s/b/node_modules/c/package.json", True),
        ("app/node_modules/.pnpm/ms@2.1.3/node_modules/ms/package.json", True),
        ("app/node_modules/.pnpm/@types+ms@0.7.34/node_modules/@types/ms/package.json", True),
        ("usr/local/lib/node_modules/npm/node_modules/semver/package.json", True),
        ("app/package.json", True),  # the project manifest
        ("package.json", True),
        ("app/package-lock.json", True),
        ("app/npm-shrinkwrap.json", True),
        ("app/yarn.lock", True),
        ("pnpm-lock.yaml", True),
        ("app/node_modules/x/lib/package.json", False),
        ("app/node_modules/@s/x/dist/package.json", False),
        ("app/node_modules/x/test/fixtures/node_modules/y/package.json", False),
        ("app/node_modules/.package-lock.json", False),
        ("app/node_modules/.bin/package.json", False),
        ("app/node_modules/@scope/package.json", False),
        ("app/node_modules/package.json", False),
        ("app/node_modules/x/package-lock.json", False),
        ("app/node_modules/x/yarn.lock", False),
        ("app/my_node_modules/x/package.json", False),
        ("app/package.json.bak", False),
        ("app/mypackage.json", False),
        ("app/index.js", False),
    ],
)
def test_wants(path, wanted):
    assert NodeCataloger().wants(path) is wanted


# -- lockfiles: one project, every format -----------------------------------------------

# fixture-app: debug 2.6.9 (needs ms 2.0.0), ms 2.1.3, @types/ms, legacy-ms = npm:ms@2.0.0;
# devDependencies: once 1.4.0 (needs wrappy 1).
BASE = {
    ("@types/ms", "0.7.34", True, False, ()),
    ("debug", "2.6.9", True, False, (MS_200,)),
    ("ms", "2.0.0", True, False, ()),  # direct as legacy-ms, and debug's
    ("ms", "2.1.3", True, False, ()),
    ("once", "1.4.0", True, True, ("pkg:npm/wrappy@1.0.2",)),
    ("wrappy", "1.0.2", False, True, ()),
}
LOCKFILES = {
    "npm-v1": "package-lock.json",
    "npm-v2": "package-lock.json",
    "yarn-v1": "yarn.lock",
    "yarn-berry": "yarn.lock",
    "pnpm-v5": "pnpm-lock.yaml",
    "pnpm-v6": "pnpm-lock.yaml",
    "pnpm-v9": "pnpm-lock.yaml",
}


@pytest.mark.parametrize("case", sorted(LOCKFILES))
def test_every_lockfile_format_gives_the_same_inventory(case):
    packages = catalog(FIXTURES / case)
    assert rows(packages) == BASE
    assert {p.path for p in packages} == {f"app/{LOCKFILES[case]}"}
    assert {p.purl for p in packages} >= {"pkg:npm/%40types/ms@0.7.34", "pkg:npm/debug@2.6.9"}


def test_npm_v2_carries_licenses():
    by_name = {p.purl: p.licenses for p in catalog(FIXTURES / "npm-v2")}
    assert by_name["pkg:npm/once@1.4.0"] == ("ISC",)
    assert by_name["pkg:npm/ms@2.1.3"] == ("MIT",)


def test_without_the_manifest_the_flags_lockfiles_lack_stay_open():
    """yarn v1 and npm v1 do not record what the project itself asks for: direct is None, not a guess."""
    cataloger = NodeCataloger()
    for case in ("yarn-v1", "npm-v1"):
        lockfile = f"app/{LOCKFILES[case]}"
        packages = cataloger.parse(MemFile.from_fixture(FIXTURES / case, lockfile))
        direct = {(p.name, p.version): p.direct for p in packages}
        assert direct[("debug", "2.6.9")] is None
        if case == "npm-v1":
            assert {p.name for p in packages if p.dev} == {"once", "wrappy"}  # v1 records dev flags


@pytest.mark.parametrize("case", ["npm-workspaces", "pnpm-workspaces"])
def test_workspaces(case):
    """Members' own dependencies are direct; members themselves are first-party and not reported."""
    assert rows(catalog(FIXTURES / case)) == {
        ("debug", "2.6.9", True, False, (MS_200,)),  # packages/lib's
        ("ms", "2.0.0", False, False, ()),
        ("ms", "2.1.3", True, True, ()),  # the root's devDependency
        ("wrappy", "1.0.2", True, False, ()),  # packages/lib's
    }


# -- installed trees --------------------------------------------------------------------


def test_installed_tree_is_the_truth_one_package_per_copy():
    """`npm ci --omit=dev` left once and wrappy out: the lockfile lists them, the image has not got them.

    The private package, the package.json deeper in a package, a fixture's node_modules and
    node_modules/.package-lock.json are not packages.
    """
    packages = catalog(FIXTURES / "installed")
    nm = "app/node_modules/"
    assert {(p.name, p.version, p.path, p.direct, p.dev, p.dependencies) for p in packages} == {
        ("@types/ms", "0.7.34", f"{nm}@types/ms/package.json", True, False, ()),
        ("debug", "2.6.9", f"{nm}debug/package.json", True, False, (MS_200,)),
        ("ms", "2.0.0", f"{nm}debug/node_modules/ms/package.json", False, False, ()),
        ("ms", "2.0.0", f"{nm}legacy-ms/package.json", True, False, ()),  # the same name@version twice: two paths
        ("ms", "2.1.3", f"{nm}ms/package.json", True, False, ()),
    }
    assert next(p for p in packages if p.path.endswith("legacy-ms/package.json")).licenses == ("MIT",)
    assert all(p.purl == f"pkg:npm/{p.name.replace('@', '%40')}@{p.version}" for p in packages)


def test_pnpm_virtual_store_is_read_once_through_its_real_folders():
    packages = catalog(FIXTURES / "installed-pnpm")
    assert sorted((p.name, p.version) for p in packages) == [
        ("@types/ms", "0.7.34"),
        ("debug", "2.6.9"),
        ("ms", "2.0.0"),
        ("ms", "2.1.3"),
    ]
    assert all("/.pnpm/" in p.path for p in packages)


def test_dev_flags_of_an_installed_tree_follow_the_graph():
    manifest = {"name": "x", "dependencies": {"a": "1"}, "devDependencies": {"t": "1"}}
    tree = {
        "package.json": manifest,
        "node_modules/a/package.json": {"name": "a", "version": "1.0.0", "dependencies": {"shared": "1"}},
        "node_modules/t/package.json": {"name": "t", "version": "1.0.0", "dependencies": {"shared": "1", "tonly": "1"}},
        "node_modules/shared/package.json": {"name": "shared", "version": "1.0.0"},
        "node_modules/tonly/package.json": {"name": "tonly", "version": "1.0.0"},
        "node_modules/stray/package.json": {"name": "stray", "version": "1.0.0"},
    }
    files = {path: MemFile(path, json.dumps(doc).encode()) for path, doc in tree.items()}
    cataloger = NodeCataloger()
    packages = cataloger.merge([p for f in files.values() for p in cataloger.parse(f)], files)
    assert {p.name: (p.direct, p.dev) for p in packages} == {
        "a": (True, False),
        "t": (True, True),
        "shared": (False, False),  # reached from a production dependency too
        "tonly": (False, True),
        "stray": (False, False),  # extraneous: neither
    }


def test_global_installs_without_a_project_leave_direct_open():
    files = {
        p: MemFile(p, json.dumps({"name": n, "version": "1.0.0"}).encode())
        for p, n in [
            ("usr/local/lib/node_modules/npm/package.json", "npm"),
            ("usr/local/lib/node_modules/npm/node_modules/semver/package.json", "semver"),
        ]
    }
    cataloger = NodeCataloger()
    packages = cataloger.merge([p for f in files.values() for p in cataloger.parse(f)], files)
    assert {p.name: p.direct for p in packages} == {"npm": None, "semver": False}


def test_a_source_tree_lockfile_is_reported_when_nothing_is_installed_beside_it():
    root_lock = MemFile.from_fixture(FIXTURES / "npm-v2", "app/package-lock.json")
    elsewhere = MemFile("srv/node_modules/ms/package.json", b'{"name": "ms", "version": "2.1.3"}')
    cataloger = NodeCataloger()
    packages = cataloger.merge(cataloger.parse(root_lock) + cataloger.parse(elsewhere), {})
    assert len([p for p in packages if p.path == "app/package-lock.json"]) == 6
    assert len([p for p in packages if p.path.startswith("srv/")]) == 1


# -- through the analyzer: layers and whiteouts -----------------------------------------------


class Recording:
    """Hands the analyzer's kept files to `merge` afterwards, as the proposed analyzer hook will."""

    def __init__(self) -> None:
        self.inner = NodeCataloger()
        self.name, self.version = self.inner.name, self.inner.version
        self.files: dict[str, FileContent] = {}

    def wants(self, path: str) -> bool:
        return self.inner.wants(path)

    def parse(self, file: FileContent) -> list[Package]:
        self.files.setdefault(file.path, file)  # the newest version comes first
        return self.inner.parse(file)

    def merge_into(self, packages: list[Package]) -> list[Package]:
        return self.inner.merge([p for p in packages if p.type == "npm"], self.files)


def analyse(archive: Path, work: Path) -> tuple[list[Package], list[str]]:
    work.mkdir()
    recording = Recording()
    with open_local(str(archive), Platform()) as source:
        analysis = Analyzer(work, catalogers=[recording]).run(source)
    return recording.merge_into(analysis.packages), analysis.warnings


def test_layers_and_whiteouts(tmp_path):
    from tests.support.images import F, oci_layout

    def pkg(name, version):
        return F(f"app/node_modules/{name}/package.json", json.dumps({"name": name, "version": version}))

    layout = oci_layout(
        tmp_path / "image",
        [
            [F("app/package.json", '{"dependencies": {"a": "1", "b": "1"}}'), pkg("a", "1.0.0"), pkg("b", "1.0.0")],
            [F("app/node_modules/b/.wh.package.json"), pkg("a", "1.0.1")],  # b deleted, a upgraded
        ],
    )
    packages, warnings = analyse(layout, tmp_path / "work")
    assert warnings == []
    assert [(p.name, p.version, p.layer.index) for p in packages] == [("a", "1.0.1", 1)]


def test_malformed_file_is_a_warning_naming_it_and_the_rest_is_read(tmp_path):
    from tests.support.images import F, oci_layout

    layout = oci_layout(
        tmp_path / "image",
        [[F("app/yarn.lock", "garbage without a colon\n"), F("app/node_modules/a/package.json", '{"name": "a"')]]
        + [[F("srv/node_modules/ok/package.json", '{"name": "ok", "version": "1.0.0"}')]],
    )
    packages, warnings = analyse(layout, tmp_path / "work")
    assert [p.name for p in packages] == ["ok"]
    assert len(warnings) == 2
    assert any("app/yarn.lock" in w for w in warnings)
    assert any("app/node_modules/a/package.json" in w for w in warnings)


# -- acceptance: debian12-app against npm ls -------------------------------------------------


def npm_ls(npm: str, project: Path, *extra: str) -> dict:
    done = subprocess.run(
        [npm, "ls", "--all", "--json", *extra, "--prefix", str(project)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def npm_nodes(tree: dict):
    """(name, node, parent node or None at the top) for every node of an `npm ls --json` tree."""
    todo = [(tree, None)]
    while todo:
        node, parent = todo.pop()
        for name, child in node.get("dependencies", {}).items():
            yield child.get("name", name), child, parent
            todo.append((child, child))


def test_debian12_app_equals_npm_ls(tmp_path):
    archive = corpus_file("debian12-app.docker.tar")
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed (Node.js 20 brings it)")
    packages, warnings = analyse(archive, tmp_path / "work")
    web = unpack(archive, tmp_path / "root") / "app/web"
    listing = npm_ls(npm, web)
    long_listing = npm_ls(npm, web, "--long")

    # Same packages: npm ls names each installed copy once or more (deduped), the engine once per copy.
    assert {(p.name, p.version) for p in packages} == {(n, c["version"]) for n, c, _ in npm_nodes(listing)}
    copies = {
        (n, c["version"], Path(c["path"]).relative_to(web.parent.parent).as_posix())
        for n, c, _ in npm_nodes(long_listing)
    }
    assert {(p.name, p.version, p.path.removesuffix("/package.json")) for p in packages} == copies
    assert len(packages) == len(copies) == 68
    assert sorted(p.version for p in packages if p.name == "ms") == ["2.0.0", "2.1.1", "2.1.3"]

    # Same graph and the same direct dependencies; nothing is dev in a production install.
    def purl(name, node):
        return f"pkg:npm/{name.replace('@', '%40')}@{node['version']}"

    edges = {
        (purl(parent["name"], parent), purl(n, c)) for n, c, parent in npm_nodes(long_listing) if parent is not None
    }
    assert len(edges) == 101
    assert {(p.purl, d) for p in packages for d in p.dependencies} == edges
    assert {(p.name, p.version) for p in packages if p.direct} == {
        (n, c["version"]) for n, c in listing["dependencies"].items()
    }
    assert not any(p.dev for p in packages)

    assert all(p.path.startswith("app/web/node_modules/") and p.layer.index == 2 for p in packages)
    assert warnings == []


# -- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("app/package-lock.json", b'{"lockfileVersion": 3, "packages": {', "invalid JSON"),
        ("app/package-lock.json", b"[1, 2]", "must be a JSON object"),
        ("app/package-lock.json", b'{"name": "x"}', "not an npm lockfile"),
        ("app/package-lock.json", b"[" * 100_000, "invalid JSON"),
        ("app/node_modules/x/package.json", b"\xff\xfe garbage", "not UTF-8"),
        ("app/package.json", b'"just a string"', "must be a JSON object"),
        ("app/yarn.lock", b"# yarn lockfile v1\n\n  version 1\n", "before any entry"),
        ("app/yarn.lock", b'__metadata:\n  version: 8\n"a@npm:1": [unclosed\n', "not a YAML yarn.lock"),
        ("app/pnpm-lock.yaml", b"- a list\n", "must be a YAML mapping"),
        ("app/pnpm-lock.yaml", b"lockfileVersion: banana\n", "not a pnpm lockfile version"),
        ("app/pnpm-lock.yaml", b"lockfileVersion: '9.0'\npackages: {a@1: !!python/object:os.system {}}\n", "YAML"),
    ],
)
def test_malformed_files_raise_parse_error_naming_the_file(path, data, message):
    with pytest.raises(ParseError, match=message) as caught:
        NodeCataloger().parse(MemFile(path, data))
    assert str(caught.value).startswith(path)


def test_yaml_aliases_that_would_multiply_work_are_refused():
    deps = "\n".join(f"    d{i}: 1.0.0" for i in range(50))
    entries = "\n".join(f"  /p{i}@1.0.0: *deps" for i in range(50))
    text = f"lockfileVersion: '6.0'\nshared: &deps\n  dependencies:\n{deps}\npackages:\n{entries}\n"
    with pytest.raises(ParseError, match="aliases"):
        NodeCataloger().parse(MemFile("app/pnpm-lock.yaml", text.encode()))


def test_oversized_files_are_refused_before_reading():
    class Huge(MemFile):
        @property
        def size(self) -> int:
            return 1 << 40

    with pytest.raises(ParseError, match="bytes"):
        NodeCataloger().parse(Huge("app/package-lock.json", b"{}"))


def test_absurdly_deep_lockfile_trees_are_bounded():
    deep = "/".join(["node_modules/a"] * 300)
    packages = {f"{deep}/node_modules/p{i}": {"version": "1.0.0"} for i in range(40)}
    packages[deep] = {"version": "1.0.0", "dependencies": {f"x{i}": "1" for i in range(20_000)}}
    data = json.dumps({"lockfileVersion": 3, "packages": packages}).encode()
    with pytest.raises(ParseError, match="too large or deep"):
        NodeCataloger().parse(MemFile("app/package-lock.json", data))


# -- hypothesis: no parser crashes or hangs on garbage or truncated input ----------------------

SAMPLES = [
    ("app/package-lock.json", FIXTURES / "npm-v1/app/package-lock.json"),
    ("app/package-lock.json", FIXTURES / "npm-v2/app/package-lock.json"),
    ("app/package-lock.json", FIXTURES / "npm-workspaces/app/package-lock.json"),
    ("app/yarn.lock", FIXTURES / "yarn-v1/app/yarn.lock"),
    ("app/yarn.lock", FIXTURES / "yarn-berry/app/yarn.lock"),
    ("app/pnpm-lock.yaml", FIXTURES / "pnpm-v5/app/pnpm-lock.yaml"),
    ("app/pnpm-lock.yaml", FIXTURES / "pnpm-v6/app/pnpm-lock.yaml"),
    ("app/pnpm-lock.yaml", FIXTURES / "pnpm-v9/app/pnpm-lock.yaml"),
    ("app/pnpm-lock.yaml", FIXTURES / "pnpm-workspaces/app/pnpm-lock.yaml"),
    ("app/node_modules/debug/package.json", FIXTURES / "installed/app/node_modules/debug/package.json"),
    ("app/package.json", FIXTURES / "installed/app/package.json"),
]
PATHS = sorted({path for path, _ in SAMPLES})
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["", "node_modules/a", "node_modules/a/node_modules/b", "packages/w", "a", "ms", "version"])
            | st.sampled_from(
                ["dependencies", "packages", "lockfileVersion", "name", "dev", "link", "requires", "license"]
            )
            | st.text(max_size=8),
            inner,
            max_size=6,
        )
    ),
    max_leaves=30,
)


def parse_quietly(path: str, data: bytes) -> None:
    cataloger = NodeCataloger()
    try:
        packages = cataloger.parse(MemFile(path, data))
    except ParseError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert message.startswith(path)
        return
    for package in cataloger.merge(packages, {path: MemFile(path, data)}):
        assert package.name
        assert package.version
        assert package.purl.startswith("pkg:npm/")


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), st.binary(max_size=2048))
def test_garbage_bytes(path, data):
    parse_quietly(path, data)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data())
def test_truncated_and_corrupted_real_files(sample, data):
    path, fixture = sample
    raw = fixture.read_bytes()
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    flip = data.draw(st.integers(min_value=0, max_value=max(cut - 1, 0)))
    byte = data.draw(st.integers(min_value=0, max_value=255))
    parse_quietly(path, raw[:cut])
    if cut:
        parse_quietly(path, raw[:flip] + bytes([byte]) + raw[flip + 1 : cut])


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), json_values)
def test_json_and_yaml_of_any_shape(path, value):
    parse_quietly(path, json.dumps(value).encode())  # JSON is YAML too


yarn_lines = st.lists(
    st.sampled_from(
        ['"a@^1", a@1:', "b@npm:a@1:", '  version "1.0.0"', "  dependencies:", '    a "^1"', "    b 1", "c@file:x:"]
    )
    | st.text(alphabet=' "@:,#\nab1', max_size=20),
    max_size=20,
).map("\n".join)


@settings(max_examples=300, deadline=2000)
@given(yarn_lines)
def test_yarn_v1_lines_of_any_order(text):
    parse_quietly("app/yarn.lock", text.encode())
