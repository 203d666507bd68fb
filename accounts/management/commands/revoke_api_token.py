from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import ApiToken
from accounts.services import revoke_token


class Command(BaseCommand):
    help = "Revoke an API token, named by its prefix (vgl_ and 8 characters, as the admin shows it) or the whole key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        prefix = options["prefix"].rstrip("…")
        matches = list(ApiToken.objects.filter(prefix=prefix[: ApiToken._meta.get_field("prefix").max_length]))
        if not matches:
            raise CommandError(f"no token with prefix {prefix!r}")
        if len(matches) > 1:
            raise CommandError(f"{len(matches)} tokens share the prefix {prefix!r}: revoke them in the admin")
        token = revoke_token(matches[0].pk)
        self.stdout.write(f"revoked {token.prefix}… ({token.role}, {token.user.get_username()})")
