"""The Scanner Adapter API v1.2, checked against the specification itself.

The JSON schemas come from the spec's OpenAPI file (tests/fixtures/harbor,
verbatim), read with PyYAML and validated with jsonschema, also in a strict
form where no property outside the spec (and Harbor's own `layer`) is
allowed. Requests and answers are the spec's own examples. The flow tests
run a real docker-registry that wants credentials Vigil does not have: only
the scan request's authorization can pull, and afterwards it is found
nowhere in the database.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone
from jsonschema import Draft4Validator
from kombu import Connection
from referencing import Registry as SchemaRegistry
from referencing import Resource
from referencing.jsonschema import DRAFT4

from advisories.findings import match_analysis
from advisories.models import FeedSync, SyncState
from advisories.sync import sync_feed
from scanner_service.celery import app as celery_app
from scans import crypto
from scans.choices import ScanState
from scans.engine.findings import Finding, Report
from scans.engine.models import Analysis, ImageMeta, Layer, Package
from scans.engine.targets import scan
from scans.harbor import reports
from scans.harbor.adapter import GENERIC_REPORT, NATIVE_REPORT, REFRESH_AFTER, SBOM_REPORT
from scans.harbor.authorization import parse_authorization, seal, unseal
from scans.models import Image, Registry, Repository, ScanJob, Tag
from scans.services.findings import store_report
from scans.services.inventory import store_analysis
from scans.tasks import analyze_image
from tests.advisories.test_sync import feed_path
from tests.conftest import corpus_file
from tests.support.registry import skopeo_push, start_registry, tools_missing
from tests.support.token_server import start_token_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "harbor"
# Our own JSON Schema rendering of the adapter API v1.2's component schemas (the format's fields and
# enums), written for these tests: the spec file itself is not copied into this repository.
SPEC = json.loads((FIXTURES / "adapter-schemas.json").read_text())
SPEC_URI = "urn:goharbor:pluggable-scanner-spec:scanner-adapter-openapi-v1.2"
KEY = "harbor-adapter-key-0123456789abcdef"
ERROR_TYPE = "application/vnd.scanner.adapter.error+json; version=1.0"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
README_DIGEST = "sha256:917f5b7f4bef1b35ee90f03033f33a81002511c1e0767fd44276d4bd9cd2fa8e"
needs_registry = pytest.mark.skipif(bool(tools_missing()), reason=tools_missing() or "tools present")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# -- the spec's schemas --------------------------------------------------------------------------------------------


def _strict(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with every object schema closed: a property the spec does not name fails validation.

    VulnerabilityItem gets Harbor's own `layer` (harbor src/pkg/scan/vuln: "Not defined by Scanners API").
    """
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    schemas["VulnerabilityItem"]["properties"]["layer"] = {
        "type": "object",
        "properties": {"digest": {"type": "string"}, "diff_id": {"type": "string"}},
        "required": ["digest"],
        "additionalProperties": False,
    }
    for schema in schemas.values():
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)
    return spec


def validator(component: str, *, strict: bool = True) -> Draft4Validator:
    """A validator for one of the spec's component schemas (OpenAPI 3.0 schemas are JSON Schema draft 4 at heart)."""
    spec = _strict(SPEC) if strict else SPEC
    registry = SchemaRegistry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT4))
    return Draft4Validator(
        {"$ref": f"{SPEC_URI}#/components/schemas/{component}"},
        registry=registry,
        format_checker=Draft4Validator.FORMAT_CHECKER,
    )


def assert_valid(component: str, document: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(component).iter_errors(document)]
    assert not errors, "\n".join(errors[:20])


def test_the_schemas_accept_the_specs_own_examples_and_refuse_broken_ones():
    """The validator itself: the spec's examples pass, and a wrong severity or an unknown field does not."""
    assert_valid("HarborVulnerabilityReport", fixture("readme-vulnerability-report.json"))
    assert_valid("HarborSbomReport", fixture("sbom-report.json"))
    assert_valid("ScanRequest", fixture("readme-scan-request.json"))
    assert_valid("ScanRequest", fixture("openapi-scan-request.json"))
    assert_valid("ScanResponse", fixture("readme-scan-response.json"))
    assert_valid("ErrorResponse", fixture("readme-error-invalid-registry-url.json"))
    assert_valid("ScannerAdapterMetadata", fixture("readme-metadata.json"))
    for capability in fixture("openapi-metadata-capabilities.json"):
        assert_valid("ScannerCapability", capability)

    broken = fixture("readme-vulnerability-report.json")
    broken["vulnerabilities"][0]["severity"] = "HIGH"
    assert not validator("HarborVulnerabilityReport").is_valid(broken)
    broken = fixture("readme-vulnerability-report.json")
    broken["vulnerabilities"][0]["cvss"] = 9.8
    assert not validator("HarborVulnerabilityReport").is_valid(broken)
    assert validator("HarborVulnerabilityReport", strict=False).is_valid(broken)
    broken = fixture("readme-vulnerability-report.json")
    broken["generated_at"] = "yesterday"
    assert not validator("HarborVulnerabilityReport").is_valid(broken)


