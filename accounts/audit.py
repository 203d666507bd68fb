"""The audit log of configuration and triage changes.

`record()` writes one AuditEvent. The actor, the API token and the client's
address come from the request being served (AuditContextMiddleware keeps it
for the duration of the request), so services need not pass a request
around. `track(Model)` records every create, change and delete of a
configuration model, whether it comes from the API, the admin or code, as
NetBox's change logging does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.signals import post_delete, post_save, pre_save
from django.http import HttpRequest

from accounts.models import ApiToken, AuditEvent

_request: ContextVar[HttpRequest | None] = ContextVar("vigil_audit_request", default=None)


@contextmanager
def request_context(request: HttpRequest) -> Iterator[None]:
    """Attribute the changes made while serving `request` to its user, token and address."""
    reset = _request.set(request)
    try:
        yield
    finally:
        _request.reset(reset)


def snapshot(obj: models.Model) -> dict[str, Any]:
    """The object's stored fields as JSON values. Encrypted secrets appear only as a fingerprint
    of their ciphertext, which tells that a secret was set or rotated and nothing about it."""
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        value = field.value_from_object(obj)
        if field.name.endswith("_encrypted"):
            value = f"set:{hashlib.sha256(value.encode()).hexdigest()[:12]}" if value else ""
        data[field.attname] = value
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _actor(actor: Any, request: HttpRequest | None) -> Any:
    """A user, from a User, a user id, or (None) the request's authenticated user."""
    if isinstance(actor, int):
        return get_user_model().objects.filter(pk=actor).first()
    if actor is None and request is not None:
        actor = getattr(request, "user", None)
    if actor is not None and not actor.is_authenticated:
        return None
    return actor


def record(actor: Any, action: str, obj: models.Model, before: Any = None, after: Any = None) -> AuditEvent:
    """Log `action` (e.g. "registry.changed", "triage.decision.created") on `obj`.

    `actor` is a User, a user id, or None for the user of the request being
    served (or the system when there is none: commands, tasks). `before` and
    `after` are JSON-able (dates are encoded); None where the object did not
    exist. The event is written in the caller's transaction: a change that is
    rolled back leaves no event behind.
    """
    request = _request.get()
    user = _actor(actor, request)
    token = getattr(request, "auth", None)
    ip = request.META.get("REMOTE_ADDR") if request is not None else None
    return AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user is not None else "",
        token_prefix=token.prefix if isinstance(token, ApiToken) else "",
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
        ip=ip or None,
    )


# -- configuration models, recorded on every save and delete ----------------------------------------


def _action(instance: models.Model, verb: str) -> str:
    return f"{instance._meta.model_name}.{verb}"


def _remember_before(sender: type[models.Model], instance: models.Model, raw: bool = False, **_: Any) -> None:
    old = None
    if not raw and not instance._state.adding:
        old = sender._default_manager.filter(pk=instance.pk).first()
    instance._audit_before = snapshot(old) if old is not None else None  # type: ignore[attr-defined]


def _saved(sender: type[models.Model], instance: models.Model, created: bool, raw: bool = False, **_: Any) -> None:
    if raw:  # fixtures being loaded
        return
    before = instance.__dict__.pop("_audit_before", None)
    after = snapshot(instance)
    if created or before is None:
        record(None, _action(instance, "created"), instance, None, after)
    elif before != after:
        record(None, _action(instance, "changed"), instance, before, after)


def _deleted(sender: type[models.Model], instance: models.Model, **_: Any) -> None:
    record(None, _action(instance, "deleted"), instance, snapshot(instance), None)


def track(model: type[models.Model]) -> None:
    """Record every create, change and delete of `model` (called once, from AppConfig.ready)."""
    uid = f"accounts.audit:{model._meta.label_lower}"
    pre_save.connect(_remember_before, sender=model, dispatch_uid=uid)
    post_save.connect(_saved, sender=model, dispatch_uid=uid)
    post_delete.connect(_deleted, sender=model, dispatch_uid=uid)
