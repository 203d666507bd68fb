"""A scratch PostgreSQL database for a benchmark: created if missing, Django set up on it, migrated."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def setup(env_var: str, default_name: str) -> str:
    """Point Django at $env_var (default postgres://postgres@127.0.0.1:5432/<default_name>) and migrate it."""
    import psycopg

    url = os.environ.get(env_var, f"postgres://postgres@127.0.0.1:5432/{default_name}")
    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scanner_service.settings")
    sys.path.insert(0, str(REPO))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return url