# -- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture
def adapter_key(settings: Any) -> str:
    settings.VIGIL_HARBOR_ADAPTER_API_KEY = KEY
    return KEY


@pytest.fixture
def harbor(adapter_key: str) -> Client:
    """A client that authenticates as Harbor does with an API key."""
    return Client(HTTP_X_SCANNERADAPTER_API_KEY=adapter_key)


@pytest.fixture
def alpine_feed(db: None) -> None:
    run = sync_feed("alpine-secdb", str(feed_path("alpine-secdb/yaml")))
    assert run.state == "succeeded", run.error


def post_scan(
    client: Client, body: Any, content_type: str = "application/vnd.scanner.adapter.scan.request+json; version=1.0"
):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post("/api/v1/scan", data, content_type=content_type)


def get_report(client: Client, scan_id: str, accept: str = NATIVE_REPORT, **query: str):
    return client.get(f"/api/v1/scan/{scan_id}/report", query, HTTP_ACCEPT=accept)


def body(response: Any) -> Any:
    """The JSON body: the spec's report types are JSON without saying so (`...vulnerability.report; version=1.1`)."""
    return json.loads(response.content)


def assert_error(response: Any, status: int, *, containing: str = "") -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == ERROR_TYPE
    doc = response.json()
    assert_valid("ErrorResponse", doc)
    message: str = doc["error"]["message"]
    assert message
    assert containing in message
    return message


def scanned(archive: str, tmp_path: Path, repository: Repository, tag: str) -> ScanJob:
    """A corpus image analysed and matched as a done scan of `repository:tag`."""
    analysis = scan(str(corpus_file(archive)), workdir=tmp_path)
    image, _ = Image.objects.get_or_create(
        digest=analysis.image.manifest_digest, defaults={"media_type": analysis.image.media_type}
    )
    store_analysis(image, analysis)
    Tag.objects.update_or_create(repository=repository, name=tag, defaults={"image": image})
    now = timezone.now()
    job = ScanJob.objects.create(
        image=image, repository=repository, reference=f"{repository.name}@{image.digest}", state=ScanState.DONE,
        started_at=now, finished_at=now,
    )  # fmt: skip
    store_report(job, match_analysis(analysis))
    return job


@pytest.fixture
def repository(db: None) -> Repository:
    registry = Registry.objects.create(name="harbor", url="https://harbor.example.com")
    return Repository.objects.create(registry=registry, name="library/alpine")


# -- metadata --------------------------------------------------------------------------------------------------------


def harbor_validate(metadata: dict[str, Any]) -> None:
    """Harbor's own ScannerAdapterMetadata.Validate() (src/pkg/scan/rest/v1/models.go), and its empty-property check."""
    scanner = metadata["scanner"]
    assert all(scanner[field] for field in ("name", "vendor", "version"))
    assert metadata["capabilities"]
    for capability in metadata["capabilities"]:
        assert DOCKER_MANIFEST in capability["consumes_mime_types"]
        assert {NATIVE_REPORT, GENERIC_REPORT, SBOM_REPORT} & set(capability["produces_mime_types"])
    assert all(isinstance(v, str) and v for v in metadata["properties"].values())


def test_metadata_validates_against_the_spec_and_harbors_own_checks(harbor, db):
    response = harbor.get("/api/v1/metadata", HTTP_ACCEPT="application/vnd.scanner.adapter.metadata+json; version=1.0")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.scanner.adapter.metadata+json; version=1.0"
    metadata = response.json()
    assert_valid("ScannerAdapterMetadata", metadata)
    harbor_validate(metadata)
    by_type = {c["type"]: c for c in metadata["capabilities"]}
    # The spec's own capabilities example, as Vigil's capabilities are shaped.
    for example in fixture("openapi-metadata-capabilities.json"):
        ours = by_type[example["type"]]
        assert set(ours["consumes_mime_types"]) == set(example["consumes_mime_types"])
        assert set(example["produces_mime_types"]) <= set(ours["produces_mime_types"])
        assert ours.get("additional_attributes") == example.get("additional_attributes")
    assert set(by_type["vulnerability"]["produces_mime_types"]) == {GENERIC_REPORT, NATIVE_REPORT}
    properties = metadata["properties"]
    assert properties["harbor.scanner-adapter/scanner-type"] == "os-package-vulnerability"
    assert properties["harbor.scanner-adapter/registry-authorization-type"] == "Basic"
    # No successful sync yet: the property is left out (Harbor refuses an empty value).
    assert "harbor.scanner-adapter/vulnerability-database-updated-at" not in properties

    version_1_1 = harbor.get(
        "/api/v1/metadata/", HTTP_ACCEPT="application/vnd.scanner.adapter.metadata+json; version=1.1"
    )
    assert version_1_1["Content-Type"] == "application/vnd.scanner.adapter.metadata+json; version=1.1"


