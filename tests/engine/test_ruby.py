"""The Ruby cataloger: installed gemspecs (checked against RubyGems itself where Ruby is installed),
Gemfile.lock, and garbage.

Fixtures under fixtures/ruby are shaped like a root file system; see its README.md for how
each file was made.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scans.engine.analyzer import Analyzer
from scans.engine.catalogers.ruby import RubyCataloger
from scans.engine.errors import ParseError
from scans.engine.models import Analysis, Package, Platform
from scans.engine.sources import open_local
from tests.engine.memfile import MemFile

FIXTURES = Path(__file__).parent / "fixtures" / "ruby"
GEMSPECS = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.gemspec") if "specifications" in p.parts)
# Prints what RubyGems itself reads from each gemspec: name, version, licences, runtime dependencies.
RUBY_READER = (
    "ARGV.each { |f| s = Gem::Specification.load(f); "
    'puts [f, s.name, s.version.to_s, s.licenses.join(","), '
    's.runtime_dependencies.map(&:name).sort.uniq.join(",")].join("\\t") }'
)


@pytest.fixture(scope="module")
def analysis(tmp_path_factory) -> Analysis:
    work = tmp_path_factory.mktemp("ruby-fixtures")
    with open_local(str(FIXTURES), Platform()) as source:
        return Analyzer(work, catalogers=[RubyCataloger()]).run(source)


def parse(path: str, text: str | bytes) -> list[Package]:
    return RubyCataloger().parse(MemFile(path, text.encode() if isinstance(text, str) else text))


def engine_row(package: Package) -> tuple[str, ...]:
    deps = sorted(purl.removeprefix("pkg:gem/") for purl in package.dependencies)
    return (package.path, package.name, package.version, ",".join(package.licenses), ",".join(deps))


def test_gemspecs_read_as_rubygems_reads_them(analysis):
    if not shutil.which("ruby"):
        pytest.skip("ruby is not installed (apt-get install ruby): RubyGems is the reference reader")
    out = subprocess.run(
        ["ruby", "-e", RUBY_READER, *GEMSPECS], cwd=FIXTURES, capture_output=True, text=True, check=True
    ).stdout
    expected = {tuple(line.split("\t")) for line in out.splitlines()}
    assert len(expected) == len(GEMSPECS) == 4
    assert {engine_row(p) for p in analysis.packages if p.path.endswith(".gemspec")} == expected


def test_installed_gemspecs(analysis):
    gems = {p.name: p for p in analysis.packages if p.path.endswith(".gemspec")}
    assert set(gems) == {"shopcore", "fastxml", "netfetch", "oldtimer"}
    assert gems["shopcore"].purl == "pkg:gem/shopcore@2.4.1"
    assert gems["shopcore"].licenses == ("MIT", "Apache-2.0")
    # Development dependencies (minitest) are left out, also from the `else` branch for old RubyGems.
    assert gems["shopcore"].dependencies == ("pkg:gem/json", "pkg:gem/rack")
    assert gems["fastxml"].version == "1.15.4"  # the platform stays out of the version
    assert gems["netfetch"].path == "usr/local/lib/ruby/gems/3.3.0/specifications/default/netfetch-0.3.0.gemspec"
    assert gems["oldtimer"].dependencies == ("pkg:gem/json",)  # a RubyGems 1.8 gemspec with %q{}
    assert analysis.warnings == []


def test_gemfile_lock(analysis):
    locked = {p.name: p for p in analysis.packages if p.path == "srv/app/Gemfile.lock"}
    assert {(n, p.version) for n, p in locked.items()} == {
        ("auditlog", "1.2.0"),  # GIT
        ("billing", "0.4.0"),  # PATH
        ("minitest", "5.15.0"),
        ("power_assert", "2.0.1"),
        ("rake", "13.0.6"),
        ("rexml", "3.2.5"),
        ("test-unit", "3.5.3"),
    }
    assert {n for n, p in locked.items() if p.direct} == {
        "auditlog",
        "billing",
        "minitest",
        "rake",
        "rexml",
        "test-unit",
    }
    assert locked["test-unit"].dependencies == ("pkg:gem/power_assert@2.0.1",)
    assert locked["auditlog"].dependencies == ("pkg:gem/rake@13.0.6",)
    assert not any(p.dev for p in locked.values())  # Gemfile.lock does not record groups


def test_files_inside_installed_gems_and_source_gemspecs_are_not_read(analysis):
    paths = {p.path for p in analysis.packages}
    assert "usr/local/bundle/gems/shopcore-2.4.1/Gemfile.lock" not in paths
    assert "srv/app/vendor/engines/billing/billing.gemspec" not in paths


GEMFILE_LOCK_BUNDLER_25 = """\
GEM
  remote: https://rubygems.org/
  specs:
    nokogiri (1.15.4-x86_64-linux)
      racc (~> 1.4)
    nokogiri (1.15.4-aarch64-linux)
      racc (~> 1.4)
    racc (1.7.3)

PLATFORMS
  aarch64-linux
  x86_64-linux

DEPENDENCIES
  nokogiri (= 1.15.4)

CHECKSUMS
  nokogiri (1.15.4-x86_64-linux) sha256=0000
  racc (1.7.3) sha256=1111

RUBY VERSION
   ruby 3.3.0p0

BUNDLED WITH
   2.5.3
