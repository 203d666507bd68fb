"""Go: build info of binaries and go.mod files.

Binaries are checked against `go version -m` (Debian's golang-go) wherever
it is installed: the esbuild binary of the corpus (Go 1.17, the pointer
format), binaries built here for four targets (Go 1.19, the inline format;
ELF 64 and 32-bit, PE, Mach-O), and ELF files of our own making in both
formats and byte orders. Without Go, esbuild is checked against an
independent reading of its bytes: the module info between cmd/go's
sentinels and the one `go1.N.N` string.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scans.engine.analyzer import Analyzer
from scans.engine.catalogers.golang import GoCataloger, go_semver
from scans.engine.errors import ParseError
from scans.engine.models import Platform
from scans.engine.sources import open_local
from tests.conftest import corpus_file
from tests.engine.memfile import MemFile
from tests.support.elf import INFO_END, INFO_START, Sec, elf, go_inline_binary, go_pointer_binary
from tests.support.extract import extract_files

GO = shutil.which("go")
ESBUILD = "usr/local/bin/esbuild"
MODINFO = (
    "path\texample.com/app/cmd/app\n"
    "mod\texample.com/app\tv1.4.0\th1:aaa=\n"
    "dep\tgolang.org/x/sys\tv0.0.0-20210908233432-aa78b53d3365\th1:bbb=\n"
    "dep\texample.com/old\tv1.0.0\n"
    "=>\texample.com/new\tv1.1.0\th1:ccc=\n"
    "dep\texample.com/forked\tv0.3.0\n"
    "=>\t../forked\t(devel)\t\n"
    "build\t-compiler=gc\n"
)


def packages(data: bytes, path: str = "app") -> set[tuple[str, str]]:
    return {(p.name, p.version) for p in GoCataloger().parse(MemFile(path, data))}


# -- the reference readers ------------------------------------------------------------------------


def go_version_m(binary: Path) -> set[tuple[str, str]]:
    """What `go version -m` prints, as packages: the mapping the cataloger documents, applied to Go's output."""
    binary.chmod(0o755)  # go version skips files without an executable bit
    out = subprocess.run([GO, "version", "-m", str(binary)], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    toolchain = lines[0].rsplit(": ", 1)[1]
    modules: list[list[str]] = []
    for line in lines[1:]:
        kind, *fields = line.strip("\t").split("\t")
        if kind in ("mod", "dep"):
            modules.append([kind, fields[0], fields[1]])
        elif kind == "=>":
            modules[-1][1:] = fields[:2]
    found = {("stdlib", go_semver(toolchain))}
    for _kind, path, version in modules:
        if path.startswith(("./", "../")):
            continue  # a local directory replacement
        found.add((path, "" if version == "(devel)" else version))
    return found


def strings_reference(binary: Path) -> set[tuple[str, str]]:
    """Without Go: the module info framed by cmd/go's sentinels, and the single go1.N.N string of the binary."""
    data = binary.read_bytes()
    start = data.index(INFO_START) + len(INFO_START)
    modinfo = data[start : data.index(INFO_END, start)].decode()
    (toolchain,) = set(re.findall(rb"go1\.\d+\.\d+", data))
    found = {("stdlib", toolchain.decode()[2:])}
    for line in modinfo.splitlines():
        kind, _, rest = line.partition("\t")
        if kind in ("mod", "dep"):
            path, version = rest.split("\t")[:2]
            found.add((path, "" if version == "(devel)" else version))
    return found


# -- acceptance: the corpus -----------------------------------------------------------------------


def test_esbuild_in_debian12_app_is_what_go_version_m_shows(tmp_path):
    archive = corpus_file("debian12-app.docker.tar")
    esbuild = extract_files(archive, tmp_path / "ref", lambda name: name == ESBUILD)[ESBUILD]
    expected = go_version_m(esbuild) if GO else strings_reference(esbuild)
    work = tmp_path / "work"
    work.mkdir()
    with open_local(str(archive), Platform()) as source:
        analysis = Analyzer(work, catalogers=[GoCataloger()]).run(source)
    assert analysis.warnings == []
    found = [p for p in analysis.packages if p.type == "golang"]
    assert {(p.name, p.version) for p in found} == expected
    assert len(found) == len(expected) == 3  # stdlib, the main module, golang.org/x/sys
    assert {p.path for p in found} == {ESBUILD}
    assert {p.layer.index for p in found} == {3}
    (stdlib,) = [p for p in found if p.name == "stdlib"]
    assert stdlib.purl == f"pkg:golang/stdlib@{stdlib.version}"  # a bare SemVer, as OSV's stdlib ranges write it
    assert stdlib.version[0].isdigit()


def test_esbuild_reference_readers_agree(tmp_path):
    # The fallback reference is only trusted because it agrees with Go where both run.
    if not GO:
        pytest.skip("go is not installed (apt-get install golang-go)")
    esbuild = extract_files(corpus_file("debian12-app.docker.tar"), tmp_path, lambda name: name == ESBUILD)[ESBUILD]
    assert strings_reference(esbuild) == go_version_m(esbuild)


# -- binaries built here ------------------------------------------------------------------------------

_APP = """package main

import (
\t"fmt"

\t"example.com/dep"
\t"example.com/local"
\t"example.com/old"
)

func main() { fmt.Println(dep.Name, old.Name, local.Name) }
"""
_GO_MOD = """module example.com/app

go 1.19

require (
\texample.com/dep v1.2.3
\texample.com/local v0.0.0
\texample.com/old v1.0.0
)

replace example.com/old => example.com/new v1.1.0

replace example.com/local => ../local
"""


def _proxy_module(proxy: Path, path: str, version: str, module: str, package: str) -> None:
    """A module in a file:// GOPROXY, so that the build needs no network."""
    where = proxy / path / "@v"
    where.mkdir(parents=True, exist_ok=True)
    go_mod = f"module {module}\n\ngo 1.19\n"
    (where / f"{version}.mod").write_text(go_mod)
    (where / f"{version}.info").write_text(f'{{"Version": "{version}", "Time": "2024-01-01T00:00:00Z"}}')
    (where / "list").write_text(version + "\n")
    with zipfile.ZipFile(where / f"{version}.zip", "w") as z:
        z.writestr(f"{path}@{version}/go.mod", go_mod)
        z.writestr(f"{path}@{version}/{package}.go", f'package {package}\n\nconst Name = "{path}"\n')


@pytest.fixture(scope="module")
def go_project(tmp_path_factory):
    if not GO:
        pytest.skip("go is not installed (apt-get install golang-go)")
    root = tmp_path_factory.mktemp("go")
    _proxy_module(root / "proxy", "example.com/dep", "v1.2.3", "example.com/dep", "dep")
    _proxy_module(root / "proxy", "example.com/new", "v1.1.0", "example.com/old", "old")
    (root / "local").mkdir()
    (root / "local/go.mod").write_text("module example.com/local\n\ngo 1.19\n")
    (root / "local/local.go").write_text('package local\n\nconst Name = "local"\n')
    (root / "app").mkdir()
    (root / "app/go.mod").write_text(_GO_MOD)
    (root / "app/main.go").write_text(_APP)
    return root


@pytest.mark.parametrize(
    ("goos", "goarch"), [("linux", "amd64"), ("linux", "386"), ("windows", "amd64"), ("darwin", "arm64")]
)
def test_built_binaries_are_what_go_version_m_shows(go_project, goos, goarch):
    env = {
        "PATH": str(Path(GO).parent),
        "HOME": str(go_project),
        "GOPATH": str(go_project / "gopath"),
        "GOCACHE": str(Path.home() / ".cache" / "go-build") if Path.home().exists() else str(go_project / "cache"),
        "GOPROXY": f"file://{go_project / 'proxy'}",
        "GOFLAGS": "-mod=mod",
        "GOSUMDB": "off",
        "CGO_ENABLED": "0",
        "GOOS": goos,
        "GOARCH": goarch,
    }
    binary = go_project / f"app-{goos}-{goarch}"
    subprocess.run(
        [GO, "build", "-o", str(binary), "."], cwd=go_project / "app", env=env, check=True, capture_output=True
    )
    expected = go_version_m(binary)
    assert ("example.com/new", "v1.1.0") in expected  # the replacement, not example.com/old
    assert packages(binary.read_bytes()) == expected


# -- binaries of our own making ----------------------------------------------------------------------------

EXPECTED = {
    ("stdlib", "1.16.5"),
    ("example.com/app", "v1.4.0"),
    ("golang.org/x/sys", "v0.0.0-20210908233432-aa78b53d3365"),
    ("example.com/new", "v1.1.0"),
}
LAYOUTS = [(bits, endian) for bits in (32, 64) for endian in "<>"]


@pytest.mark.parametrize(("bits", "endian"), LAYOUTS)
@pytest.mark.parametrize("section_headers", [True, False])
def test_pointer_format_of_go_1_13_to_1_17(tmp_path, bits, endian, section_headers):
    data = go_pointer_binary("go1.16.5", MODINFO, bits=bits, endian=endian, section_headers=section_headers)
    assert packages(data) == EXPECTED
    if GO:
        (tmp_path / "bin").write_bytes(data)
        assert go_version_m(tmp_path / "bin") == EXPECTED


@pytest.mark.parametrize(("bits", "endian"), LAYOUTS)
def test_inline_format_of_go_1_18_on(tmp_path, bits, endian):
    data = go_inline_binary("go1.16.5", MODINFO, bits=bits, endian=endian)
    assert packages(data) == EXPECTED
    if GO:
        (tmp_path / "bin").write_bytes(data)
        assert go_version_m(tmp_path / "bin") == EXPECTED


def test_packages_carry_purls_path_and_no_direct_flag():
    found = GoCataloger().parse(MemFile("usr/bin/app", go_inline_binary("go1.22.1", MODINFO)))
    by_name = {p.name: p for p in found}
    assert by_name["stdlib"].purl == "pkg:golang/stdlib@1.22.1"
    assert by_name["golang.org/x/sys"].purl == "pkg:golang/golang.org/x/sys@v0.0.0-20210908233432-aa78b53d3365"
    assert by_name["example.com/app"].purl == "pkg:golang/example.com/app@v1.4.0"
    assert {p.path for p in found} == {"usr/bin/app"}
    assert {p.direct for p in found} == {None}  # build info does not say


def test_devel_main_module_has_no_version():
    data = go_inline_binary("go1.21.0", "mod\texample.com/tool\t(devel)\t\n")
    assert packages(data) == {("stdlib", "1.21.0"), ("example.com/tool", "")}
    (tool,) = [p for p in GoCataloger().parse(MemFile("t", data)) if p.name == "example.com/tool"]
    assert tool.purl == "pkg:golang/example.com/tool"


@pytest.mark.parametrize(
    ("tag", "semver"),
    [
        ("go1.17.2", "1.17.2"),
        ("go1.21", "1.21.0"),
        ("go1.21.0", "1.21.0"),
        ("go1.21rc2", "1.21.0-rc.2"),
        ("go1.9beta1", "1.9.0-beta.1"),
        ("go1.22.0 X:boringcrypto", "1.22.0"),
        ("devel go1.23-abcdef Tue", ""),
        ("weird", ""),
    ],
)
def test_toolchain_versions_as_osv_writes_them(tag, semver):
    assert go_semver(tag) == semver


def test_other_binaries_give_nothing():
    assert packages(elf([Sec(".text", b"\x90" * 100, 0x401000)])) == set()
    assert packages(b"MZ" + bytes(500)) == set()
    assert packages(Path(__file__).read_bytes()) == set()


def test_a_real_non_go_executable_gives_nothing():
    ls = Path("/bin/ls")
    if not ls.exists():
        pytest.skip("no /bin/ls")
    assert packages(ls.read_bytes()) == set()


@pytest.mark.parametrize(
    "data",
    [
        # The header is there but its pointers lead nowhere.
        elf([Sec(".go.buildinfo", b"\xff Go buildinf:\x08\x00" + (0xDEAD).to_bytes(8, "little") * 2, 0x500000, 6)]),
        # A length past the end of the section.
        elf([Sec(".go.buildinfo", b"\xff Go buildinf:\x08\x02" + bytes(16) + b"\xff\xff\x03abc", 0x500000, 6)]),
        # Pointer size 3.
        elf([Sec(".go.buildinfo", b"\xff Go buildinf:\x03\x00" + bytes(16), 0x500000, 6)]),
        # A section header table that runs past the end of the file.
        go_inline_binary("go1.20", MODINFO)[:-40],
    ],
)
def test_malformed_build_info_is_a_parse_error_naming_the_file(data):
    with pytest.raises(ParseError, match="usr/bin/broken"):
        GoCataloger().parse(MemFile("usr/bin/broken", data))


def test_malformed_module_info_is_a_parse_error():
    data = go_inline_binary("go1.20", "mod\texample.com/x\n=>\ta\tb\n=>\tc\td\n")
    with pytest.raises(ParseError, match="malformed Go module info"):
        GoCataloger().parse(MemFile("bin/x", data))


_SEEDS = [go_inline_binary("go1.20.3", MODINFO), go_pointer_binary("go1.16.5", MODINFO, bits=32, endian=">")]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_SEEDS), st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), max_size=6))
def test_bit_flips_raise_only_parse_error(seed, flips):
    data = bytearray(seed)
    for position, flip in flips:
        data[position % len(data)] ^= flip
    with contextlib.suppress(ParseError):
        for package in GoCataloger().parse(MemFile("bin/x", bytes(data))):
            assert package.name


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_SEEDS), st.integers(0, 2000), st.binary(max_size=64))
def test_truncations_and_garbage_raise_only_parse_error(seed, cut, tail):
    for data in (seed[:cut] + tail, b"\x7fELF" + tail, b"MZ" + seed[cut:]):
        with contextlib.suppress(ParseError):
            GoCataloger().parse(MemFile("bin/x", data))


