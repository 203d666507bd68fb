"""The Distribution webhook: authentication, what is recorded, what is queued, what is refused.

No worker runs here. Inside a test transaction on_commit callbacks are only
captured, so nothing is published to the broker.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scans.choices import ImageKind, ScanState
from scans.engine.manifests import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from scans.models import Image, Registry, Repository, ScanJob, Tag, TagEvent
from scans.services.scanning import current_analyzers, run_scan
from tests.support.flaky_proxy import FlakyProxy

URL = "/webhooks/distribution/"
V1 = "application/vnd.docker.distribution.events.v1+json"
V2 = "application/vnd.docker.distribution.events.v2+json"
SECRET = "webhook-secret-0123456789abcdef"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def event(
    repository: str = "team/app",
    digest: str | None = None,
    *,
    tag: str = "1.0",
    action: str = "push",
    media_type: str = OCI_MANIFEST,
    host: str = "127.0.0.1:5000",
) -> dict[str, Any]:
    """One event shaped as Distribution sends it."""
    digest = digest or digest_of(repository + tag)
    target = {
        "mediaType": media_type,
        "size": 525,
        "digest": digest,
        "length": 525,
        "repository": repository,
        "url": f"http://{host}/v2/{repository}/manifests/{digest}",
    }
    if tag:
        target["tag"] = tag
    return {
        "id": "3f1c8b4e-0000-4000-8000-000000000000",
        "timestamp": "2026-11-27T10:00:00.000000000Z",
        "action": action,
        "target": target,
        "request": {"id": "r-1", "addr": "10.0.0.7:41234", "host": host, "method": "PUT", "useragent": "skopeo"},
        "actor": {},
        "source": {"addr": "registry:5000", "instanceID": "i-1"},
    }


def post(client: Client, body: Any, *, secret: str | None = SECRET, content_type: str = V1) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret is not None else {}
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL, data, content_type=content_type, **headers)


@pytest.fixture
def registry(make_registry: Any) -> Registry:
    return make_registry(secret=SECRET, repositories=["team/*"])


def assert_nothing_recorded() -> None:
    counts = {model.__name__: model.objects.count() for model in (Repository, Image, Tag, ScanJob)}
    assert counts == {"Repository": 0, "Image": 0, "Tag": 0, "ScanJob": 0}


# -- a push is recorded and queued -------------------------------------------------


@pytest.mark.parametrize("content_type", [V1, V2, "application/json"])
def test_a_manifest_push_records_the_image_and_queues_one_scan(
    client, registry, django_capture_on_commit_callbacks, content_type
):
    digest = digest_of("app 1.0")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(client, {"events": [event(digest=digest)]}, content_type=content_type)

    assert response.status_code == 202
    assert response.json() == {"queued": 1, "already_known": 0, "ignored": 0}
    repository = Repository.objects.get()
    assert (repository.registry, repository.name) == (registry, "team/app")
    image = Image.objects.get(digest=digest)
    assert (image.kind, image.media_type) == (ImageKind.MANIFEST, OCI_MANIFEST)
    tag = Tag.objects.get()
    assert (tag.repository, tag.name, tag.image) == (repository, "1.0", image)
    assert [e.image for e in tag.history.all()] == [image]
    job = ScanJob.objects.get()
    assert (job.image, job.repository, job.state) == (image, repository, ScanState.QUEUED)
    assert job.reference == f"team/app@{digest}"
    # The enqueue waits for the commit, so a worker never looks for a row that is not there yet.
    assert len(callbacks) == 1


def test_the_secret_is_stored_encrypted_and_compared_decrypted(client, registry):
    stored = Registry.objects.values_list("webhook_secret_encrypted", flat=True).get()
    assert SECRET not in stored
    assert Registry.objects.get().webhook_secret == SECRET
    assert post(client, {"events": [event()]}).status_code == 202


# -- forged webhooks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer not-the-secret-0123456789",
        f"Basic {SECRET}",
        f"Bearer {SECRET}x",
        f"Bearer {SECRET[:-1]}",
        "Bearer registry-password-0123456789",  # the registry's pull password is not its webhook secret
    ],
)
def test_a_forged_webhook_is_refused_and_nothing_is_recorded(client, make_registry, authorization):
    make_registry(secret=SECRET, password="registry-password-0123456789", repositories=["team/*"])
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = client.post(URL, json.dumps({"events": [event()]}), content_type=V1, **headers)
    assert response.status_code == 403
    assert_nothing_recorded()


def test_the_secret_of_a_deleted_or_rotated_registry_is_refused(client, make_registry):
    old = make_registry("old", secret="secret-of-a-deleted-registry", repositories=["*"])
    old.delete()
    rotated = make_registry("rotated", secret="the-first-secret-0123456789", repositories=["*"])
    rotated.webhook_secret = "the-second-secret-0123456789"
    rotated.save()
    for secret in ("secret-of-a-deleted-registry", "the-first-secret-0123456789"):
        assert post(client, {"events": [event()]}, secret=secret).status_code == 403
    assert_nothing_recorded()
    assert post(client, {"events": [event()]}, secret="the-second-secret-0123456789").status_code == 202


def test_another_registrys_secret_only_speaks_for_that_registry(client, registry, make_registry):
    """The secret names the registry: B's secret cannot record pushes into A's watched repositories."""
    other = make_registry("other", url="http://10.9.9.9:5000", secret="secret-of-registry-b-0123", repositories=["b/*"])
    response = post(client, {"events": [event("team/app")]}, secret="secret-of-registry-b-0123")
    assert response.json() == {"queued": 0, "already_known": 0, "ignored": 1}
    assert_nothing_recorded()
    post(client, {"events": [event("b/app")]}, secret="secret-of-registry-b-0123")
    assert Repository.objects.get().registry == other


def test_a_secret_encrypted_under_another_key_does_not_break_other_registries(client, registry, make_registry):
    with override_settings(VIGIL_CREDENTIALS_KEY=Fernet.generate_key().decode()):
        make_registry("stale", secret="secret-under-an-old-key-0123")
    # The stale registry cannot be authenticated; the others still can.
    assert post(client, {"events": [event()]}, secret="secret-under-an-old-key-0123").status_code == 403
    assert post(client, {"events": [event()]}).status_code == 202


# -- malformed bodies ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        b"\xff\xfe\x00garbage",
        "",
        "[]",
        "null",
        '"events"',
        "{}",
        '{"events": {}}',
        '{"events": "push"}',
        '{"events": NaN}',
        '{"events": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
    ids=lambda body: repr(body[:20]),
)
def test_a_body_that_is_not_an_envelope_is_a_400(client, registry, body):
    response = post(client, body)
    assert response.status_code == 400
    assert response.json()["detail"]
    assert_nothing_recorded()


@pytest.mark.parametrize(
    "target",
    [
        {"digest": "sha256:1234"},
        {"digest": "sha512:" + "a" * 128},
        {"digest": "sha256:" + "A" * 64},
        {"digest": "sha256:../../../../etc/passwd"},
        {"digest": ["sha256:" + "a" * 64]},
        {"digest": None},
        {"repository": "../x"},
        {"repository": "team/../../x"},
        {"repository": "/team/app"},
        {"repository": "team/app/"},
        {"repository": "Team/App"},
        {"repository": "team/app?x=1"},
        {"repository": "evil.example.com:443/team/app"},
        {"repository": "team/" + "a" * 300},
        {"repository": {"name": "team/app"}},
        {"tag": "../../latest"},
        {"tag": "a" * 200},
        {"tag": 1},
        {"mediaType": ["application/vnd.oci.image.manifest.v1+json"]},
        {"mediaType": {"a": 1}},
        {"mediaType": None},
    ],
    ids=repr,
)
def test_malformed_events_are_ignored_never_recorded(client, registry, target):
    bad = event()
    bad["target"].update(target)
    response = post(client, {"events": [bad, "not an event", None, {"action": "push", "target": "x"}]})
    assert response.status_code == 202
    assert response.json() == {"queued": 0, "already_known": 0, "ignored": 4}
    assert_nothing_recorded()


def test_an_oversized_body_is_a_413_before_it_is_read(client, registry, settings):
    settings.VIGIL_MAX_WEBHOOK_BYTES = 4096
    events = [event(f"team/app{i}") for i in range(20)]
    body = json.dumps({"events": events})
    assert len(body) > 4096
    assert post(client, body).status_code == 413
    # Authentication is not even looked at: the size is refused first.
    assert post(client, body, secret="wrong").status_code == 413
    assert_nothing_recorded()


@pytest.mark.parametrize("length", ["abc", "-5", "1e9", "12 "])
def test_a_malformed_content_length_is_a_400(client, registry, length):
    body = json.dumps({"events": [event()]})
    response = client.post(URL, body, content_type=V1, HTTP_AUTHORIZATION=f"Bearer {SECRET}", CONTENT_LENGTH=length)
    assert response.status_code == 400
    assert_nothing_recorded()


def test_the_default_size_limit_is_one_mebibyte(client, registry):
    body = json.dumps({"events": [event()], "padding": "x" * (1 << 20)})
    assert post(client, body).status_code == 413


def test_an_unsupported_content_type_is_a_415(client, registry):
    assert post(client, {"events": [event()]}, content_type="text/plain").status_code == 415
    assert_nothing_recorded()


# -- ignored events ----------------------------------------------------------------------


def test_blob_pushes_pulls_deletes_and_unwatched_repositories_are_ignored(
    client, registry, django_capture_on_commit_callbacks
):
    events = [
        event(media_type=LAYER, tag=""),
        event(media_type="application/octet-stream", tag=""),
        event(media_type="application/vnd.oci.image.config.v1+json", tag=""),
        event(action="pull"),
        event(action="delete"),
        event(action="mount"),
        event("other/app"),
        event("teamx/app"),
    ]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(client, {"events": events})
    assert response.status_code == 202
    assert response.json() == {"queued": 0, "already_known": 0, "ignored": len(events)}
    assert callbacks == []
    assert_nothing_recorded()


def test_an_empty_event_list_is_accepted(client, registry):
    response = post(client, {"events": []})
    assert (response.status_code, response.json()) == (202, {"queued": 0, "already_known": 0, "ignored": 0})


def test_a_registry_watching_nothing_ignores_everything(client, make_registry):
    make_registry(secret=SECRET, repositories=[])
    response = post(client, {"events": [event()]})
    assert response.json() == {"queued": 0, "already_known": 0, "ignored": 1}
    assert_nothing_recorded()


# -- digests, tags and their history ---------------------------------------------------


def test_one_digest_pushed_under_two_tags_is_scanned_once(client, registry, django_capture_on_commit_callbacks):
    digest = digest_of("app")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = post(client, {"events": [event(digest=digest, tag="1.0")]})
        second = post(client, {"events": [event(digest=digest, tag="latest")]})
    assert first.json()["queued"] == 1
    assert second.json() == {"queued": 0, "already_known": 1, "ignored": 0}
    assert len(callbacks) == 1
    assert ScanJob.objects.count() == 1
    image = Image.objects.get()
    assert sorted(image.tags.values_list("name", flat=True)) == ["1.0", "latest"]


def test_both_tags_in_one_envelope_queue_one_scan(client, registry):
    digest = digest_of("app")
    response = post(client, {"events": [event(digest=digest, tag="1.0"), event(digest=digest, tag="latest")]})
    assert response.json() == {"queued": 1, "already_known": 1, "ignored": 0}
    assert ScanJob.objects.count() == 1


def test_a_moved_tag_keeps_its_history_and_the_new_digest_is_scanned(client, registry):
    old, new = digest_of("old"), digest_of("new")
    post(client, {"events": [event(digest=old, tag="latest")]})
    post(client, {"events": [event(digest=new, tag="latest")]})
    tag = Tag.objects.get(name="latest")
    assert tag.image.digest == new
    assert [e.image.digest for e in tag.history.all()] == [new, old]  # newest first
    assert sorted(ScanJob.objects.values_list("image__digest", flat=True)) == sorted([old, new])


def test_pushing_the_same_tag_and_digest_again_adds_no_history(client, registry):
    for _ in range(3):
        post(client, {"events": [event(tag="1.0")]})
    assert TagEvent.objects.count() == 1


def test_an_untagged_push_records_the_image_without_a_tag(client, registry):
    response = post(client, {"events": [event(tag="")]})
    assert response.json()["queued"] == 1
    assert Tag.objects.count() == 0
    assert Image.objects.count() == 1


def test_an_analysed_image_is_not_queued_again_unless_its_analysers_changed(client, registry):
    digest = digest_of("analysed")
    Image.objects.create(digest=digest, analyzed_at="2026-11-27T00:00:00Z", analyzers=current_analyzers())
    assert post(client, {"events": [event(digest=digest)]}).json()["already_known"] == 1
    Image.objects.filter(digest=digest).update(analyzers={"dpkg": 0})
    assert post(client, {"events": [event(digest=digest, tag="2.0")]}).json()["queued"] == 1


def test_a_failed_scan_is_queued_again_by_the_next_push(client, registry):
    digest = digest_of("flaky")
    post(client, {"events": [event(digest=digest)]})
    ScanJob.objects.update(state=ScanState.FAILED, reason="registry down")
    assert post(client, {"events": [event(digest=digest)]}).json()["queued"] == 1
    assert sorted(ScanJob.objects.values_list("state", flat=True)) == [ScanState.FAILED, ScanState.QUEUED]


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_an_index_push_records_an_index(client, registry, media_type):
    post(client, {"events": [event(media_type=media_type)]})
    assert Image.objects.get().kind == ImageKind.INDEX


def test_a_docker_v2_manifest_push_records_a_manifest(client, registry):
    post(client, {"events": [event(media_type=DOCKER_MANIFEST)]})
    assert Image.objects.get().kind == ImageKind.MANIFEST


# -- no fetch from a URL the webhook names ---------------------------------------------------


def test_urls_named_in_the_webhook_are_never_contacted(client, make_registry, work_dir):
    """Only the configured Registry.url is fetched from, whatever target.url and request.host say."""
    with (
        FlakyProxy(upstream="127.0.0.1:9", fail_first=10**6, status=404) as configured,
        FlakyProxy(upstream="127.0.0.1:9", fail_first=10**6, status=404) as attacker,
    ):
        make_registry(url=configured.url, secret=SECRET, repositories=["team/*"])
        digest = digest_of("app")
        post(client, {"events": [event(digest=digest, host=attacker.host)]})
        job = ScanJob.objects.get()
        assert job.reference == f"team/app@{digest}"
        assert attacker.host not in job.reference

        run_scan(job.id)

        assert attacker.requests == []
        assert [(method, path) for _, method, path, _ in configured.requests] == [
            ("GET", f"/v2/team/app/manifests/{digest}")
        ]
    job.refresh_from_db()
    assert job.state == ScanState.FAILED
    assert job.reason.startswith(f"manifest team/app@{digest} not found on {configured.host}")


# -- no body makes it fail ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
# Near-misses of a real event: the right keys, with values of any JSON type.
targets = st.fixed_dictionaries(
    {},
    optional={
        "mediaType": st.sampled_from([OCI_MANIFEST, OCI_INDEX, LAYER]) | json_values,
        "digest": st.just(digest_of("x")) | json_values,
        "repository": st.sampled_from(["team/app", "../x", "team/a/b"]) | json_values,
        "tag": st.sampled_from(["1.0", "", "../x"]) | json_values,
        "url": json_values,
    },
)
events = st.fixed_dictionaries(
    {}, optional={"action": st.sampled_from(["push", "pull"]) | json_values, "target": targets | json_values}
)
bodies = (
    json_values
    | st.fixed_dictionaries({"events": st.lists(events | json_values, max_size=5)})
    | st.fixed_dictionaries({"events": json_values})
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_no_json_body_gives_a_server_error(client, registry, body):
    response = post(client, body, content_type=V2)
    assert response.status_code in (202, 400)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200))
def test_no_byte_string_gives_a_server_error(client, registry, body):
    assert post(client, body).status_code in (202, 400)