def test_the_database_updated_at_property_is_the_newest_successful_sync(harbor, db):
    now = timezone.now().replace(microsecond=0)

    def sync(feed: str, state: str, hours_ago: int) -> None:
        run = FeedSync.objects.create(feed=feed, source=feed.split(":")[0], location="x", state=state)
        FeedSync.objects.filter(pk=run.pk).update(finished_at=now - timedelta(hours=hours_ago))

    sync("osv:go", SyncState.SUCCEEDED, 30)
    sync("alpine-secdb:v3.7", SyncState.UNCHANGED, 5)  # checked, current: it counts
    sync("kev:kev", SyncState.FAILED, 1)  # does not
    sync("nvd:nvd", SyncState.RUNNING, 0)  # nor does this
    properties = harbor.get("/api/v1/metadata").json()["properties"]
    expected = (now - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert properties["harbor.scanner-adapter/vulnerability-database-updated-at"] == expected


# -- authentication ----------------------------------------------------------------------------------------------


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_SCANNERADAPTER_API_KEY": KEY},
        {"HTTP_AUTHORIZATION": f"Bearer {KEY}"},
        {"HTTP_AUTHORIZATION": basic("harbor", "harbor-user-password")},
    ],
    ids=["api-key", "bearer", "basic"],
)
def test_harbors_three_ways_to_authenticate(adapter_key, db, headers):
    User.objects.create_user("harbor", password="harbor-user-password")
    assert Client(**headers).get("/api/v1/metadata").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_X_SCANNERADAPTER_API_KEY": ""},
        {"HTTP_X_SCANNERADAPTER_API_KEY": KEY + "x"},
        {"HTTP_X_SCANNERADAPTER_API_KEY": KEY[:-1]},
        {"HTTP_AUTHORIZATION": f"Bearer {KEY}x"},
        {"HTTP_AUTHORIZATION": "Bearer"},
        {"HTTP_AUTHORIZATION": f"Token {KEY}"},
        {"HTTP_AUTHORIZATION": basic("harbor", "wrong")},
        {"HTTP_AUTHORIZATION": basic("no-password", "")},
        {"HTTP_AUTHORIZATION": basic("inactive", "inactive-password")},
        {"HTTP_AUTHORIZATION": "Basic not-base64!"},
    ],
)
def test_missing_or_wrong_credentials_get_401_with_the_error_body(adapter_key, db, headers):
    User.objects.create_user("harbor", password="harbor-user-password")
    User.objects.create_user("no-password")  # an unusable password
    User.objects.create_user("inactive", password="inactive-password", is_active=False)
    for path, method in [("/api/v1/metadata", "get"), ("/api/v1/scan", "post"), ("/api/v1/scan/1/report", "get")]:
        response = getattr(Client(**headers), method)(path)
        assert_error(response, 401)
        assert response["WWW-Authenticate"].startswith("Basic")
    assert ScanJob.objects.count() == 0


def test_a_basic_user_submits_scans_only_with_the_scanner_role(adapter_key, make_registry):
    make_registry("harbor", "http://harbor-harbor-registry:5000")
    User.objects.create_user("viewer", password="viewer-password")
    User.objects.create_user("staff", password="staff-password", is_staff=True)
    viewer = Client(HTTP_AUTHORIZATION=basic("viewer", "viewer-password"))
    assert viewer.get("/api/v1/metadata").status_code == 200
    assert_error(post_scan(viewer, fixture("readme-scan-request.json")), 403)
    assert ScanJob.objects.count() == 0
    staff = Client(HTTP_AUTHORIZATION=basic("staff", "staff-password"))
    assert post_scan(staff, fixture("readme-scan-request.json")).status_code == 202


def test_without_a_configured_key_the_key_and_bearer_are_refused(db, settings):
    settings.VIGIL_HARBOR_ADAPTER_API_KEY = ""
    assert_error(Client(HTTP_X_SCANNERADAPTER_API_KEY="").get("/api/v1/metadata"), 401)
    assert_error(Client(HTTP_AUTHORIZATION="Bearer ").get("/api/v1/metadata"), 401)


# -- scan requests -------------------------------------------------------------------------------------------------


