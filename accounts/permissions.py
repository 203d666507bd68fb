"""Roles as DRF permission classes.

Each class names the least role for safe methods (GET, HEAD, OPTIONS) and
for the others. A request's role is its API token's role; a user signed in
some other way (session, Basic, DRF's user token) is admin when staff or
superuser, else viewer. A client object that is not a Django user (say,
Harbor's adapter key) may declare its role as a `vigil_role` attribute.

| class          | GET, HEAD, OPTIONS | POST, PUT, PATCH, DELETE |
|----------------|--------------------|--------------------------|
| ReadOrAdmin    | viewer             | admin  (the default)     |
| CanSubmitScans | viewer             | scanner                  |
| CanTriage      | viewer             | triager                  |
| IsAdmin        | admin              | admin                    |
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from accounts.models import ApiToken, Role


def role_of(request: Request) -> Role | None:
    """The caller's role; None when the request is not authenticated."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    if isinstance(request.auth, ApiToken):
        return Role(request.auth.role)
    if getattr(user, "vigil_role", None):  # a client that is not a Django user declares its own (an adapter key)
        return Role(user.vigil_role)
    return Role.ADMIN if user.is_staff or user.is_superuser else Role.VIEWER


class RolePermission(BasePermission):
    read_role = Role.VIEWER
    write_role = Role.ADMIN

    def has_permission(self, request: Request, view: Any) -> bool:
        role = role_of(request)
        if role is None:
            return False
        return role.grants(self.read_role if request.method in SAFE_METHODS else self.write_role)


class ReadOrAdmin(RolePermission):
    """Viewers read; only admins change anything. The default for every API view."""


class CanSubmitScans(RolePermission):
    """Viewers read; scanners (CI, Harbor) and up submit scans and SBOMs."""

    write_role = Role.SCANNER


class CanTriage(RolePermission):
    """Viewers read; triagers and admins make, change and revoke triage decisions."""

    write_role = Role.TRIAGER


class IsAdmin(RolePermission):
    """Admins only, even to read: registries, webhook policy, the audit log."""

    read_role = Role.ADMIN
