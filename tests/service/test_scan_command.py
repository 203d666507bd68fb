"""`manage.py scan` on every kind of target, in every format, and how it fails."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from django.core.management import CommandError, call_command
from spdx_tools.spdx.parser.json import json_parser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from tests.conftest import corpus_file
from tests.support.images import F, oci_layout
from tests.support.registry import RunningRegistry, skopeo_push, start_registry, tools_missing, write_multiarch_layout

# The scan matches against the configured advisory database (empty here: reports list no findings).
pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
USER = ("scanner", "scanner-password")
ALPINE311 = {"id": "alpine", "version_id": "3.11.13"}
needs_registry = pytest.mark.skipif(bool(tools_missing()), reason=tools_missing() or "tools present")


def scan(*args: str) -> str:
    """Run the command in-process; returns what it printed."""
    out = io.StringIO()
    call_command("scan", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def scan_json(*args: str) -> dict:
    return json.loads(scan(*args, "--format", "json"))


def distro(doc: dict) -> dict:
    return {key: doc["distro"][key] for key in ("id", "version_id")}


@pytest.fixture(autouse=True)
def no_stored_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings) -> None:
    """No developer's docker login or environment is read; the work dir is the test's."""
    for name in ("VIGIL_REGISTRY_USERNAME", "VIGIL_REGISTRY_PASSWORD", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    settings.VIGIL_WORK_DIR = tmp_path / "work"


# -- local targets ------------------------------------------------------------------------------


def test_a_docker_archive():
    doc = scan_json(str(corpus_file("alpine311.docker.tar")))
    assert distro(doc) == ALPINE311
    assert len(doc["packages"]) == 14
    assert doc["image"]["repo_tags"] == ["scanner-corpus/alpine311:latest"]


@pytest.mark.parametrize("prefix", ["", "oci-archive:"])
def test_an_oci_archive(prefix):
    doc = scan_json(prefix + str(corpus_file("alpine311.oci.tar")))
    assert distro(doc) == ALPINE311
    assert {p["purl"] for p in doc["packages"]} >= {"pkg:apk/alpine/musl@1.1.24-r3?arch=x86_64&distro=3.11.13"}


def test_an_oci_layout_directory(tmp_path):
    layout = tmp_path / "layout"
    with tarfile.open(corpus_file("alpine311.oci.tar")) as archive:
        archive.extractall(layout, filter="data")
    doc = scan_json(str(layout))
    assert distro(doc) == ALPINE311
    assert doc == scan_json(f"oci:{layout}")


def test_a_root_file_system_directory(tmp_path):
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text("ID=debian\nVERSION_ID=12\nVERSION_CODENAME=bookworm\n")
    (root / "var/lib/dpkg/status").write_text(
        "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\nArchitecture: amd64\n\n"
    )
    doc = scan_json(str(root))
    assert [p["purl"] for p in doc["packages"]] == ["pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12"]


# -- formats and output -----------------------------------------------------------------------------


def test_the_table_is_the_default_format():
    table = scan(str(corpus_file("alpine311.oci.tar")))
    assert "Alpine Linux v3.11" in table
    assert "advisory database is empty" in table  # this test's database has no advisories: said, never silent
    assert table.rstrip().splitlines()[-1] == "Total: 0 (CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0, UNKNOWN: 0)"


def test_cyclonedx_output_is_valid():
    text = scan(str(corpus_file("alpine311.oci.tar")), "--format", "cyclonedx")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    assert len([c for c in json.loads(text)["components"] if c["type"] == "library"]) == 14


def test_spdx_output_is_valid(tmp_path):
    path = tmp_path / "sbom.spdx.json"
    assert scan(str(corpus_file("alpine311.oci.tar")), "--format", "spdx", "--output", str(path)) == ""
    document = json_parser.parse_from_file(str(path))
    assert validate_full_spdx_document(document, "SPDX-2.3") == []
    assert len(document.packages) >= 14


@pytest.mark.parametrize("fmt", ["table", "json", "cyclonedx", "spdx"])
def test_output_to_a_file_equals_standard_output(tmp_path, fmt):
    target = str(corpus_file("alpine311.oci.tar"))
    path = tmp_path / f"report.{fmt}"
    assert scan(target, "--format", fmt, "-o", str(path)) == ""
    printed = scan(target, "--format", fmt)
    if fmt in ("json", "table"):
        assert path.read_text() == printed
    else:  # serial numbers and timestamps differ from run to run
        assert len(path.read_text().splitlines()) == len(printed.splitlines())


def test_an_unknown_format_is_refused():
    with pytest.raises(CommandError, match="invalid choice: 'xml'"):
        scan(str(corpus_file("alpine311.oci.tar")), "--format", "xml")


# -- platforms ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def multiarch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout whose tag `multi` is an index: amd64 is alpine 3.11, arm64/v8 is alpine 3.20."""
    dest = tmp_path_factory.mktemp("multiarch")
    write_multiarch_layout(dest, corpus_file("alpine311.oci.tar"), corpus_file("alpine320.oci.tar"))
    return dest


