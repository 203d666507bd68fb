"""The Python cataloger against importlib.metadata, real lockfiles, and garbage.

Fixtures under fixtures/python are shaped like a root file system; their
lockfiles were made by the tools themselves (see fixtures/python/README.md).
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scans.engine.analyzer import Analyzer
from scans.engine.catalogers.python import PythonCataloger
from scans.engine.errors import ParseError
from scans.engine.models import Analysis, Package, Platform
from scans.engine.targets import open_target
from tests.conftest import corpus_file
from tests.engine.memfile import MemFile
from tests.engine.test_corpus import unpack

FIXTURES = Path(__file__).parent / "fixtures" / "python"
SITE = "usr/local/lib/python3.11/site-packages"
INSTALLED_SUFFIXES = ("METADATA", "PKG-INFO", ".egg-info")


def analyse(target: Path, tmp_path: Path) -> Analysis:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    with open_target(str(target), work, Platform()) as source:
        return Analyzer(work, catalogers=[PythonCataloger()]).run(source)


def importlib_listing(*site_dirs: Path) -> set[tuple[str, str]]:
    dists = importlib.metadata.distributions(path=[str(d) for d in site_dirs])
    return {(d.metadata["Name"], d.version) for d in dists}


def rows(packages: list[Package]) -> set[tuple[str, str]]:
    return {(p.name, p.version) for p in packages}


def parse(path: str, text: str | bytes) -> list[Package]:
    data = text.encode() if isinstance(text, str) else text
    return PythonCataloger().parse(MemFile(path, data))


# -- debian12-app: the corpus image --------------------------------------------------------


@pytest.fixture(scope="module")
def debian12_app(tmp_path_factory):
    archive = corpus_file("debian12-app.docker.tar")
    tmp = tmp_path_factory.mktemp("debian12-app")
    return analyse(archive, tmp), unpack(archive, tmp / "root")


def test_debian12_app_installed_equals_importlib_metadata(debian12_app):
    analysis, root = debian12_app
    installed = [p for p in analysis.packages if p.path.endswith(INSTALLED_SUFFIXES)]
    expected = importlib_listing(root / SITE)
    assert expected, "importlib.metadata found nothing"
    assert rows(installed) == expected
    assert "flask" not in {name.lower() for name, _ in rows(analysis.packages)}  # whited out in layer 5
    assert {p.layer.index for p in installed} == {1}  # layer 2 installed them
    assert all(p.path.startswith(SITE + "/") and p.type == "pypi" for p in installed)
    assert analysis.warnings == []


def test_debian12_app_requirements_txt_is_reported_beside_the_installed(debian12_app):
    analysis, root = debian12_app
    pinned = [p for p in analysis.packages if p.path == "app/requirements.txt"]
    lines = (root / "app/requirements.txt").read_text().split()
    assert rows(pinned) == {tuple(line.split("==")) for line in lines}
    assert "Flask" not in {p.name for p in pinned}  # layer 5 rewrote the file without it
    # The pins have been in the file since layer 2; layer 5 only dropped one.
    assert {p.layer.index for p in pinned} == {1}
    # Both kinds are kept, each with its own path: same purls, different evidence.
    installed = {p.purl for p in analysis.packages if p.path.endswith("METADATA")}
    assert {p.purl for p in pinned} == installed


def test_debian12_app_purls_and_metadata(debian12_app):
    analysis, _ = debian12_app
    by_name = {p.name: p for p in analysis.packages if p.path.endswith("METADATA")}
    assert by_name["PyYAML"].purl == "pkg:pypi/pyyaml@5.3.1"
    assert by_name["Django"].purl == "pkg:pypi/django@3.2"
    assert by_name["Django"].licenses == ("BSD-3-Clause",)
    # Requires-Dist without extras, as version-less purls; extras (argon2, bcrypt) left out.
    assert by_name["Django"].dependencies == ("pkg:pypi/asgiref", "pkg:pypi/pytz", "pkg:pypi/sqlparse")
    assert by_name["requests"].dependencies == (
        "pkg:pypi/certifi",
        "pkg:pypi/chardet",
        "pkg:pypi/idna",
        "pkg:pypi/urllib3",
    )


# -- fixtures of our own -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_analysis(tmp_path_factory):
    return analyse(FIXTURES, tmp_path_factory.mktemp("python-fixtures"))


def from_file(analysis: Analysis, path: str) -> dict[str, Package]:
    return {p.name: p for p in analysis.packages if p.path == path}


def test_fixture_installed_distributions_equal_importlib_metadata(fixture_analysis):
    sites = {
        "opt/venv/lib/python3.12/site-packages": {("ledger-utils", "1.4.0")},
        "opt/legacy/lib/python3.9/site-packages": {("legacy_report", "0.9.1")},  # a distutils .egg-info file
        "srv/report": {("legacy_report", "0.9.1")},  # an egg-info dir beside the sources
        "opt/eggs/legacy_report-0.9.1-py3.11.egg": {("legacy_report", "0.9.1")},  # EGG-INFO of an unzipped egg
    }
    for site, listed in sites.items():
        found = [p for p in fixture_analysis.packages if p.path.startswith(site + "/")]
        assert rows(found) == importlib_listing(FIXTURES / site) == listed, site
    ledger = from_file(fixture_analysis, "opt/venv/lib/python3.12/site-packages/ledger_utils-1.4.0.dist-info/METADATA")
    assert ledger["ledger-utils"].licenses == ("MIT OR Apache-2.0",)  # License-Expression
    assert ledger["ledger-utils"].dependencies == ("pkg:pypi/python-dateutil", "pkg:pypi/requests")
    egg = from_file(fixture_analysis, "srv/report/legacy_report.egg-info/PKG-INFO")["legacy_report"]
    assert egg.purl == "pkg:pypi/legacy-report@0.9.1"
    assert egg.licenses == ("BSD",)


def test_fixture_pins_inside_an_installed_package_are_not_read(fixture_analysis):
    assert not [p for p in fixture_analysis.packages if "ledger_utils/requirements.txt" in p.path]
    assert fixture_analysis.warnings == []


def test_fixture_requirements_txt_keeps_only_pins(fixture_analysis):
    found = from_file(fixture_analysis, "srv/pip-app/requirements.txt")
    assert {(p.name, p.version) for p in found.values()} == {
        ("Django", "4.2.11"),
        ("requests", "2.31.0"),  # extras and a marker
        ("celery", "5.3.6"),  # spaces around ==, and listed twice
        ("PyYAML", "6.0.1"),  # hashes on continuation lines
        ("numpy", "1.26.4"),  # ===
        ("pywin32", "306"),  # markers are not evaluated: the image's interpreter is unknown
        ("zope.interface", "6.2"),
        ("backports.zoneinfo", "0.2.1"),
        ("Flask", "2.3.3"),  # a per-requirement option
        ("indented-pin", "0.1.0"),
        ("typing_extensions", "4.10.0"),
    }
    assert all(p.direct is None and not p.dev for p in found.values())
    # Includes are files of their own, read when their name says requirements.
    assert rows(list(from_file(fixture_analysis, "srv/pip-app/requirements/base.txt").values())) == {
        ("attrs", "23.2.0"),
        ("sqlparse", "0.4.4"),
    }
    assert rows(list(from_file(fixture_analysis, "srv/pip-app/requirements-dev.txt").values())) == {
        ("pytest", "8.2.0"),
        ("coverage", "7.4.4"),
    }


def test_fixture_poetry_lock_groups(fixture_analysis):
    found = from_file(fixture_analysis, "srv/poetry-app/poetry.lock")
    dev = {name for name, p in found.items() if p.dev}
    assert dev == {"pytest", "iniconfig", "packaging", "pluggy", "colorama"}  # groups = ["dev"]
    assert found["celery"].version == "5.3.6"
    assert found["kombu"].dependencies == ("pkg:pypi/amqp@5.4.2", "pkg:pypi/tzdata@2026.6", "pkg:pypi/vine@5.1.0")
    assert found["pyyaml"].purl == "pkg:pypi/pyyaml@6.0.1"
    assert all(p.direct is None for p in found.values())  # pyproject.toml says that, not the lock


def test_fixture_legacy_poetry_lock_category(fixture_analysis):
    found = from_file(fixture_analysis, "srv/legacy-poetry/poetry.lock")
    assert {(n, p.version, p.dev) for n, p in found.items()} == {
        ("attrs", "21.4.0", True),
        ("certifi", "2021.10.8", False),
        ("pytest", "6.2.5", True),
        ("requests", "2.26.0", False),
        ("urllib3", "1.26.7", False),
    }
    # atomicwrites is a Windows-only dependency that was never locked: not in the graph.
    assert found["pytest"].dependencies == ("pkg:pypi/attrs@21.4.0",)


def test_fixture_pipfile_lock_sections(fixture_analysis):
    found = from_file(fixture_analysis, "srv/pipenv-app/Pipfile.lock")
    lock = json.loads((FIXTURES / "srv/pipenv-app/Pipfile.lock").read_text())
    assert set(found) == set(lock["default"]) | set(lock["develop"])
    assert {n for n, p in found.items() if p.dev} == set(lock["develop"]) - set(lock["default"])
    assert found["packaging"].dev is False  # in both sections
    assert found["flask"].version == "2.3.3"


def test_fixture_uv_lock_direct_and_dev(fixture_analysis):
    found = from_file(fixture_analysis, "srv/uv-app/uv.lock")
    assert "shop-api" not in found  # the project itself (a virtual source)
    assert {n for n, p in found.items() if p.direct} == {"requests", "jinja2", "pytest"}
    assert {n for n, p in found.items() if p.dev} == {"pytest", "iniconfig", "packaging", "pluggy", "colorama"}
    assert found["requests"].dependencies == (
        "pkg:pypi/certifi@2026.10.19.post1",
        "pkg:pypi/charset-normalizer@3.5.3",
        "pkg:pypi/idna@3.20",
        "pkg:pypi/urllib3@2.8.0",
    )
    # `uv export --format pylock.toml` of the same project lists the same packages.
    exported = from_file(fixture_analysis, "srv/uv-app/pylock.toml")
    assert {(n, p.version) for n, p in exported.items()} == {(n, p.version) for n, p in found.items()}


PYLOCK_WITH_GROUPS = """
lock-version = "1.0"
created-by = "hand"
dependency-groups = ["dev", "docs"]
default-groups = []

