"""Auth and roles: API tokens, the role of every route, webhook signatures, rate limits, the audit log.

The route walker (`test_every_route_*`) takes every URL pattern the resolver
knows, router routes and format suffixes included, and calls it with every
method it allows, as every kind of caller. Each view must have an entry in
EXPECTED; a new route without one fails `test_every_route_has_an_expectation`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.cache.backends.redis import RedisCache
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from django.utils.regex_helper import normalize
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import audit
from accounts.models import ApiToken, AuditEvent, Role, WebhookPolicy, token_digest
from accounts.services import create_token, revoke_token
from accounts.webhooks import sign
from scans.models import Registry, ScanJob
from tests.conftest import REPO

pytestmark = pytest.mark.django_db

SECRET = "webhook-secret-0123456789abcdef"
ADAPTER_KEY = "harbor-adapter-key-0123456789abcdef"
V1 = "application/vnd.docker.distribution.events.v1+json"
SAFE = {"GET", "HEAD", "OPTIONS"}


def token_client(key: str, keyword: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {key}")
    return client


def new_token(role: Role, username: str = "someone", **kwargs: Any) -> tuple[ApiToken, str]:
    user = User.objects.filter(username=username).first() or User.objects.create_user(username)
    return create_token(user.pk, role, **kwargs)


# -- the route walker -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roles:
    """Vigil's roles decide: the least role for GET/HEAD/OPTIONS, and for the other methods (None: none allowed)."""

    read: Role
    write: Role | None = None

    def least(self, method: str) -> Role | None:
        return self.read if method in SAFE else self.write


@dataclass(frozen=True)
class OwnAuth:
    """The endpoint authenticates its caller itself (`credential`); Vigil's tokens and sessions open nothing."""

    credential: str
    open_methods: frozenset[str] = frozenset()  # methods anyone may call (DRF's OPTIONS metadata: no data)


@dataclass(frozen=True)
class DjangoAdmin:
    """Django's admin site: staff sessions only; everyone else is sent to its login page."""


@dataclass(frozen=True)
class Public:
    """Anyone: the OpenAPI schema, the admin's login and logout pages."""


V, S, T, A = Role.VIEWER, Role.SCANNER, Role.TRIAGER, Role.ADMIN
EXPECTED: dict[str, Roles | OwnAuth | DjangoAdmin | Public] = {
    "rest_framework.routers.APIRootView": Roles(read=V),
    "drf_spectacular.views.SpectacularAPIView": Public(),  # the API's description, no data (as NetBox serves it)
    "scans.api.views.RegistryViewSet": Roles(read=A, write=A),
    "scans.api.views.RepositoryViewSet": Roles(read=V),
    "scans.api.views.RepositoryDiffView": Roles(read=V),
    "scans.api.views.ImageViewSet": Roles(read=V),
    "scans.api.views.ScanJobViewSet": Roles(read=V, write=S),  # POST a scan; POST {id}/retry
    "scans.api.views.SbomUploadView": Roles(read=V, write=S),
    "scans.api.views.QueueView": Roles(read=V),
    "scans.api.triage.FindingViewSet": Roles(read=V, write=T),  # POST {id}/triage
    "scans.api.triage.DecisionViewSet": Roles(read=V, write=T),  # POST {id}/revoke
    "scans.api.triage.ImageVexView": Roles(read=V),
    "scans.api.triage.VexImportView": Roles(read=V, write=T),
    "advisories.api.views.AdvisoryViewSet": Roles(read=V),
    "advisories.api.views.FeedViewSet": Roles(read=V),
    "accounts.api.views.AuditEventViewSet": Roles(read=A),
    "scans.webhooks.views.distribution_webhook": OwnAuth("registry secret", frozenset({"OPTIONS"})),
    "scans.harbor.webhook.harbor_webhook": OwnAuth("registry secret", frozenset({"OPTIONS"})),
    "scans.harbor.views.MetadataView": OwnAuth("adapter key"),
    "scans.harbor.views.ScanView": OwnAuth("adapter key"),
    "scans.harbor.views.ScanReportView": OwnAuth("adapter key"),
    "admin:*": DjangoAdmin(),
    "admin:login": Public(),
    "admin:logout": Public(),
}