# -- go.mod ---------------------------------------------------------------------------------------------

GO_MOD = """// A realistic go.mod: blocks, single lines, comments, replacements.
module github.com/acme/service

go 1.21

toolchain go1.21.5

require github.com/gorilla/mux v1.8.0

require (
\tgithub.com/sirupsen/logrus v1.9.3
\t"github.com/quoted/path" v0.1.0
\tgolang.org/x/net v0.17.0 // indirect
\tgolang.org/x/sys v0.13.0 // indirect; pulled in by x/net
\tgithub.com/old/lib v1.2.0
\tgithub.com/acme/internal v0.0.0-00010101000000-000000000000
\tgithub.com/pinned/one v1.0.0
)

exclude golang.org/x/net v0.16.0

replace (
\tgithub.com/old/lib => github.com/new/lib v1.3.1
\tgithub.com/acme/internal => ../internal
\tgithub.com/pinned/one v1.0.0 => github.com/pinned/fork v1.0.1
\tgithub.com/pinned/one v9.9.9 => github.com/never/used v9.9.9
)

retract v1.0.0 // published by mistake
"""


def test_go_mod_requirements_with_replacements_and_indirect_marks():
    found = {(p.name, p.version, p.direct) for p in GoCataloger().parse(MemFile("src/go.mod", GO_MOD.encode()))}
    assert found == {
        ("github.com/gorilla/mux", "v1.8.0", True),
        ("github.com/sirupsen/logrus", "v1.9.3", True),
        ("github.com/quoted/path", "v0.1.0", True),
        ("golang.org/x/net", "v0.17.0", False),
        ("golang.org/x/sys", "v0.13.0", False),
        ("github.com/new/lib", "v1.3.1", True),
        ("github.com/pinned/fork", "v1.0.1", True),
    }


