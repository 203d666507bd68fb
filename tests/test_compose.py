"""docker-compose.yml: valid for Compose, complete, and pointing at things that exist in Vigil.

Two independent validations, neither needing a container engine: Debian's
`docker-compose config` (it parses, interpolates and checks the file the way
`up` would), and the Compose Specification's JSON schema, as that same
Debian package installs it. Both skip, naming the package, without it
(.ci/run installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from django.conf import settings
from django.urls import resolve

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
SECRETS = {
    "SECRET_KEY": "test-secret-key",
    "VIGIL_CREDENTIALS_KEY": "dGVzdC1jcmVkZW50aWFscy1rZXktMzItYnl0ZXMhISE=",
    "POSTGRES_PASSWORD": "test-postgres-password",
    "VIGIL_WEBHOOK_SECRET": "test-webhook-secret",
}
SERVICES = {"web", "worker", "beat", "postgres", "redis", "registry", "migrate"}

needs_docker_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="needs docker-compose (Debian package docker-compose)"
)


def compose_config(env: dict[str, str], empty_env_file: Path) -> subprocess.CompletedProcess[str]:
    # A clean environment: the developer's own variables (or .env) must not make the file look complete.
    return subprocess.run(
        ["docker-compose", "--project-directory", str(REPO), "-f", str(COMPOSE_FILE),
         "--env-file", str(empty_env_file), "config"],
        env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def resolved(empty_env_file: Path) -> dict[str, Any]:
    """The file as Compose resolves it (anchors merged, variables interpolated)."""
    if shutil.which("docker-compose") is None:
        pytest.skip("needs docker-compose (Debian package docker-compose)")
    result = compose_config(SECRETS, empty_env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@needs_docker_compose
def test_docker_compose_accepts_the_file(resolved):
    assert set(resolved["services"]) == SERVICES


def test_the_file_is_valid_against_the_compose_specification_schema():
    if not COMPOSE_SCHEMA.exists():
        pytest.skip(f"needs {COMPOSE_SCHEMA} (Debian package docker-compose)")
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    # Its $schema names draft 2019-09 by an address jsonschema does not know (http, trailing #).
    assert "2019-09" in schema["$schema"]
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    # The schema allows anything under x-*; services must still be real services.
    bad = {"services": {"web": {"image": 1}}}
    assert list(validator.iter_errors(bad))


@needs_docker_compose
@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_no_secret_has_a_default(missing, empty_env_file):
    result = compose_config({k: v for k, v in SECRETS.items() if k != missing}, empty_env_file)
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr


@needs_docker_compose
def test_every_long_running_service_but_beat_has_a_health_check(resolved):
    services = resolved["services"]
    for name in SERVICES - {"beat", "migrate"}:
        assert services[name]["healthcheck"]["test"], name
    # Vigil starts after its database, broker and migrations; the registry after web, which it notifies.
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
    assert services["registry"]["depends_on"] == {"web": {"condition": "service_healthy"}}


@needs_docker_compose
def test_vigils_services_are_configured_from_the_environment(resolved):
    for name in ("web", "worker", "beat", "migrate"):
        environment = resolved["services"][name]["environment"]
        assert environment["DATABASE_URL"] == "postgres://vigil:test-postgres-password@postgres:5432/vigil"
        assert environment["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert environment["SECRET_KEY"] == SECRETS["SECRET_KEY"]
        assert environment["VIGIL_CREDENTIALS_KEY"] == SECRETS["VIGIL_CREDENTIALS_KEY"]
        # The registry notifies http://web:8000: Django must accept that host.
        assert "web" in environment["ALLOWED_HOSTS"].split(",")


@needs_docker_compose
def test_the_commands_name_real_apps_queues_and_commands(resolved):
    services = resolved["services"]
    worker = services["worker"]["command"]
    queues = next(arg for arg in worker if arg.startswith("--queues=")).removeprefix("--queues=").split(",")
    assert sorted(queues) == ["default", "scans"]
    assert set(settings.CELERY_TASK_ROUTES["scans.analyze_image"].values()) <= set(queues)
    assert "--app=scanner_service" in worker
    assert "--scheduler=django_celery_beat.schedulers:DatabaseScheduler" in services["beat"]["command"]
    assert settings.CELERY_BEAT_SCHEDULER == "django_celery_beat.schedulers:DatabaseScheduler"
    assert "scanner_service.wsgi:application" in services["web"]["command"]
    migrate = " ".join(services["migrate"]["command"])
    assert "manage.py migrate" in migrate
    assert "configure_registry local http://registry:5000" in migrate
    assert (REPO / "scans/management/commands/configure_registry.py").exists()


def test_the_registry_notifies_the_webhook_of_web():
    config = yaml.safe_load((REPO / "deploy/registry/config.yml.template").read_text())
    (endpoint,) = config["notifications"]["endpoints"]
    assert endpoint["url"] == "http://web:8000/webhooks/distribution/"
    assert resolve("/webhooks/distribution/").url_name == "webhook-distribution"
    assert endpoint["headers"]["Authorization"] == ["Bearer @VIGIL_WEBHOOK_SECRET@"]
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    registry = compose["services"]["registry"]
    assert "./deploy/registry/config.yml.template:/etc/vigil/registry.yml.template:ro" in registry["volumes"]
    assert "s/@VIGIL_WEBHOOK_SECRET@/$$VIGIL_WEBHOOK_SECRET/" in registry["command"][0]


def test_the_example_environment_names_every_required_secret():
    names = {line.split("=", 1)[0] for line in (REPO / "deploy/env.example").read_text().splitlines() if "=" in line}
    assert set(SECRETS) <= names
    assert all(not line.split("=", 1)[1] for line in (REPO / "deploy/env.example").read_text().splitlines()
               if line.split("=", 1)[0] in SECRETS)  # fmt: skip


@pytest.mark.django_db
def test_configure_registry_creates_then_updates_with_secrets_from_the_environment(monkeypatch):
    from django.core.management import CommandError, call_command

    from scans.models import Registry

    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    call_command("configure_registry", "local", "http://registry:5000/", "--watch", "*", "--webhook-secret-env",
                 "HOOK_SECRET")  # fmt: skip
    registry = Registry.objects.get(name="local")
    assert (registry.url, registry.repositories, registry.webhook_secret) == ("http://registry:5000", ["*"], "s3cret")
    assert "s3cret" not in registry.webhook_secret_encrypted
    call_command("configure_registry", "local", "http://registry:5001")
    registry.refresh_from_db()
    assert (registry.url, registry.repositories, registry.webhook_secret) == ("http://registry:5001", ["*"], "s3cret")
    with pytest.raises(CommandError, match="UNSET_VARIABLE is not set"):
        call_command("configure_registry", "x", "http://r:1", "--password-env", "UNSET_VARIABLE")
    with pytest.raises(CommandError, match="http"):
        call_command("configure_registry", "x", "ftp://r:1")