@pytest.mark.parametrize(
    ("platform", "version", "chosen"),
    [
        (None, "3.11.13", "linux/amd64"),  # VIGIL_PLATFORM's default
        ("linux/amd64", "3.11.13", "linux/amd64"),
        ("linux/arm64/v8", "3.20.3", "linux/arm64/v8"),
        ("linux/arm64", "3.20.3", "linux/arm64/v8"),  # arm64 means v8
    ],
)
def test_the_platform_picks_the_image_of_an_index(multiarch, platform, version, chosen):
    args = ["--platform", platform] if platform else []
    doc = scan_json(str(multiarch), *args)
    assert doc["distro"]["version_id"] == version
    assert doc["image"]["platform"] == chosen


def test_a_platform_the_index_lacks_fails_the_scan(multiarch, capsys):
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("scan", str(multiarch), "--platform", "linux/s390x", stdout=io.StringIO(), stderr=err)
    assert exit_info.value.code == 2
    assert err.getvalue().startswith("scan failed: ")
    assert "linux/s390x" in err.getvalue()


def test_a_malformed_platform_is_a_usage_error():
    with pytest.raises(CommandError, match="os/arch") as error:
        scan(str(corpus_file("alpine311.oci.tar")), "--platform", "amd64")
    assert error.value.returncode == 2  # never 1, which a CI gate reads as "findings"


# -- registries --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, multiarch: Path) -> Iterator[tuple[RunningRegistry, str, str]]:
    """alpine311 as team/app:1.0 and the multi-platform index as team/multi:multi; yields them and their digests."""
    if tools_missing():
        pytest.skip(tools_missing())
    with start_registry(tmp_path_factory.mktemp("registry")) as running:
        app = skopeo_push(f"docker-archive:{corpus_file('alpine311.docker.tar')}", f"{running.host}/team/app:1.0")
        index = skopeo_push(f"oci:{multiarch}:multi", f"{running.host}/team/multi:multi", all_images=True)
        yield running, app, index


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    if tools_missing():
        pytest.skip(tools_missing())
    with start_registry(tmp_path_factory.mktemp("auth-registry"), htpasswd=USER) as running:
        skopeo_push(f"oci-archive:{corpus_file('alpine311.oci.tar')}", f"{running.host}/team/private:1.0", creds=USER)
        yield running


@needs_registry
def test_a_registry_reference_by_tag_and_by_digest(registry):
    running, digest, _ = registry
    by_tag = scan_json(f"{running.host}/team/app:1.0", "--insecure")
    assert distro(by_tag) == ALPINE311
    assert by_tag["image"]["manifest_digest"] == digest
    assert by_tag["image"]["repo_tags"] == [f"{running.host}/team/app:1.0"]
    by_digest = scan_json(f"docker://{running.host}/team/app@{digest}", "--insecure")
    assert by_digest["packages"] == by_tag["packages"]


@needs_registry
def test_plain_http_needs_insecure(registry):
    running, _, _ = registry
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("scan", f"{running.host}/team/app:1.0", stdout=io.StringIO(), stderr=err)
    assert exit_info.value.code == 2
    assert err.getvalue().startswith("scan failed: ")


