"""The REST API: registries (secrets write-only, encrypted), images, their SBOMs, the schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from spdx_tools.spdx.parser.json import json_parser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from scans.choices import ScanState
from scans.engine.models import Analysis
from scans.engine.targets import scan
from scans.models import Image, Registry, Repository, ScanJob, Tag
from scans.services.inventory import store_analysis
from scans.services.scanning import move_tag
from tests.conftest import corpus_file

REGISTRIES = "/api/v1/registries/"
IMAGES = "/api/v1/images/"
ALPINE = "sha256:" + "a1" * 32
DEBIAN = "sha256:" + "d1" * 32
PENDING = "sha256:" + "0e" * 32


def api_client(*, staff: bool = False, name: str = "user") -> APIClient:
    user = User.objects.create_user(name, password="unused-password", is_staff=staff)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def staff(db: None) -> APIClient:
    return api_client(staff=True, name="admin")


@pytest.fixture
def user(db: None) -> APIClient:
    return api_client()


# -- registries ----------------------------------------------------------------------------

NEW_REGISTRY = {
    "name": "hub",
    "url": "http://127.0.0.1:5000/",
    "username": "puller",
    "password": "pull-password-plaintext",
    "webhook_secret": "webhook-secret-plaintext-0123",
    "repositories": ["team/*"],
}


def test_staff_create_a_registry_and_its_secrets_are_write_only_and_encrypted(staff):
    response = staff.post(REGISTRIES, NEW_REGISTRY, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert not {"password", "webhook_secret", "password_encrypted", "webhook_secret_encrypted"} & set(body)
    assert body["url"] == "http://127.0.0.1:5000"  # the base URL, as the client needs it
    assert body["repositories"] == ["team/*"]

    password_column, secret_column = Registry.objects.values_list(
        "password_encrypted", "webhook_secret_encrypted"
    ).get()
    assert "pull-password-plaintext" not in password_column
    assert "webhook-secret-plaintext-0123" not in secret_column
    registry = Registry.objects.get()
    assert registry.password == "pull-password-plaintext"
    assert registry.webhook_secret == "webhook-secret-plaintext-0123"

    for response in (staff.get(REGISTRIES), staff.get(f"{REGISTRIES}{registry.id}/")):
        assert "plaintext" not in response.content.decode()


def test_updating_a_registry_keeps_secrets_not_given(staff):
    registry_id = staff.post(REGISTRIES, NEW_REGISTRY, format="json").json()["id"]
    response = staff.patch(f"{REGISTRIES}{registry_id}/", {"repositories": ["*"]}, format="json")
    assert response.status_code == 200
    registry = Registry.objects.get()
    assert (registry.repositories, registry.password) == (["*"], "pull-password-plaintext")

    staff.patch(f"{REGISTRIES}{registry_id}/", {"password": "rotated-password"}, format="json")
    registry.refresh_from_db()
    assert registry.password == "rotated-password"
    assert registry.webhook_secret == "webhook-secret-plaintext-0123"

    assert staff.delete(f"{REGISTRIES}{registry_id}/").status_code == 204
    assert not Registry.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://127.0.0.1:5000"}, "url"),
        ({"url": "https://registry.example.com/v2/"}, "url"),
        ({"url": "https://registry.example.com?x=1"}, "url"),
        ({"webhook_secret": "short"}, "webhook_secret"),
        ({"name": "not a slug"}, "name"),
        ({"repositories": "team/*"}, "repositories"),
    ],
)
def test_invalid_registries_are_refused(staff, change, field):
    response = staff.post(REGISTRIES, NEW_REGISTRY | change, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Registry.objects.exists()


def test_registry_names_are_unique(staff):
    staff.post(REGISTRIES, NEW_REGISTRY, format="json")
    assert staff.post(REGISTRIES, NEW_REGISTRY, format="json").status_code == 400


def test_registries_are_for_staff_only(user, make_registry):
    registry = make_registry(secret="webhook-secret-plaintext-0123")
    assert user.get(REGISTRIES).status_code == 403
    assert user.get(f"{REGISTRIES}{registry.id}/").status_code == 403
    assert user.post(REGISTRIES, NEW_REGISTRY, format="json").status_code == 403
    assert user.delete(f"{REGISTRIES}{registry.id}/").status_code == 403
    assert Registry.objects.count() == 1


@pytest.mark.parametrize("path", [REGISTRIES, IMAGES, "/api/v1/repositories/", "/api/v1/scans/"])
def test_anonymous_requests_are_refused(db, path):
    response = APIClient().get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Token")


def test_a_wrong_token_is_refused(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert client.get(IMAGES).status_code == 401


# -- images --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analyses(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Analysis]:
    """Real inventories of two corpus images, analysed once for the module."""
    work = tmp_path_factory.mktemp("analyses")
    return {
        "alpine": scan(str(corpus_file("alpine311.oci.tar")), workdir=work),
        "debian": scan(str(corpus_file("debian12-app.docker.tar")), workdir=work),
    }


def make_image(
    digest: str, analysis: Analysis | None, repository: Repository, tag: str, states: tuple[str, ...] = ()
) -> Image:
    image = Image.objects.create(digest=digest)
    if analysis is not None:
        store_analysis(image, analysis)
    move_tag(repository, tag, image)
    for state in states:  # oldest first
        ScanJob.objects.create(image=image, repository=repository, reference=f"{repository.name}@{digest}", state=state)
    return image


@pytest.fixture
def images(make_registry: Callable[..., Registry], analyses: dict[str, Analysis]) -> dict[str, Image]:
    """alpine (team/app:1.0, scanned), debian (team/web:latest, failed then scanned), pending (other/x:dev)."""
    hub = make_registry("hub")
    mirror = make_registry("mirror", url="https://mirror.example.com")
    app = Repository.objects.create(registry=hub, name="team/app")
    web = Repository.objects.create(registry=hub, name="team/web")
    other = Repository.objects.create(registry=mirror, name="other/x")
    return {
        "alpine": make_image(ALPINE, analyses["alpine"], app, "1.0", (ScanState.DONE,)),
        "debian": make_image(DEBIAN, analyses["debian"], web, "latest", (ScanState.FAILED, ScanState.DONE)),
        "pending": make_image(PENDING, None, other, "dev", (ScanState.QUEUED,)),
    }


def digests(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["digest"] for row in response.json()["results"]}


def test_images_are_listed_with_tags_os_and_scan_state(user, images):
    response = user.get(IMAGES)
    rows = {row["digest"]: row for row in response.json()["results"]}
    assert response.json()["count"] == 3
    alpine = rows[ALPINE]
    assert alpine["tags"][0] | {"updated_at": None} == {
        "registry": "hub",
        "repository": "team/app",
        "name": "1.0",
        "updated_at": None,
    }
    assert alpine["os"] == {
        "id": "alpine",
        "version": "3.11.13",
        "codename": "",
        "name": "Alpine Linux v3.11",
        "variant": "",
    }
    assert (alpine["scan_state"], alpine["package_count"]) == ("done", 14)
    assert alpine["analyzed_at"] is not None
    # The newest job decides the state shown.
    packages = Image.objects.get(digest=DEBIAN).packages
    assert (rows[DEBIAN]["scan_state"], rows[DEBIAN]["package_count"]) == ("done", packages.count())
    assert packages.filter(type="deb").count() == 88
    assert (rows[PENDING]["scan_state"], rows[PENDING]["os"], rows[PENDING]["package_count"]) == ("queued", None, 0)


def test_an_image_never_scanned_has_no_scan_state(user, images):
    Image.objects.create(digest="sha256:" + "11" * 32)
    rows = {row["digest"]: row for row in user.get(IMAGES).json()["results"]}
    assert rows["sha256:" + "11" * 32]["scan_state"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("repository=team/app", {ALPINE}),
        ("repository=team", set()),
        ("tag=latest", {DEBIAN}),
        ("tag=dev", {PENDING}),
        ("os=alpine", {ALPINE}),
        ("os=debian", {DEBIAN}),
        ("registry=mirror", {PENDING}),
        ("scan_state=done", {ALPINE, DEBIAN}),
        ("scan_state=queued", {PENDING}),
        # debian failed once and was scanned since: its state is its newest job's.
        ("scan_state=failed", set()),
        ("kind=manifest", {ALPINE, DEBIAN, PENDING}),
        ("repository=team/web&tag=latest", {DEBIAN}),
    ],
)
def test_image_filters(user, images, query, expected):
    assert digests(user.get(f"{IMAGES}?{query}")) == expected


def test_an_image_with_two_tags_is_listed_once(user, images):
    move_tag(Repository.objects.get(name="team/app"), "latest", images["alpine"])
    response = user.get(f"{IMAGES}?registry=hub")
    assert sorted(row["digest"] for row in response.json()["results"]) == sorted([ALPINE, DEBIAN])
    alpine = next(row for row in response.json()["results"] if row["digest"] == ALPINE)
    assert sorted(tag["name"] for tag in alpine["tags"]) == ["1.0", "latest"]
    assert alpine["package_count"] == 14  # the join on tags does not multiply the count


def test_image_detail(user, images):
    response = user.get(f"{IMAGES}{DEBIAN}/")
    assert response.status_code == 200
    body = response.json()
    assert body["digest"] == DEBIAN
    assert body["os"]["codename"] == "bookworm"
    assert [tag["name"] for tag in body["tags"]] == ["latest"]


@pytest.mark.parametrize("digest", ["sha256:" + "ff" * 32, "sha256:nothex", "latest", "../registries"])
def test_an_unknown_image_is_a_404(user, images, digest):
    assert user.get(f"{IMAGES}{digest}/").status_code == 404
    assert user.get(f"{IMAGES}{digest}/sbom/").status_code == 404


def test_listing_images_takes_the_same_number_of_queries_for_any_number(user, make_registry, analyses):
    """No N+1: tags, registries and jobs are prefetched."""
    repository = Repository.objects.create(registry=make_registry(), name="team/app")

    def list_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert user.get(IMAGES).status_code == 200
        return len(queries)

    def add(count: int) -> None:
        for _ in range(count):
            n = Image.objects.count()
            make_image(f"sha256:{n:064x}", analyses["alpine"], repository, f"t{n}", (ScanState.DONE,))

    add(2)
    few = list_queries()
    add(10)
    assert list_queries() == few


def test_listing_images_query_budget(user, images, django_assert_max_num_queries):
    # auth token + count + page + prefetched tags + prefetched jobs
    with django_assert_max_num_queries(5):
        assert user.get(IMAGES).status_code == 200


# -- SBOMs -----------------------------------------------------------------------------------


def stored_purls(digest: str) -> set[str]:
    return set(Image.objects.get(digest=digest).packages.values_list("purl", flat=True))


def test_the_default_sbom_is_vigils_json(user, images):
    response = user.get(f"{IMAGES}{ALPINE}/sbom/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    doc = response.json()
    assert doc["schema"] == "vigil.analysis/v1"
    assert {p["purl"] for p in doc["packages"]} == stored_purls(ALPINE)
    assert doc["distro"]["id"] == "alpine"
    assert doc["image"]["repo_tags"] == ["hub/team/app:1.0"]


def test_the_cyclonedx_sbom_is_valid_1_6(user, images):
    response = user.get(f"{IMAGES}{DEBIAN}/sbom/?format=cyclonedx")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/vnd.cyclonedx+json")
    text = response.content.decode()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    purls = {c["purl"] for c in doc["components"] if c["type"] == "library"}
    assert purls == stored_purls(DEBIAN)
    assert len([p for p in purls if p.startswith("pkg:deb/")]) == 88


def test_the_spdx_sbom_is_valid_2_3(user, images, tmp_path: Path):
    response = user.get(f"{IMAGES}{DEBIAN}/sbom/?format=spdx")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/spdx+json")
    path = tmp_path / "sbom.spdx.json"
    path.write_bytes(response.content)
    document = json_parser.parse_from_file(str(path))
    assert validate_full_spdx_document(document, "SPDX-2.3") == []
    assert {ref.locator for p in document.packages for ref in p.external_references} == stored_purls(DEBIAN)


def test_the_sbom_format_may_be_chosen_by_accept_header(user, images):
    response = user.get(f"{IMAGES}{ALPINE}/sbom/", HTTP_ACCEPT="application/spdx+json")
    assert response.headers["Content-Type"].startswith("application/spdx+json")
    assert json.loads(response.content)["spdxVersion"] == "SPDX-2.3"


def test_an_image_not_yet_analysed_has_an_empty_sbom(user, images):
    response = user.get(f"{IMAGES}{PENDING}/sbom/?format=cyclonedx")
    assert response.status_code == 200
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(response.content.decode()) is None


@pytest.mark.parametrize("fmt", ["xml", "api", "table", "CycloneDX"])
def test_an_unknown_sbom_format_is_a_clear_404(user, images, fmt):
    response = user.get(f"{IMAGES}{ALPINE}/sbom/?format={fmt}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"unknown format {fmt!r}; choose json, cyclonedx, spdx"}


def test_an_unacceptable_accept_header_is_a_406(user, images):
    assert user.get(f"{IMAGES}{ALPINE}/sbom/", HTTP_ACCEPT="text/html").status_code == 406


# -- other read-only endpoints ---------------------------------------------------------------


def test_scan_jobs_and_repositories_are_listed(user, images):
    jobs = user.get("/api/v1/scans/?state=failed").json()["results"]
    assert [(job["image"], job["state"]) for job in jobs] == [(DEBIAN, "failed")]
    assert "repository_id" not in jobs[0]
    jobs = user.get(f"/api/v1/scans/?image={DEBIAN}").json()["results"]
    assert [job["state"] for job in jobs] == ["done", "failed"]  # newest first
    repositories = user.get("/api/v1/repositories/").json()["results"]
    assert [(r["registry"], r["name"]) for r in repositories] == [
        ("hub", "team/app"),
        ("hub", "team/web"),
        ("mirror", "other/x"),
    ]


def test_images_are_read_only(staff, images):
    assert staff.delete(f"{IMAGES}{ALPINE}/").status_code == 405
    assert staff.post(IMAGES, {"digest": ALPINE}, format="json").status_code == 405
    assert Tag.objects.count() == 3


# -- the schema --------------------------------------------------------------------------------


def test_the_openapi_schema_is_served(db):
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/images/{digest}/sbom/", "/webhooks/distribution/", "/api/v1/registries/"} <= set(schema["paths"])
    registry = schema["components"]["schemas"]["Registry"]["properties"]
    assert registry["password"]["writeOnly"] is True
    assert registry["webhook_secret"]["writeOnly"] is True


def test_the_schema_validates_without_warnings(db, tmp_path: Path):
    path = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    assert path.read_text().startswith("openapi: 3.")
