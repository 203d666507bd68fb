"""API tokens with roles, the audit log, and per-registry webhook policy."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    """What a caller may do; each role may do everything the roles before it may."""

    VIEWER = "viewer", "viewer: read everything but configuration"
    SCANNER = "scanner", "scanner: viewer, and submit scans (CI, Harbor)"
    TRIAGER = "triager", "triager: scanner, and triage decisions"
    ADMIN = "admin", "admin: everything (registries, webhook policy, audit log)"

    def grants(self, needed: Role) -> bool:
        return ROLE_ORDER.index(self) >= ROLE_ORDER.index(needed)


ROLE_ORDER = [Role.VIEWER, Role.SCANNER, Role.TRIAGER, Role.ADMIN]

TOKEN_PREFIX = "vgl_"  # noqa: S105 (a marker, not a secret: it tells Vigil tokens from others)
PREFIX_LENGTH = len(TOKEN_PREFIX) + 8  # what the admin, the audit log and `revoke_api_token` show


def token_digest(key: str) -> str:
    # The key is 256 random bits: a fast hash is enough, and lets the lookup be one indexed query.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, user__is_active=True).exclude(expires_at__lte=now)


class ApiToken(models.Model):
    """An API credential. Only its SHA-256 is stored; the key itself is shown once, when it is made."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for, e.g. 'CI of team/app'.")
    role = models.CharField(max_length=16, choices=Role.choices)
    prefix = models.CharField(max_length=PREFIX_LENGTH, db_index=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.role}, {self.user})"

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"


class AuditEvent(models.Model):
    """One change to configuration or to a triage decision: who, what, from where, before and after."""

    time = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text so the record outlives the user and the token.
    actor_name = models.CharField(max_length=150, blank=True, help_text="Empty: the system (a command or a task).")
    token_prefix = models.CharField(max_length=PREFIX_LENGTH, blank=True, help_text="The API token used, if any.")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=100, help_text="app_label.model")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object")]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {self.action} {self.object_repr}"


class WebhookPolicy(models.Model):
    """Per-registry webhook rules beyond the secret itself."""

    registry = models.OneToOneField("scans.Registry", on_delete=models.CASCADE, related_name="webhook_policy")
    require_signature = models.BooleanField(
        default=False,
        help_text=(
            "Refuse deliveries without a valid X-Vigil-Signature (HMAC-SHA256 of the body with the webhook secret). "
            "Distribution and Harbor do not sign: only turn this on for senders that do."
        ),
    )

    class Meta:
        verbose_name = "webhook policy"
        verbose_name_plural = "webhook policies"

    def __str__(self) -> str:
        return f"webhooks of {self.registry}"
