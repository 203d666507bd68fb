import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html

from accounts.models import ApiToken, AuditEvent, WebhookPolicy
from accounts.services import create_token, revoke_token


class ApiTokenCreationForm(forms.ModelForm):
    expires_in_days = forms.IntegerField(required=False, min_value=1, help_text="Empty: never expires.")

    class Meta:
        model = ApiToken
        fields = ["user", "role", "name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are minted here (the key is shown once) and revoked; never edited or deleted."""

    list_display = ["prefix", "name", "user", "role", "state", "created_at", "last_used_at", "expires_at"]
    list_filter = ["role", "revoked_at"]
    search_fields = ["prefix", "name", "user__username"]
    list_select_related = ["user"]
    actions = ["revoke"]
    readonly_fields = ["user", "name", "role", "prefix", "state", "created_at", "last_used_at", "expires_at",
                       "revoked_at"]  # fmt: skip

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiTokenCreationForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        return ["user", "role", "name", "expires_in_days"] if obj is None else self.readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False  # revoke instead: the row stays, for the audit log

    def save_form(self, request: HttpRequest, form: ModelForm, change: bool) -> ApiToken:
        data = form.cleaned_data
        token, key = create_token(
            data["user"].pk, data["role"], name=data["name"], expires_in_days=data["expires_in_days"],
            actor=request.user,
        )  # fmt: skip
        request.vigil_new_token_key = key  # type: ignore[attr-defined]
        return token

    def save_model(self, request: HttpRequest, obj: ApiToken, form: ModelForm, change: bool) -> None:
        """save_form made the token."""

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool) -> None:
        """A token has no related objects."""

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None) -> HttpResponse:
        # The key is rendered into this one response and kept nowhere: not in a message, session or cookie.
        context = {
            **self.admin_site.each_context(request),
            "title": "API token created",
            "opts": self.opts,
            "token": obj,
            "key": request.vigil_new_token_key,  # type: ignore[attr-defined]
        }
        return TemplateResponse(request, "admin/accounts/apitoken/created.html", context)

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            revoke_token(token.pk, actor=request.user)
            revoked += 1
        self.message_user(request, f"{revoked} token(s) revoked.", messages.SUCCESS)


def _json(value: Any) -> str:
    if value is None:
        return "-"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the log is written by the code, never edited."""

    list_display = ["time", "actor_name", "token_prefix", "action", "object_type", "object_repr", "ip"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_name", "object_repr", "object_id", "token_prefix"]
    date_hierarchy = "time"
    fields = ["time", "actor_name", "token_prefix", "ip", "action", "object_type", "object_id", "object_repr",
              "before_json", "after_json"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="before")
    def before_json(self, event: AuditEvent) -> str:
        return _json(event.before)

    @admin.display(description="after")
    def after_json(self, event: AuditEvent) -> str:
        return _json(event.after)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False


@admin.register(WebhookPolicy)
class WebhookPolicyAdmin(admin.ModelAdmin):
    list_display = ["registry", "require_signature"]
    list_select_related = ["registry"]