# Values for the URL parameters, tried in order until the path resolves back to its own pattern.
SAMPLES = {
    "pk": ["1"],
    "digest": ["sha256:" + "0" * 64],
    "name": ["team/app"],
    "format": ["json", ".json"],
    "scan_request_id": ["1"],
    "object_id": ["1"],
    "app_label": ["scans"],
    "content_type_id": ["1"],
    "url": ["x"],
    "id": ["1"],
}


@dataclass(frozen=True)
class Route:
    regex: str
    pattern: URLPattern
    namespace: str | None

    @property
    def key(self) -> str:
        view = getattr(self.pattern.callback, "cls", None) or self.pattern.callback
        if self.namespace == "admin":
            return f"admin:{self.pattern.name}" if self.pattern.name in ("login", "logout") else "admin:*"
        return f"{view.__module__}.{view.__name__}"

    def methods(self) -> list[str]:
        callback = self.pattern.callback
        view = getattr(callback, "cls", None)
        if view is None:  # a plain Django view: try the two that matter
            return ["GET", "POST"]
        actions = getattr(callback, "actions", None)
        names = set(actions) if actions else {m for m in view.http_method_names if hasattr(view, m)}
        if "get" in names:
            names.add("head")
        return sorted(name.upper() for name in names | {"options"})

    def path(self) -> str:
        (template, params), *_ = normalize(self.regex)
        tried = []
        for values in _combinations(params):
            path = "/" + template % values
            tried.append(path)
            try:
                if resolve(path).func is self.pattern.callback:
                    return path
            except Resolver404:
                continue
        raise AssertionError(f"no sample values in SAMPLES make a path for {self.regex!r} (tried {tried})")


def _combinations(params: list[str]) -> Iterator[dict[str, str]]:
    if not params:
        yield {}
        return
    first, rest = params[0], params[1:]
    if first not in SAMPLES:
        raise AssertionError(f"add a sample value for the URL parameter {first!r} to SAMPLES")
    for value in SAMPLES[first]:
        for others in _combinations(rest):
            yield {first: value, **others}


def _walk(patterns: list[Any], prefix: str = "", namespace: str | None = None) -> Iterator[Route]:
    for entry in patterns:
        regex = prefix + entry.pattern.regex.pattern.removeprefix("^")
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, regex, entry.namespace or namespace)
        else:
            yield Route(regex, entry, namespace)


ROUTES = list(_walk(get_resolver().url_patterns))


def test_every_route_has_an_expectation():
    missing = sorted({f"{route.key}  ({route.regex})" for route in ROUTES if route.key not in EXPECTED})
    assert not missing, "routes without an entry in EXPECTED (who may call them?):\n" + "\n".join(missing)


def test_no_expectation_is_left_without_a_route():
    assert set(EXPECTED) - {route.key for route in ROUTES} == set()


@pytest.fixture
def callers(django_user_model: type[User]) -> dict[str, APIClient]:
    """Every kind of caller. Tokens belong to a plain user: the token's role is what counts."""
    owner = django_user_model.objects.create_user("walker")
    callers = {"anonymous": APIClient()}
    for role in Role:
        callers[role.value] = token_client(create_token(owner.pk, role)[1])
    staff = APIClient()
    staff.force_login(django_user_model.objects.create_user("staff", is_staff=True))
    callers["staff session"] = staff
    return callers


CALLER_ROLES: dict[str, Role | None] = {"anonymous": None, **{r.value: r for r in Role}, "staff session": Role.ADMIN}


def call(client: APIClient, method: str, path: str, **headers: str) -> Any:
    body = {"data": "{}", "content_type": "application/json"} if method in ("POST", "PUT", "PATCH") else {}
    return client.generic(method, path, **body, **headers)


@pytest.fixture
def own_credentials(make_registry: Callable[..., Registry], settings: Any) -> dict[str, dict[str, str]]:
    make_registry(secret=SECRET)
    settings.VIGIL_HARBOR_ADAPTER_API_KEY = ADAPTER_KEY
    return {
        "registry secret": {"HTTP_AUTHORIZATION": f"Bearer {SECRET}"},
        "adapter key": {"HTTP_X_SCANNERADAPTER_API_KEY": ADAPTER_KEY},
    }