"""


def test_gemfile_lock_platform_gems_and_newer_sections():
    found = {(p.name, p.version): p for p in parse("app/Gemfile.lock", GEMFILE_LOCK_BUNDLER_25)}
    assert set(found) == {("nokogiri", "1.15.4"), ("racc", "1.7.3")}
    assert found["nokogiri", "1.15.4"].dependencies == ("pkg:gem/racc@1.7.3",)
    assert found["nokogiri", "1.15.4"].direct is True
    assert found["racc", "1.7.3"].direct is False


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("app/Gemfile.lock", "just some text\nnothing else", "not a Gemfile.lock"),
        ("app/Gemfile.lock", "GEM\n  specs:\n    broken spec line\n", "line 3 is not `name \\(version\\)`"),
        ("app/Gemfile.lock", "GEM\n  specs:\n      orphan (>= 1)\n", "line 3 is not a dependency of a gem"),
        ("app/Gemfile.lock", "DEPENDENCIES\n  (weird\n", "line 2 is not a dependency"),
        ("app/Gemfile.lock", b"GEM\n\xff\xfe", "not UTF-8"),
        ("x/specifications/a-1.gemspec", "Gem::Specification.new do |s|\nend\n", "no literal name and version"),
        ("x/specifications/a-1.gemspec", 's.name = "a b"\ns.version = "1"\n', "is not a gem name and version"),
    ],
)
def test_malformed_files_raise_parse_error_naming_the_file(path, data, message):
    with pytest.raises(ParseError, match=message) as raised:
        parse(path, data)
    assert str(raised.value).startswith(path + ":")


def test_a_version_that_is_code_falls_back_to_the_stub_line():
    text = (
        "# stub: engine 2.0.1 ruby lib\n"
        'Gem::Specification.new do |s|\n  s.name = "engine"\n  s.version = Engine::VERSION\nend\n'
    )
    (gem,) = parse("x/specifications/engine-2.0.1.gemspec", text)
    assert (gem.name, gem.version) == ("engine", "2.0.1")


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("usr/local/bundle/specifications/rack-2.2.8.gemspec", True),
        ("usr/local/lib/ruby/gems/3.3.0/specifications/default/json-2.7.1.gemspec", True),
        ("var/lib/gems/3.1.0/specifications/rake-13.0.6.gemspec", True),
        ("app/vendor/bundle/ruby/3.3.0/specifications/puma-6.4.2.gemspec", True),
        ("specifications/x-1.gemspec", True),
        ("app/Gemfile.lock", True),
        ("Gemfile.lock", True),
        ("app/gems.locked", True),
        ("app/x.gemspec", False),
        ("usr/local/bundle/gems/rack-2.2.8/rack.gemspec", False),
        ("usr/local/bundle/gems/rack-2.2.8/Gemfile.lock", False),
        ("app/vendor/bundle/ruby/3.3.0/bundler/gems/x-abc/Gemfile.lock", False),
        ("app/specifications/sub/x-1.gemspec", False),
        ("app/MyGemfile.lock", False),
    ],
)
def test_wants(path, wanted):
    assert RubyCataloger().wants(path) is wanted


# -- property tests -------------------------------------------------------------------------

PATHS = ["app/Gemfile.lock", "usr/local/bundle/specifications/a-1.gemspec"]
SAMPLES = [
    (FIXTURES / "srv/app/Gemfile.lock").read_bytes(),
    (FIXTURES / "usr/local/bundle/specifications/shopcore-2.4.1.gemspec").read_bytes(),
    GEMFILE_LOCK_BUNDLER_25.encode(),
]
line_soup = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "GEM",
                "GIT",
                "DEPENDENCIES",
                "  specs:",
                "    a (1.0)",
                "      b (>= 1)",
                "  a!",
                '  s.name = "a".freeze',
                '  s.version = "1"',
                '  s.add_runtime_dependency(%q<b>.freeze, [">= 0"])',
                "# stub: a 1 ruby lib",
            ]
        ),
        st.text(max_size=30),
    ),
    max_size=25,
).map(lambda lines: "\n".join(lines).encode())


def check(path: str, data: bytes) -> None:
    try:
        packages, error = RubyCataloger().parse(MemFile(path, data)), path
    except ParseError as exc:
        packages, error = [], str(exc)
    assert error.startswith(path)  # an error names the file
    for package in packages:
        assert package.name
        assert package.version
        assert package.purl.startswith("pkg:gem/")


@settings(max_examples=400)
@given(st.sampled_from(PATHS), st.one_of(st.binary(max_size=2048), line_soup))
def test_parsers_raise_only_parse_error_on_garbage(path, data):
    check(path, data)


@settings(max_examples=300)
@given(st.sampled_from(PATHS), st.sampled_from(range(len(SAMPLES))), st.floats(0, 1), st.binary(max_size=8))
def test_parsers_raise_only_parse_error_on_truncated_files(path, sample, cut, noise):
    data = SAMPLES[sample]
    check(path, data[: int(len(data) * cut)] + noise)


def test_long_lines_do_not_make_the_regexes_backtrack():
    for line in ('  s.name = "' + "a" * 200_000, "    a (" + "1" * 200_000, "  s.add_dependency(%q<" + "x" * 200_000):
        for path in PATHS:
            check(path, ("GEM\n  specs:\n" + line + "\n").encode())
