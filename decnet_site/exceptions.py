"""Domain errors and the one place that maps them to HTTP.

Services raise :class:`DomainError` subclasses; views never catch them. The DRF exception handler below turns
each into ``{"detail", "code", ...extra}`` with the error's status code, so bad input is a 4xx and never a 500.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """Base class of every error a service raises on purpose.

    Subclasses set ``status_code`` and ``code``; ``extra`` adds machine-readable fields to the response body.
    """

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "invalid"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code, **self.extra}


class InvalidInputError(DomainError):
    """The request is malformed or a value is invalid (400)."""

    status_code = 400
    code = "invalid"


class NotFoundError(DomainError):
    """The named object does not exist (404)."""

    status_code = 404
    code = "not_found"


class ConflictError(DomainError):
    """The request conflicts with the current state (409)."""

    status_code = 409
    code = "conflict"


class UnprocessableError(DomainError):
    """The request is well-formed but names something that cannot be used here (422)."""

    status_code = 422
    code = "unprocessable"


class ServiceUnavailableError(DomainError):
    """A dependency (Docker engine, broker) is unreachable (503)."""

    status_code = 503
    code = "unavailable"


def _validation_body(exc: DjangoValidationError) -> dict[str, Any]:
    if hasattr(exc, "error_dict"):
        return {"detail": "Invalid input.", "code": "invalid", "fields": exc.message_dict}
    return {"detail": "; ".join(exc.messages), "code": "invalid"}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: domain errors and Django validation errors become 4xx responses."""
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        return Response(_validation_body(exc), status=400)
    if isinstance(exc, IntegrityError):
        logger.info("integrity error mapped to 409: %s", exc)
        return Response({"detail": "The change conflicts with existing data.", "code": "conflict"}, status=409)
    if isinstance(exc, (Http404, PermissionDenied)):
        return drf_exception_handler(exc, context)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, drf_exceptions.APIException):
        data = response.data
        if isinstance(data, dict) and "detail" in data:
            data.setdefault("code", getattr(exc.detail, "code", exc.default_code))
        elif isinstance(exc, drf_exceptions.ValidationError):
            response.data = {"detail": "Invalid input.", "code": "invalid", "fields": data}
    return response