@needs_registry
@pytest.mark.parametrize(("platform", "version"), [("linux/amd64", "3.11.13"), ("linux/arm64/v8", "3.20.3")])
def test_a_registry_index_with_a_platform(registry, platform, version):
    running, _, index = registry
    doc = scan_json(f"{running.host}/team/multi:multi", "--insecure", "--platform", platform)
    assert doc["distro"]["version_id"] == version
    assert doc["image"]["index_digest"] == index


@needs_registry
def test_credentials_from_the_environment(auth_registry, monkeypatch):
    monkeypatch.setenv("VIGIL_REGISTRY_USERNAME", USER[0])
    monkeypatch.setenv("VIGIL_REGISTRY_PASSWORD", USER[1])
    assert distro(scan_json(f"{auth_registry.host}/team/private:1.0", "--insecure")) == ALPINE311


@needs_registry
def test_credentials_from_a_docker_config(auth_registry, monkeypatch, tmp_path):
    config = tmp_path / "docker-config"
    config.mkdir()
    auth = base64.b64encode(f"{USER[0]}:{USER[1]}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    assert distro(scan_json(f"{auth_registry.host}/team/private:1.0", "--insecure")) == ALPINE311


@needs_registry
@pytest.mark.parametrize("password", [None, "wrong-password"])
def test_missing_or_wrong_credentials_fail_the_scan(auth_registry, monkeypatch, password):
    if password is not None:
        monkeypatch.setenv("VIGIL_REGISTRY_USERNAME", USER[0])
        monkeypatch.setenv("VIGIL_REGISTRY_PASSWORD", password)
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("scan", f"{auth_registry.host}/team/private:1.0", "--insecure", stdout=io.StringIO(), stderr=err)
    assert exit_info.value.code == 2
    assert err.getvalue().startswith(f"scan failed: authentication failed for {auth_registry.host}")


# -- failures, as a user sees them ----------------------------------------------------------------------


def run_manage(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "VIGIL_WORK_DIR": str(tmp_path / "work"),
        "HOME": str(tmp_path / "home"),
    }
    return subprocess.run(
        [sys.executable, "manage.py", "scan", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def corrupt_archives(tmp_path: Path) -> dict[str, Path]:
    archives = {
        "truncated": tmp_path / "truncated.tar",
        "random": tmp_path / "random.tar",
        "empty": tmp_path / "empty.tar",
    }
    archives["truncated"].write_bytes(corpus_file("alpine311.docker.tar").read_bytes()[:100_000])
    archives["random"].write_bytes(os.urandom(3000))
    archives["empty"].write_bytes(b"")
    return archives


def test_a_corrupt_archive_exits_2_with_one_line_and_no_traceback(tmp_path):
    archive = corrupt_archives(tmp_path)["truncated"]
    result = run_manage(str(archive), tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"scan failed: {archive} is not a readable tar archive (unexpected end of data)"
    ]
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize("name", ["random", "empty"])
def test_other_corrupt_archives_fail_the_same_way(tmp_path, name):
    archive = corrupt_archives(tmp_path)[name]
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("scan", str(archive), stdout=io.StringIO(), stderr=err)
    assert exit_info.value.code == 2
    assert err.getvalue().startswith(f"scan failed: {archive} is not a readable tar archive")
    assert err.getvalue().count("\n") <= 1


def test_a_hostile_layer_fails_the_scan_with_its_reason(tmp_path):
    layout = oci_layout(tmp_path / "hostile", [[F("../../etc/owned", "x")]])
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("scan", str(layout), stdout=io.StringIO(), stderr=err)
    assert exit_info.value.code == 2
    assert err.getvalue() == "scan failed: member '../../etc/owned' escapes the image root (path traversal)\n"
    assert not (tmp_path / "etc").exists()


def test_a_target_that_is_nothing_fails_the_scan(tmp_path):
    result = run_manage(str(tmp_path / "missing.tar"), tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"scan failed: '{tmp_path / 'missing.tar'}' is not a file, a directory")
    assert "Traceback" not in result.stderr


def test_an_unwritable_output_file_is_a_clear_error(tmp_path):
    result = run_manage(
        str(corpus_file("alpine311.oci.tar")), "--output", str(tmp_path / "no" / "such" / "dir.json"), tmp_path=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"CommandError: cannot write the report to {tmp_path / 'no/such/dir.json'}: No such file or directory"
    )