def test_the_specs_scan_request_example_is_accepted(harbor, make_registry, django_capture_on_commit_callbacks):
    # The README's registry URL has no scheme: it is the host Vigil has configured.
    registry = make_registry("harbor", "http://harbor-harbor-registry:5000")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_scan(harbor, fixture("readme-scan-request.json"))
    assert response.status_code == 202, response.content
    assert response["Content-Type"] == "application/vnd.scanner.adapter.scan.response+json; version=1.0"
    answer = response.json()
    assert_valid("ScanResponse", answer)
    assert isinstance(answer["id"], str)  # Harbor's Go client reads a string
    job = ScanJob.objects.select_related("image", "repository").get(pk=int(answer["id"]))
    assert (job.repository.registry, job.repository.name) == (registry, "library/mongo")
    assert (job.image.digest, job.state) == (README_DIGEST, ScanState.QUEUED)
    assert len(callbacks) == 1  # enqueued once committed
    # The example's authorization (`Bearer: JWT...`) is kept nowhere in the database.
    assert_not_stored("JWTTOKENGOESHERE")


def test_the_openapi_examples_scan_request_is_accepted_with_real_credentials(harbor, make_registry):
    make_registry("harbor", "https://core.harbor.domain")
    example = fixture("openapi-scan-request.json")
    # Its authorization is a placeholder that is not base64: refused as such, without being repeated.
    message = assert_error(post_scan(harbor, example), 422, containing="registry.authorization")
    assert "BASE64_ENCODED_CREDENTIALS" not in message
    example["registry"]["authorization"] = basic("robot$library+scan", "robot-secret")
    response = post_scan(harbor, example)
    assert response.status_code == 202, response.content
    job = ScanJob.objects.get(pk=int(response.json()["id"]))
    assert job.image.media_type == DOCKER_MANIFEST
    assert Tag.objects.get(image=job.image).name == "3.14-xenial"


def test_the_specs_invalid_example_is_refused_with_its_error_body(harbor, make_registry):
    make_registry("harbor", "http://harbor-harbor-registry:5000")
    response = post_scan(harbor, fixture("readme-scan-request-invalid.json"))
    expected = fixture("readme-error-invalid-registry-url.json")["error"]["message"]
    assert assert_error(response, 422).startswith(expected)
    assert ScanJob.objects.count() == 0


def test_a_registry_vigil_does_not_know_is_refused_and_nothing_is_fetched(harbor, make_registry):
    make_registry("harbor", "https://harbor.example.com")
    request = fixture("readme-scan-request.json")
    for url in ["https://evil.example.com", "harbor.example.com:8443", "http://127.0.0.1:5000"]:
        request["registry"]["url"] = url
        assert_error(post_scan(harbor, request), 422, containing="is not configured in Vigil")
    assert Image.objects.count() == 0


@pytest.mark.parametrize(
    ("mutate", "status", "containing"),
    [
        (lambda r: r.pop("artifact"), 422, "artifact"),
        (lambda r: r["artifact"].pop("digest"), 422, "artifact.digest"),
        (lambda r: r["artifact"].update(digest="sha256:short"), 422, "artifact.digest"),
        (lambda r: r["artifact"].update(repository="Library/Mongo"), 422, "artifact.repository"),
        (lambda r: r["artifact"].update(tag="bad tag"), 422, "artifact.tag"),
        (lambda r: r["registry"].update(url="https://harbor.example.com/v2/x"), 422, "invalid registry_url"),
        (lambda r: r["registry"].update(url="https://user:pw@harbor.example.com"), 422, "invalid registry_url"),
        (lambda r: r["registry"].update(url="https://harbor.example.com:port"), 422, "invalid registry_url"),
        (lambda r: r["registry"].update(authorization="Digest abc"), 422, "registry.authorization"),
        (lambda r: r["registry"].update(authorization="Bearer a b"), 422, "registry.authorization"),
        (lambda r: r.update(enabled_capabilities=[{"type": "malware"}]), 422, "enabled_capabilities"),
        (lambda r: r["artifact"].update(mime_type="application/vnd.cncf.helm.config.v1+json"), 422, "mime_type"),
        (lambda r: r.update(registry="https://harbor.example.com"), 400, "registry"),
        (lambda r: r["artifact"].update(digest=["sha256:x"]), 400, "artifact.digest"),
        (lambda r: r.update(enabled_capabilities={"type": "sbom"}), 400, "enabled_capabilities"),
    ],
)
def test_bad_scan_requests_get_400_or_422_with_the_error_body(harbor, make_registry, mutate, status, containing):
    make_registry("harbor", "https://harbor.example.com")
    request = fixture("readme-scan-request.json")
    request["registry"]["url"] = "https://harbor.example.com"
    mutate(request)
    assert_error(post_scan(harbor, request), status, containing=containing)
    assert ScanJob.objects.count() == 0


@pytest.mark.parametrize("body", ["{", "[]", '"scan"', b"\xff\xfe", "[" * 100_000])
def test_a_body_that_is_not_a_json_object_is_a_400(harbor, db, body):
    assert_error(post_scan(harbor, body), 400)


