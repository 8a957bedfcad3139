"""Views of the topology API. They parse input, call services, operations or selectors, and shape the answer.

Domain errors are never caught here: :func:`decnet_site.exceptions.exception_handler` maps them to HTTP.

Optimistic concurrency: every write of a topology or one of its children takes the version it is based on as
``expected_version`` in the body or as an ``If-Match`` header (``"3"`` or ``W/"3"``; ``*`` means "any"). A
stale version is answered 409 ``version_conflict`` with ``current`` and ``expected``. Every write bumps the
version, with or without one, and answers with the new version as ``topology_version`` and as the ``ETag``;
reads carry the ``ETag`` too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from decnet_site.api import Pagination, errors
from decnet_site.api import actor_of as actor
from decnet_site.exceptions import InvalidInputError
from lifecycle.api.views import accepted
from topology import operations, selectors, services
from topology.api import serializers as s
from topology.filtersets import TopologyFilterSet
from topology.validation import ERROR

_IF_MATCH = re.compile(r'^\s*(?:W/)?"(\d{1,18})"\s*$')
#: Path segment of a topology or edge id (malformed ones are answered 404 by the selectors).
UUID_RE = r"[0-9a-fA-F-]{32,36}"

IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description='The topology version the write is based on, as an ETag: `"3"` or `W/"3"` (`*`: any).',
)
CONFLICT = OpenApiResponse(
    s.VersionConflictSerializer,
    description="Stale version (`version_conflict`, with `current` and `expected`), the topology is not pending "
    "(`not_editable`), or a name is taken.",
)


class MalformedIfMatchError(InvalidInputError):
    """The ``If-Match`` header is not a single topology version (400)."""

    code = "invalid_if_match"


def expected_version(request: Request, body: Mapping[str, Any] | None = None) -> int | None:
    """The version a write is based on: ``If-Match`` or the body's ``expected_version`` (None: not checked).

    Raises :class:`MalformedIfMatchError` for a header that is not ``"<n>"``/``W/"<n>"``/``*``, and
    InvalidInputError when the header and the body name different versions.
    """
    from_body = (body or {}).get("expected_version")
    header = request.headers.get("If-Match")
    from_header: int | None = None
    if header is not None and header.strip() != "*":
        match = _IF_MATCH.match(header)
        if match is None:
            raise MalformedIfMatchError(
                f'If-Match must be one topology version as an ETag, e.g. "3" or W/"3"; got {header[:80]!r}'
            )
        from_header = int(match.group(1))
    if from_header is not None and from_body is not None and from_header != from_body:
        raise InvalidInputError(
            f"If-Match ({from_header}) and expected_version ({from_body}) disagree; send one of them"
        )
    return from_header if from_header is not None else from_body


def with_etag(response: Response, version: int) -> Response:
    """Set ``ETag: "<version>"`` (the topology's concurrency version) on ``response``."""
    response["ETag"] = f'"{version}"'
    return response


def topology_location(topology_id: uuid.UUID | str) -> str:
    return reverse("topology-api:topology-detail", kwargs={"pk": str(topology_id)})


def validated(serializer_class: type[Any], request: Request, *, partial: bool = False) -> dict[str, Any]:
    data = serializer_class(data=request.data, partial=partial)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


# --- topologies -------------------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List topologies", responses={200: s.TopologySerializer(many=True), **errors(400)}),
)
class TopologyViewSet(viewsets.GenericViewSet):
    """Topologies: CRUD, validation, deploy and teardown (202, poll ``status``), and the status history."""

    serializer_class = s.TopologySerializer
    filterset_class = TopologyFilterSet
    pagination_class = Pagination
    lookup_value_regex = UUID_RE

    def get_queryset(self) -> Any:
        return selectors.topology_list()

    def list(self, request: Request) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(s.TopologySerializer(page, many=True).data)

    def _summary(self, topology_id: uuid.UUID | str, code: int = status.HTTP_200_OK, **headers: str) -> Response:
        topology = selectors.topology_get(topology_id=topology_id)
        response = Response(s.TopologySerializer(topology).data, status=code, headers=headers or None)
        return with_etag(response, topology.version)

    @extend_schema(
        summary="Create a pending topology (add LANs, deckies and edges, then deploy it)",
        request=s.TopologyWriteSerializer,
        responses={201: s.TopologySerializer, **errors(400, 409)},
    )
    def create(self, request: Request) -> Response:
        values = validated(s.TopologyWriteSerializer, request)
        values.pop("expected_version", None)
        topology = services.topology_create(**values)
        return self._summary(topology.pk, status.HTTP_201_CREATED, Location=topology_location(topology.pk))

    @extend_schema(
        summary="One topology with its LANs, deckies and edges",
        responses={200: s.TopologyDetailSerializer, **errors(404)},
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        topology = selectors.topology_detail_get(topology_id=pk)
        data = s.TopologyDetailSerializer(topology, context=self.get_serializer_context()).data
        return with_etag(Response(data), topology.version)

    @extend_schema(
        summary="Rename or re-describe a pending topology",
        request=s.TopologyWriteSerializer,
        parameters=[IF_MATCH],
        responses={200: s.TopologySerializer, 409: CONFLICT, **errors(400, 404)},
    )
    def update(self, request: Request, pk: str, partial: bool = False) -> Response:
        values = validated(s.TopologyWriteSerializer, request, partial=partial)
        version = expected_version(request, values)
        values.pop("expected_version", None)
        services.topology_update(
            topology_id=selectors.topology_get(topology_id=pk).pk, expected_version=version, **values
        )
        return self._summary(pk)

    @extend_schema(
        summary="Rename or re-describe a pending topology (some fields)",
        request=s.TopologyWriteSerializer,
        parameters=[IF_MATCH],
        responses={200: s.TopologySerializer, 409: CONFLICT, **errors(400, 404)},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        return self.update(request, pk, partial=True)

    @extend_schema(
        summary="Delete a topology (pending, failed or torn down only) with its LANs, deckies and edges",
        parameters=[IF_MATCH],
        request=None,
        responses={204: None, 409: CONFLICT, **errors(400, 404)},
    )
    def destroy(self, request: Request, pk: str) -> Response:
        topology = selectors.topology_get(topology_id=pk)
        version = expected_version(request, validated(s.VersionOnlySerializer, request))
        services.topology_delete(topology_id=topology.pk, expected_version=version)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Validate the topology as it stands (the same rules deploy applies)",
        responses={200: s.ValidationReportSerializer, **errors(404)},
    )
    @action(detail=True, methods=["get"])
    def validate(self, request: Request, pk: str) -> Response:
        topology = selectors.topology_get(topology_id=pk)
        issues = selectors.topology_validate(topology_id=topology.pk)
        error_count = sum(1 for issue in issues if issue.severity == ERROR)
        body = {
            "topology_id": topology.pk,
            "valid": error_count == 0,
            "error_count": error_count,
            "warning_count": len(issues) - error_count,
            "issues": [issue.as_dict() for issue in issues],
        }
        return with_etag(Response(s.ValidationReportSerializer(body).data), topology.version)

    def _accepted(self, topology_id: uuid.UUID, rows: Sequence[Any]) -> Response:
        topology = selectors.topology_get(topology_id=topology_id)
        return with_etag(accepted(rows, dict(s.TopologySerializer(topology).data)), topology.version)

    @extend_schema(
        summary="Deploy a pending topology (validated first; poll the lifecycle rows at the `Location`)",
        description="Validation runs before anything is queued: errors answer 400 `validation_failed` with every "
        "issue, and the status does not move. Otherwise the topology moves to `deploying` and one lifecycle row per "
        "decky is queued (their ids in `lifecycle_ids`, polled at `Location`); it ends `active`, `degraded` or "
        "`failed` (with the reason in the status history).",
        request=s.VersionOnlySerializer,
        parameters=[IF_MATCH],
        responses={
            202: OpenApiResponse(
                s.TopologyAcceptedSerializer, description="Accepted: poll the lifecycle rows at `Location`."
            ),
            400: OpenApiResponse(s.ValidationFailedSerializer, description="Validation found errors."),
            409: OpenApiResponse(
                s.VersionConflictSerializer,
                description="Not pending (`illegal_transition`, with `legal_next`), or a stale version.",
            ),
            **errors(404, 503),
        },
    )
    @action(detail=True, methods=["post"])
    def deploy(self, request: Request, pk: str) -> Response:
        topology = selectors.topology_get(topology_id=pk)
        version = expected_version(request, validated(s.VersionOnlySerializer, request))
        _, rows = operations.topology_deploy_request(topology=topology, actor=actor(request), expected_version=version)
        return self._accepted(topology.pk, rows)

    @extend_schema(
        summary="Tear a topology down (from active, degraded, failed or deploying; poll the lifecycle rows)",
        request=None,
        responses={
            202: OpenApiResponse(
                s.TopologyAcceptedSerializer, description="Accepted: poll the lifecycle rows at `Location`."
            ),
            409: OpenApiResponse(description="Not in a status teardown starts from (`legal_next` lists them)."),
            **errors(404, 503),
        },
    )
    @action(detail=True, methods=["post"])
    def teardown(self, request: Request, pk: str) -> Response:
        topology = selectors.topology_get(topology_id=pk)
        _, rows = operations.topology_teardown_request(topology=topology, actor=actor(request))
        return self._accepted(topology.pk, rows)

    @extend_schema(
        summary="The topology's status moves, newest first",
        responses={200: s.TopologyStatusEventSerializer(many=True), **errors(404)},
    )
    @action(detail=True, methods=["get"], url_path="status-events", filterset_class=None)
    def status_events(self, request: Request, pk: str) -> Response:
        page = self.paginate_queryset(selectors.status_event_list(topology_id=pk))
        return self.get_paginated_response(s.TopologyStatusEventSerializer(page, many=True).data)


__all__ = ["CONFLICT", "IF_MATCH", "UUID_RE", "TopologyViewSet", "expected_version", "validated", "with_etag"]