def _check_roles(rule: Roles, route: Route, path: str, callers: dict[str, APIClient]) -> Iterator[str]:
    for method in route.methods():
        least = rule.least(method)
        assert least is not None, f"{route.key} answers {method} but EXPECTED gives no role for writes"
        for name, client in callers.items():
            status = call(client, method, path).status_code
            role = CALLER_ROLES[name]
            if role is None:
                expected_ok = status == 401
            elif role.grants(least):
                expected_ok = status not in (401, 403)
            else:
                expected_ok = status == 403
            if not expected_ok:
                yield f"{method} {path} as {name}: {status} (least role: {least.value})"


def _check_own_auth(rule: OwnAuth, route: Route, path: str, callers: dict[str, APIClient], own: Any) -> Iterator[str]:
    for method in route.methods():
        for name, client in callers.items():
            status = call(client, method, path).status_code
            if method not in rule.open_methods and status not in (401, 403):
                yield f"{method} {path} as {name} (without its {rule.credential}): {status}"
        status = call(APIClient(), method, path, **own[rule.credential]).status_code
        if status in (401, 403):
            yield f"{method} {path} with its {rule.credential}: {status}"


def _to_login(response: Any) -> bool:
    return response.status_code == 302 and response.url.startswith("/admin/login/")


def _check_admin(route: Route, path: str, callers: dict[str, APIClient]) -> Iterator[str]:
    for name, client in callers.items():
        if name == "staff session":
            if _to_login(client.get(path)):
                yield f"GET {path} as staff: sent to the login page"
            continue
        for method in route.methods():
            response = call(client, method, path)
            if not _to_login(response):
                yield f"{method} {path} as {name}: {response.status_code}, not sent to the login page"


def _check_public(route: Route, path: str, callers: dict[str, APIClient]) -> Iterator[str]:
    for name, client in callers.items():
        for method in route.methods():
            response = call(client, method, path)
            if response.status_code in (401, 403) or _to_login(response):
                yield f"{method} {path} as {name}: {response.status_code}"


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.regex)
def test_every_route_allows_exactly_its_roles(route, callers, own_credentials):
    rule = EXPECTED.get(route.key)
    if rule is None:
        pytest.fail(f"{route.key} has no entry in EXPECTED")
    path = route.path()
    if isinstance(rule, Roles):
        wrong = list(_check_roles(rule, route, path, callers))
    elif isinstance(rule, OwnAuth):
        wrong = list(_check_own_auth(rule, route, path, callers, own_credentials))
    elif isinstance(rule, DjangoAdmin):
        wrong = list(_check_admin(route, path, callers))
    else:
        wrong = list(_check_public(route, path, callers))
    assert not wrong, "\n".join(wrong)


# -- tokens ---------------------------------------------------------------------------------------------


def test_only_the_hash_of_a_token_is_stored_and_the_key_works_once_shown():
    token, key = new_token(Role.VIEWER)
    assert key.startswith("vgl_")
    assert len(key) >= 40
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert key not in json.dumps(stored, default=str)
    assert stored["digest"] == hashlib.sha256(key.encode()).hexdigest()
    assert stored["prefix"] == key[:12]
    assert token_client(key).get("/api/v1/images/").status_code == 200


@pytest.mark.parametrize("keyword", ["Token", "Bearer", "token", "bearer"])
def test_token_and_bearer_are_both_accepted(keyword):
    _, key = new_token(Role.VIEWER)
    assert token_client(key, keyword).get("/api/v1/images/").status_code == 200


def test_last_use_is_recorded():
    token, key = new_token(Role.VIEWER)
    assert token.last_used_at is None
    token_client(key).get("/api/v1/images/")
    token.refresh_from_db()
    assert timezone.now() - token.last_used_at < timedelta(minutes=1)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda token, key: revoke_token(token.pk),
        lambda token, key: ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now()),
        lambda token, key: User.objects.filter(pk=token.user_id).update(is_active=False),
        lambda token, key: ApiToken.objects.filter(pk=token.pk).update(digest=token_digest(key + "x")),
    ],
    ids=["revoked", "expired", "owner deactivated", "unknown key"],
)
def test_a_revoked_expired_orphaned_or_unknown_token_is_refused(spoil):
    token, key = new_token(Role.ADMIN)
    client = token_client(key)
    assert client.get("/api/v1/registries/").status_code == 200
    spoil(token, key)
    response = client.get("/api/v1/registries/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid, expired or revoked token."}