def test_a_second_request_for_the_same_digest_gets_the_same_scan(harbor, make_registry):
    make_registry("harbor", "http://harbor-harbor-registry:5000")
    first = post_scan(harbor, fixture("readme-scan-request.json")).json()["id"]
    again = post_scan(harbor, fixture("readme-scan-request.json"), content_type="application/json")
    assert again.status_code == 202
    assert again.json()["id"] == first
    assert ScanJob.objects.count() == 1


# -- reports ---------------------------------------------------------------------------------------------------------


def test_a_queued_or_running_scan_answers_302_with_refresh_after(harbor, make_registry):
    make_registry("harbor", "http://harbor-harbor-registry:5000")
    scan_id = post_scan(harbor, fixture("readme-scan-request.json")).json()["id"]
    for state in (ScanState.QUEUED, ScanState.RUNNING):
        ScanJob.objects.filter(pk=scan_id).update(state=state)
        for accept in (NATIVE_REPORT, GENERIC_REPORT, SBOM_REPORT):
            response = get_report(harbor, scan_id, accept, sbom_media_type=reports.SPDX)
            assert response.status_code == 302
            # Harbor's client reads Refresh-After (not the README's Retry-After), as an int8.
            assert 0 < int(response["Refresh-After"]) == REFRESH_AFTER <= 127
            assert not response.has_header("Retry-After")
            assert not response.has_header("Location")


def test_an_unknown_scan_request_is_404(harbor, db):
    for scan_id in ["999999", "3fa85f64-5717-4562-b3fc-2c963f66afa6", "1" * 40]:
        assert_error(get_report(harbor, scan_id), 404)


def test_a_failed_scan_answers_500_with_its_reason(harbor, repository):
    image = Image.objects.create(digest=README_DIGEST)
    job = ScanJob.objects.create(image=image, repository=repository, reference="x", state=ScanState.FAILED,
                                 reason="authentication failed for harbor.example.com")  # fmt: skip
    assert_error(get_report(harbor, str(job.id)), 500, containing="authentication failed for harbor.example.com")


def test_a_report_type_vigil_does_not_produce_is_406_not_the_specs_501(harbor, repository):
    # Every request Vigil cannot serve gets a 4xx (schemathesis checks that no request gets a 5xx).
    job = ScanJob.objects.create(image=Image.objects.create(digest=README_DIGEST), repository=repository, reference="x")
    for accept in ["application/vnd.scanner.adapter.vuln.report.raw", f"{GENERIC_REPORT[:-3]}9", "AAA", "[x"]:
        assert_error(get_report(harbor, str(job.id), accept), 406)


def test_the_vulnerability_report_validates_against_the_spec(harbor, alpine_feed, tmp_path, repository):
    job = scanned("alpine37.oci.tar", tmp_path, repository, "3.7")
    findings = list(job.findings.all())
    assert findings, "alpine 3.7's musl and busybox are fixed later in the v3.7 secdb"
    for accept in (NATIVE_REPORT, GENERIC_REPORT):
        response = get_report(harbor, str(job.id), accept)
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == accept
        report = body(response)
        assert_valid("HarborVulnerabilityReport", report)
    assert report["artifact"] == {
        "repository": "library/alpine", "digest": job.image.digest, "tag": "3.7", "mime_type": job.image.media_type,
    }  # fmt: skip
    assert report["scanner"] == {"name": "Vigil", "vendor": "Vigil", "version": reports.SCANNER["version"]}
    items = report["vulnerabilities"]
    assert {(v["id"], v["package"], v["version"]) for v in items} == {
        (f.vulnerability_id, f.package_name, f.package_version) for f in findings
    }
    by_key = {(f.vulnerability_id, f.package_name): f for f in findings}
    layers = {layer.index: layer for layer in job.image.layers.all()}
    for item in items:
        finding = by_key[(item["id"], item["package"])]
        assert item["severity"] == finding.severity.capitalize()
        assert item["links"][0].endswith(finding.vulnerability_id)
        assert item.get("fix_version", "") == ", ".join(finding.fixed_versions)
        layer = layers[finding.layer_index]
        assert item["layer"] == {"digest": layer.digest, "diff_id": layer.diff_id}
        assert item["vendor_attributes"]["purl"] == finding.purl
    order = reports.HARBOR_SEVERITIES
    assert report["severity"] == max((v["severity"] for v in items), key=order.index)


def test_findings_against_an_empty_advisory_database_are_an_error_until_advisories_are_synced(
    harbor, tmp_path, repository
):
    job = scanned("alpine37.oci.tar", tmp_path, repository, "3.7")
    assert job.database["empty"] is True
    assert_error(get_report(harbor, str(job.id)), 500, containing="advisory database is empty")
    # Advisories synced since: the stored inventory is matched again when the report is asked for.
    run = sync_feed("alpine-secdb", str(feed_path("alpine-secdb/yaml")))
    assert run.state == "succeeded", run.error
    response = get_report(harbor, str(job.id))
    assert response.status_code == 200, response.content
    assert body(response)["vulnerabilities"]
    job.refresh_from_db()
    assert job.database["empty"] is False
    assert job.findings.count() == len({(v["id"], v["package"]) for v in body(response)["vulnerabilities"]})


