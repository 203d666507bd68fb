"""Findings stored per scan, the report API, diffs between scans, scans requested by CI, and the CLI gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.services import create_token
from advisories.findings import match_analysis
from advisories.sync import sync_feed
from scans.choices import ScanState
from scans.engine.targets import scan
from scans.models import Image, Registry, Repository, ScanJob, Tag
from scans.services.findings import diff_scans, store_report
from scans.services.inventory import store_analysis
from tests.advisories.test_sync import feed_path
from tests.conftest import REPO, corpus_file
from tests.support.registry import skopeo_push, start_registry, tools_missing

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpine_feed() -> None:
    run = sync_feed("alpine-secdb", str(feed_path("alpine-secdb/yaml")))
    assert run.state == "succeeded", run.error
    kev = sync_feed("kev", str(feed_path("kev/known_exploited_vulnerabilities.json")))
    assert kev.state == "succeeded", kev.error


@pytest.fixture
def api() -> APIClient:
    """CI's credential: a scanner token, which reads and submits scans."""
    _, key = create_token(User.objects.create_user("ci").pk, Role.SCANNER)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def scanned(archive: str, tmp_path: Path, repository: Repository, tag: str) -> ScanJob:
    """Analyse a corpus image, store it as a done scan of `repository:tag` with its findings."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    analysis = scan(str(corpus_file(archive)), workdir=tmp_path)
    image, _ = Image.objects.get_or_create(digest=analysis.image.manifest_digest)
    store_analysis(image, analysis)
    Tag.objects.update_or_create(repository=repository, name=tag, defaults={"image": image})
    job = ScanJob.objects.create(image=image, repository=repository, reference=archive, state=ScanState.DONE)
    store_report(job, match_analysis(analysis))
    return job


@pytest.fixture
def repository() -> Repository:
    registry = Registry.objects.create(name="local", url="http://127.0.0.1:5999")
    return Repository.objects.create(registry=registry, name="corpus/alpine")


def test_findings_are_stored_per_scan_and_served_with_filters(alpine_feed, api, tmp_path, repository):
    job = scanned("alpine37.oci.tar", tmp_path, repository, "3.7")
    stored = list(job.findings.all())
    assert stored, "alpine 3.7.3's musl is fixed later in the v3.7 secdb"
    digest = job.image.digest
    body = api.get(f"/api/v1/images/{digest}/report?limit=1000").json()
    assert body["count"] == len(stored)
    assert body["summary"]["total"] == len(stored)
    assert sum(body["summary"][s] for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")) == len(stored)
    first = body["results"][0]
    assert first["package"]["purl"].startswith("pkg:apk/alpine/")
    assert first["evidence"][0]["source"] == "alpine-secdb"
    assert first["layer"]["index"] == 0

    some = stored[0]
    by_id = api.get(f"/api/v1/images/{digest}/report?id={some.vulnerability_id}").json()
    assert {r["id"] for r in by_id["results"]} == {some.vulnerability_id}
    by_package = api.get(f"/api/v1/images/{digest}/report?package={some.package_name}&limit=1000").json()
    assert {r["package"]["name"] for r in by_package["results"]} == {some.package_name}
    assert by_package["count"] == job.findings.filter(package_name=some.package_name).count()
    fixable = api.get(f"/api/v1/images/{digest}/report?fixable=true&limit=1000").json()
    assert fixable["count"] == job.findings.exclude(fixed_versions=[]).count()
    severity = stored[0].severity
    only = api.get(f"/api/v1/images/{digest}/report?severity={severity}&limit=1000").json()
    assert {r["severity"] for r in only["results"]} == {severity}
    kev = api.get(f"/api/v1/images/{digest}/report?kev=true&limit=1000").json()
    assert kev["count"] == job.findings.filter(kev=True).count()


def test_report_as_cyclonedx_with_vulnerabilities(alpine_feed, api, tmp_path, repository):
    job = scanned("alpine37.oci.tar", tmp_path, repository, "3.7")
    response = api.get(f"/api/v1/images/{job.image.digest}/report?format=cyclonedx")
    assert response.status_code == 200
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(response.content.decode()) is None
    doc = json.loads(response.content)
    assert {v["id"] for v in doc["vulnerabilities"]} == set(job.findings.values_list("vulnerability_id", flat=True))


def test_report_of_an_unscanned_image_is_404(api):
    image = Image.objects.create(digest="sha256:" + "1" * 64)
    response = api.get(f"/api/v1/images/{image.digest}/report")
    assert response.status_code == 404


def test_diff_between_two_scans_of_a_repository(alpine_feed, api, tmp_path, repository):
    old = scanned("alpine37.oci.tar", tmp_path / "a", repository, "old")
    new = scanned("alpine311.oci.tar", tmp_path / "b", repository, "new")
    buckets = diff_scans(old, new)
    assert buckets["resolved"], "musl's CVE-2019-14697 affects 3.7.3 and not 3.11.13"
    body = api.get(f"/api/v1/repositories/{repository.name}/diff/?from=old&to=new").json()
    assert [f["id"] for f in body["new"]] == [f.vulnerability_id for f in buckets["new"]]
    assert [f["id"] for f in body["resolved"]] == [f.vulnerability_id for f in buckets["resolved"]]
    assert body["unchanged"] == len(buckets["unchanged"])
    key = lambda f: (f.vulnerability_id, f.package_name)  # noqa: E731
    assert {key(f) for f in buckets["new"]} == {key(f) for f in new.findings.all()} - {
        key(f) for f in old.findings.all()
    }
    by_digest = api.get(
        f"/api/v1/repositories/{repository.name}/diff/?from={old.image.digest}&to={new.image.digest}"
    ).json()
    assert by_digest == body
    assert api.get(f"/api/v1/repositories/{repository.name}/diff/?from=old").status_code == 400


def test_verdict_of_a_finished_scan(alpine_feed, api, tmp_path, repository):
    job = scanned("alpine37.oci.tar", tmp_path, repository, "3.7")
    every = api.get(f"/api/v1/scans/{job.id}/?severity=CRITICAL,HIGH,MEDIUM,LOW,UNKNOWN").json()
    assert every["verdict"]["passed"] is False
    assert every["verdict"]["failing"] == job.findings.count()
    none = api.get(f"/api/v1/scans/{job.id}/?severity=CRITICAL&ignore_unfixed=true").json()
    failing = job.findings.filter(severity="CRITICAL").exclude(fixed_versions=[]).count()
    assert none["verdict"]["failing"] == failing
    assert api.get(f"/api/v1/scans/{job.id}/?severity=SEVERE").status_code == 400


def test_a_scan_request_for_an_unconfigured_registry_is_refused(api):
    response = api.post("/api/v1/scans/", {"image": "registry.example.com/app:1.0"}, format="json")
    assert response.status_code == 400
    assert "not configured" in response.json()["image"][0]
    assert ScanJob.objects.count() == 0


@pytest.mark.skipif(bool(tools_missing()), reason=tools_missing() or "tools present")
def test_ci_posts_an_image_reference_and_gets_a_queued_scan(api, tmp_path):
    with start_registry(tmp_path / "registry") as registry:
        Registry.objects.create(name="ci", url=registry.url)
        digest = skopeo_push(f"docker-archive:{corpus_file('alpine311.docker.tar')}", f"{registry.host}/app/web:1.0")
        response = api.post("/api/v1/scans/", {"image": f"{registry.host}/app/web:1.0"}, format="json")
        assert response.status_code == 202, response.content
        job = ScanJob.objects.get(id=response.json()["id"])
        assert job.image.digest == digest
        assert job.state == ScanState.QUEUED
        assert Tag.objects.get(name="1.0").image.digest == digest
        again = api.post("/api/v1/scans/", {"image": f"{registry.host}/app/web@{digest}"}, format="json")
        assert again.status_code == 200
        assert again.json()["id"] == job.id


# -- the CLI gate --------------------------------------------------------------------------


def run_scan(*args: str, cwd: Path, env_db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "scan", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": env_db, "VIGIL_WORK_DIR": str(cwd / "work")},
        check=False,
    )


@pytest.fixture
def cli_db(tmp_path) -> str:
    """An embedded SQLite database with alpine-secdb, as `make demo` builds one."""
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url}
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=REPO)
    path = feed_path("alpine-secdb/yaml")
    subprocess.run([*manage, "sync_advisories", "--source", "alpine-secdb", "--path", str(path)], env=env, check=True)
    return url


def test_gate_exit_codes(cli_db, tmp_path):
    image = str(corpus_file("alpine37.oci.tar"))
    passed = run_scan(image, "--format", "json", cwd=tmp_path, env_db=cli_db)
    assert passed.returncode == 0, passed.stderr
    findings = json.loads(passed.stdout)["findings"]
    assert findings
    failed = run_scan(
        image, "--severity", "CRITICAL,HIGH,MEDIUM,LOW,UNKNOWN", "--exit-code", "1", cwd=tmp_path, env_db=cli_db
    )
    assert failed.returncode == 1
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"not an image")
    crashed = run_scan(str(broken), "--exit-code", "1", cwd=tmp_path, env_db=cli_db)
    assert crashed.returncode == 2
    assert crashed.stderr.startswith("scan failed:")
    ids = sorted({f["id"] for f in findings})
    ignore = tmp_path / ".vigilignore"
    ignore.write_text("".join(f"- id: {i}\n  reason: accepted for the test\n" for i in ids))
    quiet = run_scan(
        image, "--severity", "CRITICAL,HIGH,MEDIUM,LOW,UNKNOWN", "--exit-code", "1", cwd=tmp_path, env_db=cli_db
    )
    assert quiet.returncode == 0, quiet.stdout


def test_empty_database_is_said_clearly(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "migrate", "-v0"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url},
        check=True,
    )  # noqa: E501
    result = run_scan(str(corpus_file("alpine311.oci.tar")), cwd=tmp_path, env_db=url)
    assert result.returncode == 0
    assert "advisory database is empty" in result.stderr


def test_an_uploaded_sbom_is_matched_like_an_image(alpine_feed, api, tmp_path):
    from scans.engine import sbom as sbom_module

    analysis = scan(str(corpus_file("alpine37.oci.tar")), workdir=tmp_path)
    document = sbom_module.to_cyclonedx(analysis).encode()
    response = api.post("/api/v1/sboms", document, content_type="application/vnd.cyclonedx+json")
    assert response.status_code == 201, response.content
    body = response.json()
    report = api.get(body["report"] + "?limit=100").json()
    found = {(r["package"]["name"], r["id"]) for r in report["results"]}
    assert ("musl", "CVE-2019-14697") in found
    assert body["summary"]["total"] == report["count"]
    spdx = api.post("/api/v1/sboms", sbom_module.to_spdx(analysis).encode(), content_type="application/spdx+json")
    assert spdx.status_code == 201
    assert spdx.json()["summary"]["total"] == report["count"]
    bad = api.post("/api/v1/sboms", b"{not json", content_type="application/json")
    assert bad.status_code == 400
    assert "not JSON" in bad.json()["sbom"][0]


def test_scan_an_sbom_and_a_source_tree(cli_db, tmp_path):
    from scans.engine import sbom as sbom_module

    analysis = scan(str(corpus_file("alpine37.oci.tar")), workdir=tmp_path)
    document = tmp_path / "alpine37.cdx.json"
    document.write_text(sbom_module.to_cyclonedx(analysis))
    result = run_scan("--sbom", str(document), "--format", "json", cwd=tmp_path, env_db=cli_db)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {(f["package"]["name"], f["id"]) for f in report["findings"]} >= {("musl", "CVE-2019-14697")}

    tree = tmp_path / "project"
    tree.mkdir()
    (tree / "requirements.txt").write_text("Django==3.2\nrequests==2.25.0  # pinned\nflask>=1.0\n")
    result = run_scan("--fs", str(tree), "--format", "json", cwd=tmp_path, env_db=cli_db)
    assert result.returncode == 0, result.stderr
    packages = {(p["name"], p["version"]) for p in json.loads(result.stdout)["packages"]}
    assert packages == {("Django", "3.2"), ("requests", "2.25.0")}  # only == pins are packages
