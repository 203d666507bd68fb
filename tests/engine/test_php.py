"""The PHP cataloger: composer.lock and vendor/composer/installed.json (checked against
`composer show` where Composer is installed), and garbage.

Fixtures under fixtures/php are shaped like a root file system; see its README.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scans.engine.analyzer import Analyzer
from scans.engine.catalogers.php import PhpCataloger
from scans.engine.errors import ParseError
from scans.engine.models import Analysis, Package, Platform
from scans.engine.sources import open_local
from tests.engine.memfile import MemFile

FIXTURES = Path(__file__).parent / "fixtures" / "php"
SHOP = "var/www/shop"


@pytest.fixture(scope="module")
def analysis(tmp_path_factory) -> Analysis:
    work = tmp_path_factory.mktemp("php-fixtures")
    with open_local(str(FIXTURES), Platform()) as source:
        return Analyzer(work, catalogers=[PhpCataloger()]).run(source)


def from_file(analysis: Analysis, path: str) -> dict[str, Package]:
    return {p.name: p for p in analysis.packages if p.path == path}


def composer_show(*args: str) -> dict[str, str]:
    if not shutil.which("composer"):
        pytest.skip("composer is not installed (apt-get install composer): it is the reference reader")
    env = {**os.environ, "COMPOSER_ALLOW_SUPERUSER": "1", "COMPOSER_NO_INTERACTION": "1"}
    out = subprocess.run(
        ["composer", "show", "--format=json", "--no-plugins", *args],
        cwd=FIXTURES / SHOP,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    listing = json.loads(out)
    return {entry["name"]: entry["version"] for entry in next(iter(listing.values()))}


def test_composer_lock_equals_composer_show_locked(analysis):
    locked = from_file(analysis, f"{SHOP}/composer.lock")
    assert {n: p.version for n, p in locked.items()} == composer_show("--locked")


def test_installed_json_equals_composer_show(analysis):
    installed = from_file(analysis, f"{SHOP}/vendor/composer/installed.json")
    assert {n: p.version for n, p in installed.items()} == composer_show()


def test_composer_lock_fields(analysis):
    locked = from_file(analysis, f"{SHOP}/composer.lock")
    assert set(locked) == {"acme/http-client", "acme/log", "acme/test-kit"}
    client = locked["acme/http-client"]
    assert client.purl == "pkg:composer/acme/http-client@v2.3.1"  # the version as Composer writes it
    assert client.licenses == ("MIT", "Apache-2.0")
    assert client.dependencies == ("pkg:composer/acme/log@1.0.4",)  # php and ext-json are the platform
    assert {n for n, p in locked.items() if p.dev} == {"acme/test-kit"}  # packages-dev
    assert locked["acme/test-kit"].dependencies == ("pkg:composer/acme/log@1.0.4",)
    assert analysis.warnings == []


def test_installed_json_composer2_dev_names(analysis):
    installed = from_file(analysis, f"{SHOP}/vendor/composer/installed.json")
    doc = json.loads((FIXTURES / SHOP / "vendor/composer/installed.json").read_text())
    assert {n for n, p in installed.items() if p.dev} == set(doc["dev-package-names"]) == {"acme/test-kit"}


def test_installed_json_composer1_list(analysis):
    installed = from_file(analysis, "srv/legacy-shop/vendor/composer/installed.json")
    assert {(n, p.version) for n, p in installed.items()} == {
        ("guzzlehttp/guzzle", "6.5.5"),
        ("guzzlehttp/promises", "1.4.1"),
        ("guzzlehttp/psr7", "1.8.2"),
        ("psr/http-message", "1.0.1"),
    }
    assert not any(p.dev for p in installed.values())  # Composer 1 did not record it
    # Required packages that were not installed (symfony/polyfill-intl-idn) stay out of the graph.
    assert installed["guzzlehttp/guzzle"].dependencies == (
        "pkg:composer/guzzlehttp/promises@1.4.1",
        "pkg:composer/guzzlehttp/psr7@1.8.2",
    )


def test_a_librarys_own_lock_under_vendor_is_not_read(analysis):
    assert not [p for p in analysis.packages if p.path.endswith("vendor/acme/log/composer.lock")]


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("app/composer.lock", "{", "invalid JSON"),
        ("app/composer.lock", "[]", "an object with `packages`"),
        ("app/composer.lock", '{"packages": {"a": 1}}', "not a list of tables"),
        ("app/composer.lock", '{"packages": [{"name": "novendor", "version": "1"}]}', "lacks a vendor/name"),
        ("app/composer.lock", '{"packages": [{"name": "a/b"}]}', "lacks a vendor/name or a version"),
        ("vendor/composer/installed.json", '{"dev": true}', "a list \\(Composer 1\\) or an object"),
        ("vendor/composer/installed.json", '{"packages": [], "dev-package-names": 3}', "not a list"),
        ("vendor/composer/installed.json", "[1, 2]", "not a list of tables"),
        ("vendor/composer/installed.json", b"\xff\xfe[]", "not UTF-8"),
    ],
)
def test_malformed_files_raise_parse_error_naming_the_file(path, data, message):
    with pytest.raises(ParseError, match=message) as raised:
        PhpCataloger().parse(MemFile(path, data.encode() if isinstance(data, str) else data))
    assert str(raised.value).startswith(path + ":")


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("var/www/app/composer.lock", True),
        ("composer.lock", True),
        ("var/www/app/vendor/composer/installed.json", True),
        ("vendor/composer/installed.json", True),
        ("srv/app/lib/composer/installed.json", True),  # a renamed vendor-dir
        ("var/www/app/vendor/monolog/monolog/composer.lock", False),
        ("var/www/app/mycomposer.lock", False),
        ("var/www/app/composer.json", False),
        ("var/www/app/vendor/composer/installed.php", False),
        ("usr/lib/python3/dist-packages/yaml/composer.py", False),
        ("x/notcomposer/installed.json", False),
    ],
)
def test_wants(path, wanted):
    assert PhpCataloger().wants(path) is wanted


# -- property tests -------------------------------------------------------------------------

PATHS = ["app/composer.lock", "app/vendor/composer/installed.json"]
SAMPLES = [
    (FIXTURES / SHOP / "composer.lock").read_bytes(),
    (FIXTURES / SHOP / "vendor/composer/installed.json").read_bytes(),
    (FIXTURES / "srv/legacy-shop/vendor/composer/installed.json").read_bytes(),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.sampled_from(["a/b", "1.0", "php"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["packages", "packages-dev", "dev-package-names", "name", "version", "require", "license"])
            | st.text(max_size=8),
            inner,
            max_size=6,
        )
    ),
    max_leaves=25,
)


def check(path: str, data: bytes) -> None:
    try:
        packages, error = PhpCataloger().parse(MemFile(path, data)), path
    except ParseError as exc:
        packages, error = [], str(exc)
    assert error.startswith(path)  # an error names the file
    for package in packages:
        assert "/" in package.name
        assert package.version
        assert package.purl.startswith("pkg:composer/")


@settings(max_examples=400)
@given(st.sampled_from(PATHS), st.one_of(st.binary(max_size=2048), json_values.map(lambda v: json.dumps(v).encode())))
def test_parsers_raise_only_parse_error_on_garbage(path, data):
    check(path, data)


@settings(max_examples=300)
@given(st.sampled_from(PATHS), st.sampled_from(range(len(SAMPLES))), st.floats(0, 1), st.binary(max_size=8))
def test_parsers_raise_only_parse_error_on_truncated_files(path, sample, cut, noise):
    data = SAMPLES[sample]
    check(path, data[: int(len(data) * cut)] + noise)


def test_deeply_nested_json_does_not_crash():
    for path in PATHS:
        check(path, b"[" * 100_000)
        check(path, b'{"packages":' * 100_000)