@pytest.mark.parametrize("media_type", [reports.SPDX, reports.CYCLONEDX])
def test_the_sbom_report_validates_and_holds_the_inventory(harbor, tmp_path, repository, media_type):
    job = scanned("alpine37.oci.tar", tmp_path, repository, "3.7")
    response = get_report(harbor, str(job.id), SBOM_REPORT, sbom_media_type=media_type)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == SBOM_REPORT
    report = body(response)
    assert_valid("HarborSbomReport", report)
    assert report["media_type"] == media_type
    purls = set(job.image.packages.values_list("purl", flat=True))
    document = report["sbom"]
    if media_type == reports.CYCLONEDX:
        assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document)) is None
        assert {c["purl"] for c in document["components"] if c["type"] == "library"} == purls
    else:
        assert document["spdxVersion"] == "SPDX-2.3"
        locators = {r["referenceLocator"] for p in document["packages"] for r in p.get("externalRefs", [])}
        assert purls <= locators


@pytest.mark.parametrize("query", [{}, {"sbom_media_type": "application/json"}, {"sbom_media_type": "text/spdx"}])
def test_an_sbom_report_without_a_valid_sbom_media_type_is_400(harbor, repository, query):
    job = ScanJob.objects.create(image=Image.objects.create(digest=README_DIGEST), repository=repository, reference="x")
    assert_error(harbor.get(f"/api/v1/scan/{job.id}/report", query, HTTP_ACCEPT=SBOM_REPORT), 400)


# -- the conversion, field by field ---------------------------------------------------------------------------------


def _finding(**changes: Any) -> Finding:
    layer = Layer(index=1, digest="sha256:" + "1" * 64, diff_id="sha256:" + "2" * 64)
    package = Package(type="apk", name="musl", version="1.1.18-r3", purl="pkg:apk/alpine/musl@1.1.18-r3",
                      path="lib/apk/db/installed", layer=layer)  # fmt: skip
    fields: dict[str, Any] = {
        "id": "CVE-2019-14697", "aliases": ("ALPINE-1",), "package": package, "fix_state": "fixed",
        "fixed_versions": ("1.1.18-r4",), "severity": "CRITICAL",
    }  # fmt: skip
    return Finding(**{**fields, **changes})


def test_cvss_severity_kev_and_epss_go_where_harbor_reads_them():
    v3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    v2 = "AV:N/AC:L/Au:N/C:P/I:P/A:P"
    v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    findings = [
        _finding(
            cvss_vector=v3,
            cvss_score=9.8,
            kev=True,
            kev_date_added=timezone.now().date(),
            epss_score=0.9,
            epss_percentile=0.99,
            cwes=("CWE-787",),
            references=("https://example.com/a", "javascript:x"),
            description="overflow",
        ),  # fmt: skip
        _finding(id="CVE-2000-0001", severity="HIGH", cvss_vector=v2, cvss_score=7.5, title="only a title"),
        _finding(id="CVE-2000-0002", severity="MEDIUM", cvss_vector=v4, cvss_score=9.3),
        _finding(id="CVE-2000-0003", severity="LOW", fixed_versions=(), fix_state="affected"),
        _finding(id="CVE-2000-0004", severity="UNKNOWN", suppression=None),
        # The same vulnerability in the same package at another path: Harbor keys items by id, package, version.
        _finding(severity="LOW", package=Package(type="apk", name="musl", version="1.1.18-r3", purl="p", path="x")),
    ]
    analysis = Analysis(image=ImageMeta(reference="x"), distro=None, packages=[])
    artifact = {"repository": "library/alpine", "digest": "sha256:" + "3" * 64}
    report = reports.vulnerability_report(Report(analysis=analysis, findings=findings), artifact, timezone.now())
    assert_valid("HarborVulnerabilityReport", report)
    items = {item["id"]: item for item in report["vulnerabilities"]}
    assert len(report["vulnerabilities"]) == 5
    assert report["severity"] == "Critical"
    assert [items[i]["severity"] for i in sorted(items)] == ["High", "Medium", "Low", "Unknown", "Critical"]

    critical = items["CVE-2019-14697"]
    assert critical["preferred_cvss"] == {"score_v3": 9.8, "vector_v3": v3}
    # Harbor's report converter reads vendor_attributes.CVSS.<source>.V3Score as a float.
    assert critical["vendor_attributes"]["CVSS"] == {"vigil": {"V3Score": 9.8, "V3Vector": v3}}
    assert critical["vendor_attributes"]["kev"] is True
    assert critical["vendor_attributes"]["epss"] == {"score": 0.9, "percentile": 0.99}
    assert critical["vendor_attributes"]["aliases"] == ["ALPINE-1"]
    assert critical["cwe_ids"] == ["CWE-787"]
    assert critical["links"] == ["https://nvd.nist.gov/vuln/detail/CVE-2019-14697", "https://example.com/a"]
    assert critical["layer"] == {"digest": "sha256:" + "1" * 64, "diff_id": "sha256:" + "2" * 64}
    assert (critical["fix_version"], critical["description"]) == ("1.1.18-r4", "overflow")
    assert items["CVE-2000-0001"]["preferred_cvss"] == {"score_v2": 7.5, "vector_v2": v2}
    assert items["CVE-2000-0001"]["description"] == "only a title"
    assert "preferred_cvss" not in items["CVE-2000-0002"]  # CVSS v4 has no place there
    assert items["CVE-2000-0002"]["vendor_attributes"]["CVSS"] == {"vigil": {"V40Score": 9.3, "V40Vector": v4}}
    assert "fix_version" not in items["CVE-2000-0003"]
    assert items["CVE-2000-0003"]["vendor_attributes"]["fix_state"] == "affected"


