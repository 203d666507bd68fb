"""The .NET cataloger: deps.json of built applications and NuGet's packages.lock.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scans.engine.catalogers.dotnet import DotnetCataloger
from scans.engine.errors import ParseError
from tests.engine.memfile import MemFile

FIXTURES = Path(__file__).parent / "fixtures" / "dotnet"
API_DEPS = "app/Contoso.Api.deps.json"
WORKER_DEPS = "opt/worker/Contoso.Worker.deps.json"
LOCK = "src/Contoso.Api/packages.lock.json"


def parse(path: str):
    return DotnetCataloger().parse(MemFile.from_fixture(FIXTURES, path))


def nuget(name: str, version: str) -> str:
    return f"pkg:nuget/{name}@{version}"


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("app/Contoso.Api.deps.json", True),
        ("usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1/Microsoft.NETCore.App.deps.json", True),
        ("src/Api/packages.lock.json", True),
        ("packages.lock.json", True),
        ("src/Api/packages.Contoso_Api.lock.json", True),  # NuGet's per-project lock name
        ("app/Contoso.Api.runtimeconfig.json", False),
        ("app/Contoso.Api.dll", False),
        ("app/deps.json.bak", False),
        ("src/Api/mypackages.lock.json", False),
        ("src/Api/yarn.lock.json", False),
    ],
)
def test_wants(path, wanted):
    assert DotnetCataloger().wants(path) is wanted


def test_deps_json_packages_graph_and_direct():
    """Projects are skipped but what they use is direct (Dapper, through the Contoso.Core reference);
    the compile-only SourceLink package is not loaded at run time."""
    packages = parse(API_DEPS)
    assert {(p.name, p.version, p.direct, p.dependencies) for p in packages} == {
        ("Newtonsoft.Json", "13.0.1", True, ()),
        (
            "Serilog.AspNetCore",
            "8.0.0",
            True,
            (nuget("Serilog.Extensions.Hosting", "8.0.0"), nuget("Serilog", "3.1.1")),
        ),
        (
            "Serilog.Extensions.Hosting",
            "8.0.0",
            False,
            # written `serilog` in the file: NuGet ids are case-insensitive
            (nuget("Microsoft.Extensions.Logging.Abstractions", "8.0.0"), nuget("Serilog", "3.1.1")),
        ),
        ("Serilog", "3.1.1", False, ()),
        ("Microsoft.Extensions.Logging.Abstractions", "8.0.0", False, ()),
        ("Dapper", "2.1.28", True, ()),
    }
    assert all(p.type == "nuget" and p.path == API_DEPS and not p.dev for p in packages)
    assert next(p for p in packages if p.name == "Newtonsoft.Json").purl == "pkg:nuget/Newtonsoft.Json@13.0.1"


def test_self_contained_deps_json_reports_the_runtime_pack_and_skips_bare_references():
    assert {(p.purl, p.direct) for p in parse(WORKER_DEPS)} == {
        ("pkg:nuget/Microsoft.NETCore.App.Runtime.linux-x64@8.0.1", False),
        ("pkg:nuget/System.Text.Json@8.0.4", True),
    }


def test_lockfile_direct_transitive_and_frameworks():
    """One package per name@version across frameworks; Serilog differs between net6.0 and net8.0."""
    packages = parse(LOCK)
    assert {(p.name, p.version, p.direct) for p in packages} == {
        ("Newtonsoft.Json", "13.0.1", True),
        ("Serilog.AspNetCore", "8.0.0", True),
        ("Serilog", "3.1.1", False),
        ("Serilog", "2.12.0", True),  # net6.0 references it directly
        ("Serilog.Extensions.Hosting", "8.0.0", False),
        ("Microsoft.Extensions.Logging.Abstractions", "8.0.0", False),  # CentralTransitive
        ("Dapper", "2.1.28", False),  # through the project reference
        ("System.Text.Json", "8.0.4", False),  # the RID-specific graph
    }
    hosting = next(p for p in packages if p.name == "Serilog.Extensions.Hosting")
    # ranges resolve to what the same framework locked: Serilog 3.1.1 in net8.0, not net6.0's 2.12.0
    assert hosting.dependencies == (
        nuget("Microsoft.Extensions.Logging.Abstractions", "8.0.0"),
        nuget("Serilog", "3.1.1"),
    )


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        (API_DEPS, b'{"libraries": {', "invalid JSON"),
        (API_DEPS, b"[]", "must be a JSON object"),
        (API_DEPS, b'{"targets": {}}', "no `libraries`"),
        (LOCK, b'{"version": 1}', "no `dependencies`"),
        (LOCK, b"\x00\x01binary", "binary content|not UTF-8"),
        (LOCK, b"{" * 100_000, "invalid JSON"),
    ],
)
def test_malformed_files_raise_parse_error_naming_the_file(path, data, message):
    with pytest.raises(ParseError, match=message) as caught:
        DotnetCataloger().parse(MemFile(path, data))
    assert str(caught.value).startswith(path)


keys = st.sampled_from(
    ["libraries", "targets", "runtimeTarget", "name", "type", "dependencies", "resolved", "compileOnly"]
    + ["package", "project", "runtimepack", "Direct", "Transitive", "Project", "A/1.0.0", "a", "net8.0"]
) | st.text(max_size=10)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | keys,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=30,
)


def parse_quietly(path: str, data: bytes) -> None:
    try:
        packages = DotnetCataloger().parse(MemFile(path, data))
    except ParseError as exc:
        message = str(exc)
    else:
        message = ""
        assert all(p.name and p.version and p.purl.startswith("pkg:nuget/") for p in packages)
    assert not message or message.startswith(path)


@settings(max_examples=300, deadline=2000)
@given(st.sampled_from([API_DEPS, LOCK]), st.binary(max_size=2048) | json_values.map(lambda v: json.dumps(v).encode()))
def test_garbage_and_json_of_any_shape(path, data):
    parse_quietly(path, data)


@settings(max_examples=300, deadline=2000)
@given(st.sampled_from([API_DEPS, WORKER_DEPS, LOCK]), st.data())
def test_truncated_and_corrupted_real_files(path, data):
    raw = (FIXTURES / path).read_bytes()
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    at = data.draw(st.integers(min_value=0, max_value=max(cut - 1, 0)))
    byte = data.draw(st.integers(min_value=0, max_value=255))
    parse_quietly(path, raw[:cut])
    if cut:
        parse_quietly(path, raw[:at] + bytes([byte]) + raw[at + 1 : cut])
