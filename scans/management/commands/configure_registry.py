"""Create or update a registry from the command line, for deployments (docker-compose.yml's `migrate`).

Secrets are read from environment variables named on the command line, never
from arguments (which `ps` shows to everyone on the machine).
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scans.models import Registry


class Command(BaseCommand):
    help = "Create or update a registry Vigil pulls from and takes webhooks of."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Registry name (a slug)")
        parser.add_argument("url", help="Base URL, e.g. http://registry:5000")
        parser.add_argument("--watch", action="append", default=[], help='Repository pattern to scan ("team/*")')
        parser.add_argument("--webhook-secret-env", help="Environment variable holding the webhook secret")
        parser.add_argument("--username", default="", help="User Vigil pulls as")
        parser.add_argument("--password-env", help="Environment variable holding that user's password")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["url"].startswith(("http://", "https://")):
            raise CommandError("the URL must start with http:// or https://")
        registry = Registry.objects.filter(name=options["name"]).first() or Registry(name=options["name"])
        # Not full_clean(): URLField's validator refuses single-label hosts such as a compose service's name.
        registry.url = options["url"].rstrip("/")
        registry.username = options["username"]
        if options["watch"]:
            registry.repositories = options["watch"]
        if options["webhook_secret_env"]:
            registry.webhook_secret = _from_env(options["webhook_secret_env"])
        if options["password_env"]:
            registry.password = _from_env(options["password_env"])
        created = registry.pk is None
        registry.save()
        self.stdout.write(f"registry {registry.name} {'created' if created else 'updated'}: {registry.url}")


def _from_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise CommandError(f"environment variable {name} is not set")
    return value