def test_an_empty_report_is_valid_and_unknown():
    analysis = Analysis(image=ImageMeta(reference="x"), distro=None, packages=[])
    report = reports.vulnerability_report(Report(analysis=analysis), {"digest": "sha256:" + "3" * 64}, timezone.now())
    assert_valid("HarborVulnerabilityReport", report)
    assert (report["severity"], report["vulnerabilities"]) == ("Unknown", [])


def test_the_registry_authorization_is_parsed_sealed_and_unsealed():
    assert parse_authorization("") is None
    credentials = parse_authorization(basic("robot$library+scan", "s3cret:with:colons"))
    assert (credentials.username, credentials.password) == ("robot$library+scan", "s3cret:with:colons")
    assert parse_authorization("Bearer: eyJhbGciOi.eyJzdWIi.c2ln").registry_token == "eyJhbGciOi.eyJzdWIi.c2ln"
    assert "s3cret" not in repr(credentials)
    sealed = seal(basic("robot", "s3cret"))
    assert "s3cret" not in sealed
    assert base64.b64encode(b"robot:s3cret").decode() not in sealed
    assert unseal(sealed).password == "s3cret"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        unseal("gAAAAA-not-a-fernet-token")


# -- the flow, against a real registry that only the request's authorization opens ------------------------------------


def assert_not_stored(*secrets: str) -> None:
    """No table of the database holds any of `secrets` in any column, as text."""
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT CAST(t AS text) FROM "{table}" AS t')  # noqa: S608 - names from introspection
            for (row,) in cursor.fetchall():
                for secret in secrets:
                    assert secret not in row, f"{table} holds a secret: {row[:200]}"


def _broker_text() -> bytes:
    """Every message waiting in the `scans` queue as Redis holds it, and its body decoded from base64."""
    stored = redis.Redis.from_url(celery_app.conf.broker_url).lrange("scans", 0, -1)
    bodies = [base64.b64decode(json.loads(entry)["body"]) for entry in stored]
    return b"\n".join([*stored, *bodies])


def _take_task_message(job_id: int) -> tuple[bytes, dict[str, Any], list[Any], dict[str, Any]]:
    """The analyze_image message for `job_id` on the broker: (what the broker held, headers, args, kwargs)."""
    raw = _broker_text()
    with Connection(celery_app.conf.broker_url) as conn:
        queue = conn.SimpleQueue("scans")
        try:
            for _ in range(50):
                message = queue.get(timeout=5)
                args, kwargs, _embed = message.decode()
                if message.headers.get("task") == "scans.analyze_image" and args and args[0] == job_id:
                    message.ack()
                    return raw, message.headers, args, kwargs
                message.requeue()
        finally:
            queue.close()
    raise AssertionError(f"no analyze_image message for job {job_id} on the broker")


def run_harbor_flow(harbor: Client, registry_url: str, authorization: str, digest: str) -> ScanJob:
    """Harbor's side: ask for a scan, take the task message off the real broker, run it in-process, poll."""
    request = {
        "registry": {"url": registry_url, "authorization": authorization},
        "artifact": {"repository": "corpus/alpine37", "digest": digest, "tag": "3.7", "mime_type": DOCKER_MANIFEST},
        "enabled_capabilities": [{"type": "vulnerability"}],
    }
    response = post_scan(harbor, request)  # on commit, the task is published to the broker (Redis)
    assert response.status_code == 202, response.content
    scan_id = response.json()["id"]
    assert get_report(harbor, scan_id).status_code == 302

    raw, headers, args, kwargs = _take_task_message(int(scan_id))
    # The message carries the authorization sealed: the broker never holds it in the clear.
    assert crypto.decrypt(kwargs["registry_authorization"]) == authorization
    credential = authorization.partition(" ")[2]
    plain = [credential, base64.b64decode(credential) if authorization.startswith("Basic") else credential]
    assert not [secret for secret in plain if (secret if isinstance(secret, bytes) else secret.encode()) in raw]
    assert "sealed" in headers["kwargsrepr"]
    analyze_image.apply(args=args, kwargs=kwargs)  # the worker's side, in-process

    job = ScanJob.objects.get(pk=int(scan_id))
    assert job.state == ScanState.DONE, job.reason
    return job


