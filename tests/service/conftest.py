"""Fixtures for the service tests: registries as rows, a private work dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings

from scans.models import Registry


@pytest.fixture
def make_registry(db: None) -> Callable[..., Registry]:
    """Save a Registry; `secret` and `password` go through the encrypting properties."""

    def make(
        name: str = "hub",
        url: str = "http://127.0.0.1:5000",
        *,
        secret: str = "",
        username: str = "",
        password: str = "",
        repositories: list[str] | None = None,
    ) -> Registry:
        registry = Registry(
            name=name, url=url, username=username, repositories=["*"] if repositories is None else repositories
        )
        registry.webhook_secret = secret
        registry.password = password
        registry.save()
        return registry

    return make


@pytest.fixture
def work_dir(tmp_path: Path, settings: Settings) -> Path:
    """VIGIL_WORK_DIR for this test only, nested so that writes beside it would show."""
    work = tmp_path / "vigil" / "work"
    settings.VIGIL_WORK_DIR = work
    return work