@pytest.mark.parametrize("header", ["Token vgl_" + "x" * 200, "Bearer vgl_\u00e9t\u00e9", "Token vgl_a b"])
def test_malformed_token_headers_are_refused(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/v1/images/").status_code == 401


def test_a_token_that_expires_in_days_is_good_until_then():
    token, key = new_token(Role.VIEWER, expires_in_days=7)
    assert timedelta(days=6, hours=23) < token.expires_at - timezone.now() <= timedelta(days=7)
    assert token_client(key).get("/api/v1/images/").status_code == 200


def test_the_token_role_counts_not_the_owner():
    """A staff user's viewer token reads and changes nothing; a plain user's admin token administers."""
    User.objects.create_user("boss", is_staff=True, is_superuser=True)
    _, viewer_key = new_token(Role.VIEWER, "boss")
    assert token_client(viewer_key).get("/api/v1/registries/").status_code == 403
    _, admin_key = new_token(Role.ADMIN, "plain")
    assert token_client(admin_key).get("/api/v1/registries/").status_code == 200


def test_drf_user_tokens_and_sessions_take_the_users_role():
    """Kept for compatibility: staff and superusers are admins, other users viewers."""
    plain = User.objects.create_user("plain")
    staff = User.objects.create_user("staff", is_staff=True)
    for user, registries in ((plain, 403), (staff, 200)):
        legacy = token_client(Token.objects.create(user=user).key)
        session = APIClient()
        session.force_login(user)
        for client in (legacy, session):
            assert client.get("/api/v1/images/").status_code == 200
            assert client.get("/api/v1/registries/").status_code == registries
    assert token_client(Token.objects.get(user=plain).key).post("/api/v1/scans", {}, format="json").status_code == 403


def test_create_api_token_prints_the_token_once_and_only_the_token():
    User.objects.create_user("ci")
    out, err = StringIO(), StringIO()
    call_command("create_api_token", "ci", "--role", "scanner", "--expires-in-days", "30", "--name", "CI of team/app",
                 stdout=out, stderr=err)  # fmt: skip
    key = out.getvalue().strip()
    assert key.startswith("vgl_")
    assert "\n" not in key
    token = ApiToken.objects.get()
    assert (token.user.username, token.role, token.name) == ("ci", "scanner", "CI of team/app")
    assert token.expires_at is not None
    assert token.prefix in err.getvalue()
    assert key not in err.getvalue()
    assert token_client(key).post("/api/v1/scans", {}, format="json").status_code == 400  # allowed, and invalid
    event = AuditEvent.objects.get(action="token.created")
    assert event.actor is None
    assert event.after["role"] == "scanner"
    assert key not in json.dumps(event.after)


def test_create_api_token_refuses_unknown_users_and_roles():
    with pytest.raises(CommandError, match="no user"):
        call_command("create_api_token", "nobody", "--role", "viewer", stdout=StringIO(), stderr=StringIO())
    User.objects.create_user("ci")
    with pytest.raises(CommandError):
        call_command("create_api_token", "ci", "--role", "root", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="at least 1"):
        call_command("create_api_token", "ci", "--role", "viewer", "--expires-in-days", "0", stdout=StringIO())
    assert not ApiToken.objects.exists()


def test_revoke_api_token_by_prefix():
    token, key = new_token(Role.TRIAGER)
    out = StringIO()
    call_command("revoke_api_token", token.prefix, stdout=out)
    assert token.prefix in out.getvalue()
    assert token_client(key).get("/api/v1/images/").status_code == 401
    assert AuditEvent.objects.filter(action="token.revoked", object_id=str(token.pk)).count() == 1
    call_command("revoke_api_token", key, stdout=StringIO())  # the whole key names it too; again is a no-op
    assert AuditEvent.objects.filter(action="token.revoked").count() == 1
    with pytest.raises(CommandError, match="no token"):
        call_command("revoke_api_token", "vgl_nothere", stdout=StringIO())


def test_the_admin_shows_a_new_token_once_and_revokes_tokens(client, admin_user):
    client.force_login(admin_user)
    owner = User.objects.create_user("ci")
    response = client.post(
        "/admin/accounts/apitoken/add/", {"user": owner.pk, "role": "scanner", "name": "ci", "expires_in_days": ""}
    )
    assert response.status_code == 200
    key = response.context["key"]
    assert key in response.content.decode()
    token = ApiToken.objects.get()
    assert (token.user, token.role, token.digest) == (owner, "scanner", token_digest(key))
    assert key not in client.get(f"/admin/accounts/apitoken/{token.pk}/change/").content.decode()
    created = AuditEvent.objects.get(action="token.created")
    assert created.actor == admin_user

    response = client.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    assert token_client(key).get("/api/v1/images/").status_code == 401
    assert AuditEvent.objects.get(action="token.revoked").actor == admin_user
    assert client.post(f"/admin/accounts/apitoken/{token.pk}/delete/", {"post": "yes"}).status_code == 403


# -- webhook signatures -----------------------------------------------------------------------------------


def push_body() -> bytes:
    digest = "sha256:" + "ab" * 32
    target = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "repository": "team/app",
              "tag": "1.0", "size": 1, "url": "http://x/v2/team/app/manifests/" + digest}  # fmt: skip
    return json.dumps({"events": [{"action": "push", "target": target}]}).encode()