[[packages]]
name = "requests"
version = "2.31.0"
dependencies = [{ name = "idna" }]

[[packages]]
name = "idna"
version = "3.7"

[[packages]]
name = "pytest"
version = "8.2.0"
marker = "'dev' in dependency_groups"

[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32' and 'dev' in dependency_groups"

[[packages]]
name = "local-tool"
directory = { path = "tools/local" }
"""


def test_pylock_dependency_group_markers_make_dev():
    found = {p.name: p for p in parse("srv/app/pylock.toml", PYLOCK_WITH_GROUPS)}
    assert set(found) == {"requests", "idna", "pytest", "colorama"}  # no version: not a registry package
    assert found["pytest"].dev is True
    assert found["requests"].dev is False
    assert found["requests"].dependencies == ("pkg:pypi/idna@3.7",)
    # True with every group and false with none only where the interpreter is Windows: not known as dev.
    assert found["colorama"].dev is False


def test_metadata_licence_fallbacks():
    classifiers = (
        "Name: a\nVersion: 1\nLicense: UNKNOWN\n"
        "Classifier: License :: OSI Approved :: MIT License\nClassifier: License :: OSI Approved\n\nbody"
    )
    assert parse("x/a-1.dist-info/METADATA", classifiers)[0].licenses == ("MIT License",)
    pasted = "Name: a\nVersion: 1\nLicense: Copyright (c) 2020\n  Permission is hereby granted\n\n"
    assert parse("x/a-1.dist-info/METADATA", pasted)[0].licenses == ()


def test_metadata_body_past_the_read_bound_is_not_needed():
    body = b"x" * (3 << 20)
    (package,) = parse("x/a-1.dist-info/METADATA", b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\n\n" + body)
    assert (package.name, package.version) == ("a", "1.0")
    with pytest.raises(ParseError, match="no end of the metadata headers"):
        parse("x/a-1.dist-info/METADATA", b"Name: a\nVersion: 1\nX: " + body)


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("x/a.dist-info/METADATA", "Summary: no name\n\n", "without Name or Version"),
        ("x/a.dist-info/METADATA", "Name: not a name!\nVersion: 1\n\n", "not a valid Python distribution name"),
        ("app/poetry.lock", "[[package]\nname =", "invalid TOML"),
        ("app/poetry.lock", "package = 3", "not a list of tables"),
        ("app/poetry.lock", '[[package]]\nname = "a"\n', "lacks a name or a version"),
        ("app/Pipfile.lock", '{"default": ', "invalid JSON"),
        ("app/Pipfile.lock", "[1, 2]", "JSON object"),
        ("app/uv.lock", '[[package]]\nversion = "1"\n', "has no name"),
        ("app/pylock.toml", "[[packages]]\n", "no lock-version"),
        ("app/requirements.txt", "\x00\x01\x02", "binary content"),
        ("app/requirements.txt", b"\xff\xfe\x00garbage", "not UTF-8"),
        ("app/requirements.txt", "!!! ???\n=== ==\n", "line 1 is not a requirement"),
    ],
)
def test_malformed_files_raise_parse_error_naming_the_file(path, data, message):
    with pytest.raises(ParseError, match=message) as raised:
        parse(path, data)
    assert str(raised.value).startswith(path + ":")


def test_a_malformed_lockfile_is_a_warning_and_the_scan_goes_on(tmp_path):
    root = tmp_path / "rootfs"
    (root / "app").mkdir(parents=True)
    (root / "app/poetry.lock").write_text("[[package]\n")
    dist = root / "venv/lib/python3.11/site-packages/six-1.16.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n\n")
    analysis = analyse(root, tmp_path)
    assert rows(analysis.packages) == {("six", "1.16.0")}
    assert len(analysis.warnings) == 1
    assert analysis.warnings[0].startswith("python: app/poetry.lock: invalid TOML")


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("usr/local/lib/python3.11/site-packages/Django-3.2.dist-info/METADATA", True),
        ("venv/lib/python3.12/site-packages/x-1.0.dist-info/METADATA", True),
        ("usr/lib/python3/dist-packages/six-1.16.0.egg-info", True),
        ("usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO", True),
        ("opt/x.egg/EGG-INFO/PKG-INFO", True),
        ("app/requirements.txt", True),
        ("requirements.txt", True),
        ("app/requirements-dev.txt", True),
        ("app/requirements/prod.txt", True),
        ("app/poetry.lock", True),
        ("app/Pipfile.lock", True),
        ("app/uv.lock", True),
        ("app/pylock.toml", True),
        ("app/pylock.dev.toml", True),
        ("x/a-1.dist-info/RECORD", False),
        ("x/a-1.dist-info/top_level.txt", False),
        ("x/a-1.dist-info/licenses/METADATA", False),
        ("sdist/PKG-INFO", False),
        ("app/pyproject.toml", False),
        ("app/Cargo.lock", False),
        ("app/notes.txt", False),
        ("usr/lib/python3/dist-packages/foo/requirements.txt", False),
        ("venv/lib/python3.11/site-packages/pkg/poetry.lock", False),
        ("app/node_modules/gyp/requirements.txt", False),
    ],
)
def test_wants(path, wanted):
    assert PythonCataloger().wants(path) is wanted


# -- property tests -------------------------------------------------------------------------

PATHS = [
    "x/site-packages/a-1.dist-info/METADATA",
    "x/a.egg-info/PKG-INFO",
    "app/requirements.txt",
    "app/poetry.lock",
    "app/Pipfile.lock",
    "app/uv.lock",
    "app/pylock.toml",
]
REAL_FILES = [
    FIXTURES / "srv/uv-app/uv.lock",
    FIXTURES / "srv/uv-app/pylock.toml",
    FIXTURES / "srv/poetry-app/poetry.lock",
    FIXTURES / "srv/pipenv-app/Pipfile.lock",
    FIXTURES / "srv/pip-app/requirements.txt",
    FIXTURES / "opt/venv/lib/python3.12/site-packages/ledger_utils-1.4.0.dist-info/METADATA",
]
SAMPLES = [path.read_bytes() for path in REAL_FILES]

line_soup = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "[[package]]",
                "[[packages]]",
                'name = "a"',
                'version = "1"',
                "dependencies = [{ name = 'a' }]",
                'groups = ["dev"]',
                'lock-version = "1.0"',
                'source = { virtual = "." }',
                "Name: a",
                "Version: 1",
                "Requires-Dist: b; extra == 'x'",
                "a==1 \\",
                "  --hash=sha256:00",
                "-r other.txt",
                '{"default": {"a": {"version": "==1"}}, "develop": []}',
            ]
        ),
        st.text(max_size=30),
    ),
    max_size=25,
).map(lambda lines: "\n".join(lines).encode())


def check(path: str, data: bytes) -> None:
    try:
        packages, error = PythonCataloger().parse(MemFile(path, data)), path
    except ParseError as exc:
        packages, error = [], str(exc)
    assert error.startswith(path)  # an error names the file
    for package in packages:
        assert package.name
        assert package.version
        assert package.purl.startswith("pkg:pypi/")
        assert package.path == path


@settings(max_examples=400)
@given(st.sampled_from(PATHS), st.one_of(st.binary(max_size=2048), line_soup))
def test_parsers_raise_only_parse_error_on_garbage(path, data):
    check(path, data)


@settings(max_examples=400)
@given(st.sampled_from(PATHS), st.sampled_from(range(len(SAMPLES))), st.floats(0, 1), st.binary(max_size=8))
def test_parsers_raise_only_parse_error_on_truncated_and_spliced_files(path, sample, cut, noise):
    data = SAMPLES[sample]
    check(path, data[: int(len(data) * cut)] + noise)


@pytest.mark.parametrize("path", PATHS)
def test_deeply_nested_documents_do_not_crash(path):
    for data in (b"[" * 100_000, b"a = " + b"[" * 100_000, b'{"a":' * 100_000):
        check(path, data)
