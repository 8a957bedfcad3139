"""Role-based API permissions.

Two roles, created as Django groups by a migration: **viewer** (read everything) and **operator** (also every
write and operation). Superusers can do everything. Reads need ``deckies.view_decky``; writes and operations
need ``deckies.operate_decky``, so a custom group gets exactly the rights its permissions say.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

VIEW_PERMISSION = "deckies.view_decky"
OPERATE_PERMISSION = "deckies.operate_decky"


class RolePermission(BasePermission):
    """Authenticated users with the viewer right may read; the operator right is needed for anything else."""

    message = "Your role does not allow this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        # Token requests learned the role with the token itself (decnet_site.authentication); sessions ask Django.
        roles = getattr(user, "decnet_roles", None)
        can_view, can_operate = roles if roles is not None else (None, None)
        if can_operate is None:
            can_operate = user.has_perm(OPERATE_PERMISSION)
        if request.method in SAFE_METHODS:
            return bool(can_operate or (can_view if can_view is not None else user.has_perm(VIEW_PERMISSION)))
        return bool(can_operate)