def test_go_mod_purls():
    (mux,) = GoCataloger().parse(MemFile("go.mod", b"module x\n\nrequire github.com/gorilla/mux v1.8.0\n"))
    assert mux.purl == "pkg:golang/github.com/gorilla/mux@v1.8.0"
    assert mux.path == "go.mod"


@pytest.mark.parametrize(
    "text",
    [
        "require (\n\ta v1\n",  # unclosed block
        "require a\n",
        "replace a v1\n",
        'require "a v1\n',
        "require (\n\ta v1 v2\n)\n",
        b"\xff\xfe".decode("latin-1"),
    ],
)
def test_malformed_go_mod_is_a_parse_error(text):
    with pytest.raises(ParseError, match="app/go.mod"):
        GoCataloger().parse(MemFile("app/go.mod", text.encode("latin-1")))


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("go.mod", True),
        ("src/app/go.mod", True),
        ("root/go/pkg/mod/github.com/x/y@v1.0.0/go.mod", False),
        ("src/app/vendor/github.com/x/y/go.mod", False),
        ("src/app/go.mod.bak", False),
        ("src/app/notgo.mod", False),
    ],
)
def test_wants(path, wanted):
    assert GoCataloger().wants(path) is wanted


go_mod_lines = st.lists(
    st.one_of(
        st.sampled_from(
            ["require (", ")", "replace (", "module x", "a v1", "a v1 // indirect", "a => b v2", "go 1.21"]
        ),
        st.text(max_size=30),
    ),
    max_size=20,
).map("\n".join)


@settings(max_examples=300)
@given(st.one_of(go_mod_lines.map(str.encode), st.binary(max_size=512)))
def test_go_mod_garbage_raises_only_parse_error(data):
    with contextlib.suppress(ParseError):
        for package in GoCataloger().parse(MemFile("go.mod", data)):
            assert package.name
