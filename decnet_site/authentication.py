"""API token authentication that learns the caller's role in the same query.

DRF's ``TokenAuthentication`` loads the token and its user; the role check then costs Django two more queries (the
user's and the groups' permissions) on every request. The polling loop pays that on every poll, so here the one
token query also answers "may this user read?" and "may this user operate?" (EXISTS subqueries over the user's own
and group permissions), and :class:`~decnet_site.permissions.RolePermission` uses the answer.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef, Q
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

#: ``(app_label, codename)`` of the two role permissions.
VIEW = ("deckies", "view_decky")
OPERATE = ("deckies", "operate_decky")


def _has(permission: tuple[str, str]) -> Exists:
    app_label, codename = permission
    granted = Permission.objects.filter(content_type__app_label=app_label, codename=codename).filter(
        Q(user=OuterRef("user_id")) | Q(group__user=OuterRef("user_id"))
    )
    return Exists(granted)


class TokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token <key>``; the user comes back with ``decnet_roles`` = (can view, can operate)."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        token = (
            Token.objects.select_related("user")
            .annotate(can_view=_has(VIEW), can_operate=_has(OPERATE))
            .filter(key=key)
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        user = token.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        user.decnet_roles = (user.is_superuser or token.can_view, user.is_superuser or token.can_operate)
        return user, token
