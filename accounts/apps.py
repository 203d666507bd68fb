from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Access and audit"

    def ready(self) -> None:
        from accounts import audit, schema  # noqa: F401  (schema registers the OpenAPI security scheme)
        from accounts.models import WebhookPolicy
        from scans.models import Registry

        # Configuration changes are recorded however they are made: API, admin or code.
        audit.track(Registry)
        audit.track(WebhookPolicy)
