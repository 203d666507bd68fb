from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Role
from accounts.services import TokenError, create_token


class Command(BaseCommand):
    help = (
        "Make an API token for USER and print it, once: only its hash is stored. "
        "The token alone goes to stdout (TOKEN=$(manage.py create_api_token ci --role scanner)); the rest to stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--name", default="", help="What the token is for, e.g. 'CI of team/app'")
        parser.add_argument("--expires-in-days", type=int, default=None, help="Default: never expires")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: options["username"]}).first()
        if user is None:
            raise CommandError(f"no user {options['username']!r} (create it with createsuperuser or the admin)")
        try:
            token, key = create_token(
                user.pk, options["role"], name=options["name"], expires_in_days=options["expires_in_days"]
            )
        except TokenError as exc:
            raise CommandError(str(exc)) from None
        expiry = f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "never expires"
        self.stderr.write(
            f"{token.role} token {token.prefix}… for {user.get_username()}, {expiry}. "
            "It is shown only now: store it in a secret manager."
        )
        self.stdout.write(key)