def deliver(client: Any, body: bytes, *, secret: str = SECRET, signature: str | None = None) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    if signature is not None:
        headers["HTTP_X_VIGIL_SIGNATURE"] = signature
    return client.post("/webhooks/distribution/", body, content_type=V1, **headers)


@pytest.fixture
def registry(make_registry: Callable[..., Registry]) -> Registry:
    return make_registry(secret=SECRET, repositories=["team/*"])


def test_a_good_signature_is_accepted(client, registry):
    body = push_body()
    assert deliver(client, body, signature=sign(SECRET, body)).status_code == 202
    assert ScanJob.objects.count() == 1


def test_the_signature_is_hmac_sha256_of_the_body_with_the_webhook_secret():
    """The value a sender computes with openssl: printf %s BODY | openssl dgst -sha256 -hmac SECRET."""
    body = b'{"events": []}'
    openssl = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", SECRET], input=body, capture_output=True, check=True
    ).stdout.decode()
    assert sign(SECRET, body) == "sha256=" + openssl.split()[-1]


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "sha256=",
        "sha256=" + "0" * 64,
        "sha1=" + "0" * 40,
        "garbage \u00e9",
        sign("another-secret-0123456789abcdef", push_body()),
        sign(SECRET, push_body() + b" "),  # signed a different body
    ],
)
def test_a_wrong_signature_is_refused_and_nothing_is_recorded(client, registry, signature):
    response = deliver(client, push_body(), signature=signature)
    assert response.status_code == 403
    assert "X-Vigil-Signature" in response.json()["detail"]
    assert not ScanJob.objects.exists()


def test_a_registry_can_require_signatures(client, registry):
    WebhookPolicy.objects.create(registry=registry, require_signature=True)
    body = push_body()
    unsigned = deliver(client, body)
    assert unsigned.status_code == 403
    assert unsigned.json()["detail"] == "this registry requires a X-Vigil-Signature header"
    assert not ScanJob.objects.exists()
    assert deliver(client, body, signature=sign(SECRET, body)).status_code == 202


def test_a_signature_does_not_replace_the_secret(client, registry):
    """The bearer secret still names the registry: a signed body with a wrong secret is refused."""
    body = push_body()
    assert deliver(client, body, secret="wrong-secret-0123456789", signature=sign(SECRET, body)).status_code == 403


# -- rate limits ---------------------------------------------------------------------------------------------


def rates(**rates: str) -> Any:
    return override_settings(
        REST_FRAMEWORK={**django_settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates},
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}},
    )


def test_webhooks_are_limited_per_registry(client, registry, make_registry):
    other = make_registry("other", secret="the-other-registry-secret-0123", repositories=["team/*"])
    with rates(webhook="3/min", scan_submission="1000/min"):
        answers = [deliver(client, b'{"events": []}').status_code for _ in range(4)]
        assert answers == [202, 202, 202, 429]
        limited = deliver(client, b'{"events": []}')
        assert 0 < int(limited.headers["Retry-After"]) <= 60
        # Another registry has its own budget.
        assert deliver(client, b'{"events": []}', secret="the-other-registry-secret-0123").status_code == 202
        assert other.pk != registry.pk
        # Forged deliveries are refused before they are counted, so they cannot use up a registry's budget.
        assert deliver(client, b'{"events": []}', secret="forged-secret-0123456789").status_code == 403