@pytest.fixture
def broker_queue() -> None:
    """An empty `scans` queue on the suite's broker: left-over messages are not this test's."""
    with Connection(celery_app.conf.broker_url) as conn:
        conn.SimpleQueue("scans").clear()


@needs_registry
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_harbor_flow_pulls_with_the_requests_basic_authorization_and_stores_none_of_it(
    harbor, alpine_feed, broker_queue, tmp_path, work_dir
):
    robot, secret = "robot$library+scan-0001", "one-shot-robot-secret-8d1f"
    authorization = basic(robot, secret)
    with start_registry(tmp_path / "registry", htpasswd=(robot, secret)) as running:
        digest = skopeo_push(
            f"docker-archive:{corpus_file('alpine37.docker.tar')}", f"{running.host}/corpus/alpine37:3.7",
            creds=(robot, secret),
        )  # fmt: skip
        # Vigil knows the registry but holds no credentials for it: only the request's authorization can pull.
        row = Registry.objects.create(name="harbor", url=running.url)
        assert (row.username, row.password_encrypted) == ("", "")

        job = run_harbor_flow(harbor, running.url, authorization, digest)
        assert f'auth.user.name="{robot}"' in running.log()  # the registry saw the robot's pulls

    report = get_report(harbor, str(job.id), GENERIC_REPORT)
    assert report.status_code == 200, report.content
    document = body(report)
    assert_valid("HarborVulnerabilityReport", document)
    assert document["artifact"]["digest"] == digest
    assert document["vulnerabilities"], "alpine 3.7's packages have fixes in the v3.7 secdb"
    assert all(v["layer"]["digest"].startswith("sha256:") for v in document["vulnerabilities"])
    sbom = get_report(harbor, str(job.id), SBOM_REPORT, sbom_media_type=reports.CYCLONEDX)
    assert_valid("HarborSbomReport", body(sbom))

    encoded = authorization.removeprefix("Basic ")
    assert_not_stored(secret, encoded, f"{robot}:{secret}")
    assert not work_dir.exists() or not any(work_dir.iterdir())


@needs_registry
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_harbor_flow_pulls_with_the_requests_bearer_token_as_is(harbor, alpine_feed, broker_queue, tmp_path, work_dir):
    with (
        start_token_server(tmp_path, users={"admin": "admin-password"}) as tokens,
        start_registry(tmp_path / "registry", token_auth=tokens.config) as running,
    ):
        digest = skopeo_push(
            f"docker-archive:{corpus_file('alpine37.docker.tar')}", f"{running.host}/corpus/alpine37:3.7",
            creds=("admin", "admin-password"),
        )  # fmt: skip
        Registry.objects.create(name="harbor", url=running.url)
        # What Harbor sends in Bearer mode: a pull token its token service minted for the scan.
        token = tokens.issue("robot$library+scan-0002", ["repository:corpus/alpine37:pull"])
        tokens.requests.clear()

        job = run_harbor_flow(harbor, running.url, f"Bearer {token}", digest)
        assert tokens.requests == []  # used as it was given: never exchanged at the token server

    assert get_report(harbor, str(job.id)).status_code == 200
    assert_not_stored(token)


@needs_registry
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_an_authorization_the_registry_refuses_fails_the_scan_without_repeating_it(
    harbor, broker_queue, tmp_path, work_dir
):
    with start_registry(tmp_path / "registry", htpasswd=("robot", "the-right-secret")) as running:
        digest = skopeo_push(
            f"docker-archive:{corpus_file('alpine37.docker.tar')}", f"{running.host}/corpus/alpine37:3.7",
            creds=("robot", "the-right-secret"),
        )  # fmt: skip
        Registry.objects.create(name="harbor", url=running.url)
        request = {
            "registry": {"url": running.url, "authorization": basic("robot", "a-wrong-secret-4711")},
            "artifact": {"repository": "corpus/alpine37", "digest": digest},
        }
        scan_id = post_scan(harbor, request).json()["id"]
        _raw, _headers, args, kwargs = _take_task_message(int(scan_id))
        analyze_image.apply(args=args, kwargs=kwargs)

    message = assert_error(get_report(harbor, scan_id), 500, containing="authentication failed")
    assert "a-wrong-secret-4711" not in message
    assert_not_stored("a-wrong-secret-4711", base64.b64encode(b"robot:a-wrong-secret-4711").decode())
