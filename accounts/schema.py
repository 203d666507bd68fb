"""The API token scheme in the OpenAPI schema (drf-spectacular)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "A Vigil API token (`manage.py create_api_token`), as `Token vgl_…` or `Bearer vgl_…`. "
                "Its role (viewer, scanner, triager, admin) decides what it may do."
            ),
        }