@pytest.mark.parametrize("path", ["/api/v1/scans", "/api/v1/sboms"])
def test_scan_submission_is_limited_per_token(path):
    _, key = new_token(Role.SCANNER, "ci")
    _, other_key = new_token(Role.SCANNER, "ci")
    ci, other = token_client(key), token_client(other_key)
    with rates(webhook="1000/min", scan_submission="2/min"):
        answers = [ci.post(path, {}, format="json").status_code for _ in range(3)]
        assert answers == [400, 400, 429]  # two invalid submissions, then the limit
        response = ci.post(path, {}, format="json")
        assert response.status_code == 429
        assert 0 < int(response.headers["Retry-After"]) <= 60
        assert ci.get("/api/v1/scans/").status_code == 200  # polling is not submission
        assert other.post(path, {}, format="json").status_code == 400


def test_rate_limits_count_in_redis_when_it_is_configured():
    """The production set-up: counters in Redis, shared by every web process."""
    location = os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
    _, key = new_token(Role.SCANNER, "ci")
    redis_cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location,
                   "KEY_PREFIX": f"vigil-test-{uuid.uuid4().hex}"}  # fmt: skip
    counter = f"throttle_scan_submission_token-{ApiToken.objects.get().pk}"
    with override_settings(
        REST_FRAMEWORK={**django_settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"scan_submission": "2/min"}},
        CACHES={"default": redis_cache},
    ):
        client = token_client(key)
        assert [client.post("/api/v1/scans", {}, format="json").status_code for _ in range(3)] == [400, 400, 429]
    # The counter is in Redis: a separate client (another web process) sees both submissions.
    elsewhere = RedisCache(location, {"KEY_PREFIX": redis_cache["KEY_PREFIX"]})
    assert len(elsewhere.get(counter)) == 2
    elsewhere.delete(counter)


def test_the_cache_is_redis_when_a_url_is_given_and_local_memory_otherwise():
    script = "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"
    base = {k: v for k, v in os.environ.items() if k not in ("CACHE_URL", "REDIS_URL")}
    base["DJANGO_SETTINGS_MODULE"] = "scanner_service.settings"

    def backend(**env: str) -> str:
        command = [sys.executable, "-c", f"import django; django.setup(); {script}"]
        return subprocess.run(command, env=base | env, cwd=REPO, capture_output=True, text=True, check=True).stdout

    assert backend().strip() == "django.core.cache.backends.locmem.LocMemCache"
    assert backend(REDIS_URL="redis://127.0.0.1:6379/3").strip() == "django.core.cache.backends.redis.RedisCache"
    assert backend(CACHE_URL="redis://127.0.0.1:6379/4").strip() == "django.core.cache.backends.redis.RedisCache"


# -- the audit log -----------------------------------------------------------------------------------------


NEW_REGISTRY = {"name": "hub", "url": "http://127.0.0.1:5000", "password": "pull-password-plaintext",
                "webhook_secret": "webhook-secret-plaintext-0123", "repositories": ["team/*"]}  # fmt: skip


def test_registry_changes_through_the_api_are_audited_without_secrets():
    token, key = new_token(Role.ADMIN, "ops")
    api = token_client(key)
    registry_id = api.post("/api/v1/registries/", NEW_REGISTRY, format="json", REMOTE_ADDR="10.1.2.3").json()["id"]
    api.patch(f"/api/v1/registries/{registry_id}/", {"repositories": ["*"], "password": "rotated-password"},
              format="json")  # fmt: skip
    api.patch(f"/api/v1/registries/{registry_id}/", {}, format="json")  # no change, no event
    api.delete(f"/api/v1/registries/{registry_id}/")

    events = list(AuditEvent.objects.filter(object_type="scans.registry").order_by("id"))
    assert [e.action for e in events] == ["registry.created", "registry.changed", "registry.deleted"]
    created, changed, deleted = events
    assert {(e.actor_name, e.token_prefix, e.object_id) for e in events} == {("ops", token.prefix, str(registry_id))}
    assert created.ip == "10.1.2.3"
    assert created.before is None
    assert created.after["name"] == "hub"
    assert created.after["repositories"] == ["team/*"]
    assert (changed.before["repositories"], changed.after["repositories"]) == (["team/*"], ["*"])
    assert changed.before["password_encrypted"] != changed.after["password_encrypted"]  # rotation shows
    assert changed.before["webhook_secret_encrypted"] == changed.after["webhook_secret_encrypted"]
    assert deleted.after is None
    assert deleted.before["name"] == "hub"
    dump = json.dumps([(e.before, e.after) for e in events])
    for secret in ("pull-password-plaintext", "rotated-password", "webhook-secret-plaintext-0123"):
        assert secret not in dump
    assert Registry.objects.count() == 0


