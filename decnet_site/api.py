"""What every app's API shares: the pagination, the error body and its OpenAPI description."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """``limit``/``offset`` pages (default 50); ``limit`` is capped so no query asks the database for a huge LIMIT."""

    max_limit = 1000


class ErrorSerializer(serializers.Serializer):
    """The body of every error: ``detail``, a machine-readable ``code``, and per-field messages when relevant."""

    detail = serializers.CharField()
    code = serializers.CharField()
    # Declared fields are popped from the class body, so this does not shadow Serializer.fields at run time.
    fields = serializers.DictField(  # type: ignore[assignment]
        required=False, help_text="Per-field messages (validation errors)."
    )


ERROR_DESCRIPTIONS = {
    400: "Invalid input (body, query or config); `fields` names the offending fields.",
    401: "Not authenticated.",
    403: "Not authenticated (session) or the role does not allow this action.",
    404: "Not found.",
    409: "Conflicts with the current state.",
    412: "The `If-Match` version is not the current one.",
    422: "Names something that cannot be used here (unknown or fleet-singleton service, wrong scope).",
    429: "Too many requests; retry after the `Retry-After` seconds.",
    502: "A compose command failed.",
    503: "A dependency (Docker engine, task broker) is unavailable, or an image is missing.",
}


def errors(*codes: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for error ``codes`` (401 and 403 always), each with the common error body;
    ``e409="…"`` overrides one description."""
    wanted = sorted({401, 403, *codes})
    return {
        code: OpenApiResponse(ErrorSerializer, description=descriptions.get(f"e{code}", ERROR_DESCRIPTIONS[code]))
        for code in wanted
    }


def actor_of(request: object) -> str:
    """Who is asking: the user name of the request's user (recorded on lifecycle rows and events)."""
    user = getattr(request, "user", None)
    return str(user.get_username()) if user is not None and user.is_authenticated else "anonymous"
