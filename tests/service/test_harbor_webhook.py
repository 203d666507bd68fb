"""Harbor's PUSH_ARTIFACT webhook, in its Default and CloudEvents formats, from Harbor's own example payloads.

The examples (tests/fixtures/harbor) are pulls, as Harbor's source shows
them; a push is the same payload with another `type`. No worker runs here:
inside a test transaction on_commit callbacks are only captured.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scans.choices import ScanState
from scans.models import Image, Registry, Repository, ScanJob, Tag

URL = "/webhooks/harbor/"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "harbor"
SECRET = "harbor-webhook-secret-0123456789"
DIGEST = "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c"
OTHER = "sha256:" + "ab" * 32


def fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


def default_push(digest: str = DIGEST, tag: str = "1.36", repository: str = "library/busybox") -> dict[str, Any]:
    doc = fixture("harbor-webhook-default.json")
    doc["type"] = "PUSH_ARTIFACT"
    doc["event_data"]["resources"][0].update(digest=digest, tag=tag)
    doc["event_data"]["repository"]["repo_full_name"] = repository
    return doc


def cloudevents_push(digest: str = DIGEST, tag: str = "1.36") -> dict[str, Any]:
    doc = fixture("harbor-webhook-cloudevents.json")
    doc["type"] = "harbor.artifact.pushed"
    doc["data"]["resources"][0].update(digest=digest, tag=tag)
    return doc


def post(client: Client, body: Any, *, auth: str | None = SECRET, content_type: str = "application/json", **headers):
    if auth is not None:
        headers["HTTP_AUTHORIZATION"] = auth
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL, data, content_type=content_type, **headers)


@pytest.fixture
def registry(make_registry: Any) -> Registry:
    return make_registry("harbor", "https://harbor.example.com", secret=SECRET, repositories=["library/*"])


def assert_nothing_recorded() -> None:
    counts = {model.__name__: model.objects.count() for model in (Repository, Image, Tag, ScanJob)}
    assert counts == {"Repository": 0, "Image": 0, "Tag": 0, "ScanJob": 0}


def assert_one_queued_scan(registry: Registry, tag: str | None = "1.36") -> ScanJob:
    job = ScanJob.objects.select_related("image", "repository__registry").get()
    assert (job.repository.registry, job.repository.name, job.state) == (registry, "library/busybox", ScanState.QUEUED)
    assert job.image.digest == DIGEST
    # The configured registry and the repository: resource_url (harbor.dev/...) is never what is fetched.
    assert job.reference == f"library/busybox@{DIGEST}"
    assert [t.name for t in Tag.objects.filter(image=job.image)] == ([tag] if tag else [])
    return job


# -- pushes are recorded and queued, in each format ------------------------------------------------


def test_a_default_format_push_queues_a_scan(client, registry, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(client, default_push())
    assert response.status_code == 202, response.content
    assert response.json() == {"queued": 1, "already_known": 0, "ignored": 0}
    assert_one_queued_scan(registry)
    assert len(callbacks) == 1  # the enqueue waits for the commit


def test_a_cloudevents_push_queues_a_scan(client, registry, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(client, cloudevents_push(), content_type="application/cloudevents+json")
    assert response.status_code == 202, response.content
    assert response.json() == {"queued": 1, "already_known": 0, "ignored": 0}
    assert_one_queued_scan(registry)
    assert len(callbacks) == 1


def test_a_binary_mode_cloudevent_with_ce_headers_queues_a_scan(client, registry):
    event = cloudevents_push()
    response = post(
        client,
        event["data"],
        HTTP_CE_SPECVERSION="1.0",
        HTTP_CE_TYPE="harbor.artifact.pushed",
        HTTP_CE_ID=event["id"],
        HTTP_CE_SOURCE=event["source"],
    )
    assert response.status_code == 202, response.content
    assert response.json()["queued"] == 1
    assert_one_queued_scan(registry)


@pytest.mark.parametrize("name", ["harbor-webhook-default.json", "harbor-webhook-cloudevents.json"])
def test_harbors_own_example_events_are_pulls_and_are_ignored(client, registry, name):
    response = post(client, fixture(name))
    assert response.status_code == 202
    assert response.json() == {"queued": 0, "already_known": 0, "ignored": 1}
    assert_nothing_recorded()


def test_a_push_by_digest_records_no_tag(client, registry):
    # Harbor repeats the digest in `tag` when an artifact is pushed by digest (as in its own examples).
    assert post(client, default_push(tag=DIGEST)).status_code == 202
    assert_one_queued_scan(registry, tag=None)


# -- authentication: the policy's Auth Header, with or without Bearer ---------------------------------


@pytest.mark.parametrize("auth", [SECRET, f"Bearer {SECRET}", f"bearer {SECRET}", f"  {SECRET}  "])
def test_the_auth_header_is_the_secret_with_or_without_bearer(client, registry, auth):
    assert post(client, default_push(), auth=auth).status_code == 202
    assert ScanJob.objects.count() == 1


@pytest.mark.parametrize(
    "auth",
    [None, "", "Bearer", "Bearer ", f"Basic {SECRET}", f"{SECRET}x", SECRET[:-1], f"Bearer {SECRET} extra"],
)
def test_a_wrong_or_missing_auth_header_is_refused_and_nothing_is_recorded(client, registry, auth):
    assert post(client, default_push(), auth=auth).status_code == 403
    assert_nothing_recorded()


def test_the_registry_is_the_one_whose_secret_matches(client, make_registry):
    make_registry("other", "https://other.example.com", secret="the-other-secret-0123456789", repositories=["*"])
    harbor = make_registry("harbor", "https://harbor.example.com", secret=SECRET, repositories=["library/*"])
    assert post(client, default_push()).status_code == 202
    assert ScanJob.objects.get().repository.registry == harbor


def test_the_registrys_webhook_policy_applies_as_for_distribution(client, registry):
    from accounts.models import WebhookPolicy
    from accounts.webhooks import sign

    WebhookPolicy.objects.create(registry=registry, require_signature=True)
    body = json.dumps(default_push())
    assert post(client, body).status_code == 403  # Harbor does not sign: such a policy refuses it
    assert_nothing_recorded()
    signed = post(client, body, HTTP_X_VIGIL_SIGNATURE=sign(SECRET, body.encode()))
    assert signed.status_code == 202, signed.content


# -- the same dedupe as Distribution webhooks -------------------------------------------------------


def test_the_same_digest_pushed_again_is_known_not_queued_twice(client, registry):
    assert post(client, default_push(tag="1.36")).json()["queued"] == 1
    again = post(client, cloudevents_push(tag="latest"), content_type="application/cloudevents+json")
    assert again.json() == {"queued": 0, "already_known": 1, "ignored": 0}
    assert ScanJob.objects.count() == 1
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["1.36", "latest"]


def test_an_analysed_digest_is_not_queued_again(client, registry):
    from scans.services.scanning import current_analyzers

    post(client, default_push())
    ScanJob.objects.update(state=ScanState.DONE)
    Image.objects.update(analyzers=current_analyzers(), analyzed_at="2026-11-27T10:00:00Z")
    assert post(client, default_push(tag="again")).json() == {"queued": 0, "already_known": 1, "ignored": 0}
    assert ScanJob.objects.count() == 1


def test_a_repository_the_registry_does_not_watch_is_ignored(client, registry):
    response = post(client, default_push(repository="team/app"))
    assert response.json() == {"queued": 0, "already_known": 0, "ignored": 1}
    assert_nothing_recorded()


def test_several_resources_in_one_event(client, registry):
    doc = default_push()
    doc["event_data"]["resources"].append({**doc["event_data"]["resources"][0], "digest": OTHER, "tag": "2"})
    doc["event_data"]["resources"].append({"digest": "sha256:not-hex", "tag": "3"})
    assert post(client, doc).json() == {"queued": 2, "already_known": 0, "ignored": 1}
    assert set(ScanJob.objects.values_list("image__digest", flat=True)) == {DIGEST, OTHER}


# -- malformed and hostile bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{",
        "[]",
        "{}",
        '"PUSH_ARTIFACT"',
        {"type": "PUSH_ARTIFACT"},
        {"type": "PUSH_ARTIFACT", "event_data": []},
        {"type": "PUSH_ARTIFACT", "event_data": {"resources": {}, "repository": {}}},
        {"specversion": "1.0", "type": "harbor.artifact.pushed", "data": "x"},
        {"specversion": "1.0", "type": ["harbor.artifact.pushed"], "data": {}},
        "[" * 100_000,
    ],
)
def test_a_malformed_body_is_a_400_and_nothing_is_recorded(client, registry, body):
    assert post(client, body).status_code == 400
    assert_nothing_recorded()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repo_full_name", "Library/BusyBox"),
        ("repo_full_name", "../etc"),
        ("repo_full_name", ["library/busybox"]),
        ("digest", "sha512:" + "0" * 128),
        ("digest", {"x": 1}),
        ("tag", "no spaces allowed"),
        ("tag", 7),
    ],
)
def test_invalid_names_are_skipped_not_recorded(client, registry, field, value):
    doc = default_push()
    target = doc["event_data"]["repository"] if field == "repo_full_name" else doc["event_data"]["resources"][0]
    target[field] = value
    response = post(client, doc)
    assert response.status_code == 202
    assert response.json() == {"queued": 0, "already_known": 0, "ignored": 1}
    assert_nothing_recorded()


def test_a_body_over_the_limit_is_refused(client, registry, settings):
    settings.VIGIL_MAX_WEBHOOK_BYTES = 100
    assert post(client, default_push()).status_code == 413
    assert_nothing_recorded()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mutation=st.dictionaries(
        st.sampled_from(["type", "event_data", "resources", "repository", "digest", "tag", "specversion", "data"]),
        _JSON,
        max_size=3,
    )
)
def test_any_mangled_payload_gets_a_4xx_or_202_never_a_500(client, registry, mutation):
    doc = copy.deepcopy(default_push())
    resource, data = doc["event_data"]["resources"][0], doc["event_data"]
    for key, value in mutation.items():
        target = resource if key in ("digest", "tag") else data if key in ("resources", "repository") else doc
        target[key] = value
    response = post(client, doc)
    assert response.status_code in (202, 400), response.content