def test_registry_changes_in_the_admin_are_audited(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/admin/scans/registry/add/",
        {"name": "hub", "url": "https://registry.example.com", "username": "", "repositories": '["team/*"]'},
    )
    assert response.status_code == 302, response.content
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.token_prefix, event.ip) == (
        "registry.created",
        admin_user,
        "",
        "127.0.0.1",
    )


def test_record_is_there_for_other_changes(registry):
    """What triage calls: any model object, before and after as JSON, the actor given or taken from the request."""
    user = User.objects.create_user("triager")
    event = audit.record(
        user, "triage.decision.created", registry, None, {"state": "not_affected", "day": timezone.now()}
    )
    assert (event.actor, event.actor_name, event.object_type, event.object_id) == (
        user, "triager", "scans.registry", str(registry.pk))  # fmt: skip
    assert event.after["state"] == "not_affected"
    by_id = audit.record(user.pk, "triage.decision.revoked", registry, {"a": 1}, None)
    assert by_id.actor == user
    system = audit.record(None, "triage.decision.expired", registry, None, None)
    assert (system.actor, system.actor_name, system.ip) == (None, "", None)


def test_the_audit_api_is_for_admins(registry):
    _, admin_key = new_token(Role.ADMIN, "ops")
    _, triager_key = new_token(Role.TRIAGER, "ann")
    new_token(Role.VIEWER, "bob")
    assert token_client(triager_key).get("/api/v1/audit-events/").status_code == 403
    api = token_client(admin_key)
    body = api.get("/api/v1/audit-events/").json()
    assert [row["action"] for row in body["results"]] == ["token.created"] * 3 + ["registry.created"]  # newest first
    only = api.get("/api/v1/audit-events/", {"object_type": "scans.registry"}).json()["results"]
    assert [(row["action"], row["object_repr"], row["actor"]) for row in only] == [("registry.created", "hub", "")]
    assert api.get("/api/v1/audit-events/", {"actor": "nobody"}).json()["count"] == 0
    assert api.get("/api/v1/audit-events/", {"since": "2000-01-01T00:00:00Z"}).json()["count"] == 4
    assert api.get("/api/v1/audit-events/", {"until": "2000-01-01T00:00:00Z"}).json()["count"] == 0
    # Regressions (schemathesis): offsets PostgreSQL refuses, times that overflow in UTC.
    assert api.get("/api/v1/audit-events/", {"until": "0004-01-18T01:26:41-22:22"}).json()["count"] == 0
    assert api.get("/api/v1/audit-events/", {"since": "0001-01-01T00:00:00+10:00"}).status_code == 400
    one = api.get(f"/api/v1/audit-events/{only[0]['id']}/").json()
    assert one["after"]["name"] == "hub"
    assert api.delete(f"/api/v1/audit-events/{only[0]['id']}/").status_code == 405


def test_the_audit_log_is_read_only_in_the_admin(client, admin_user, registry):
    client.force_login(admin_user)
    event = AuditEvent.objects.get()
    page = client.get(f"/admin/accounts/auditevent/{event.pk}/change/")
    assert page.status_code == 200
    assert "registry.created" in page.content.decode()
    assert client.get("/admin/accounts/auditevent/add/").status_code == 403
    assert client.post(f"/admin/accounts/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_webhook_policy_changes_are_audited(registry):
    policy = WebhookPolicy.objects.create(registry=registry, require_signature=True)
    policy.require_signature = False
    policy.save()
    assert list(AuditEvent.objects.filter(object_type="accounts.webhookpolicy").values_list("action", flat=True)) == [
        "webhookpolicy.changed",
        "webhookpolicy.created",
    ]
