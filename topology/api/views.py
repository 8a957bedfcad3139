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

from deckies.api.serializers import DeckyServicesSerializer, ServiceAddSerializer
from deckies.models import Decky
from decnet_site.api import Pagination, errors
from decnet_site.api import actor_of as actor
from decnet_site.exceptions import InvalidInputError
from lifecycle.api.views import accepted
from topology import operations, selectors, services
from topology.api import serializers as s
from topology.filtersets import TopologyFilterSet
from topology.models import LAN, Edge
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


def _validated(serializer_class: type[Any], request: Request, *, partial: bool = False) -> dict[str, Any]:
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
        values = _validated(s.TopologyWriteSerializer, request)
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
        values = _validated(s.TopologyWriteSerializer, request, partial=partial)
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
        version = expected_version(request, _validated(s.VersionOnlySerializer, request))
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
        version = expected_version(request, _validated(s.VersionOnlySerializer, request))
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


# --- children ---------------------------------------------------------------------------------------------------------


class _ChildViewSet(viewsets.GenericViewSet):
    """Shared by the LAN, decky and edge routes under ``/topologies/{topology_pk}/``."""

    pagination_class = Pagination
    #: The child model, for the schema generator (which has no topology in the path to query).
    model: Any = None

    def _rows(self) -> Any:
        raise NotImplementedError

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()
        return self._rows()

    @property
    def topology_pk(self) -> str:
        return str(self.kwargs["topology_pk"])

    def _list(self, queryset: Any, serializer_class: type[Any]) -> Response:
        topology = selectors.topology_get(topology_id=self.topology_pk)
        page = self.paginate_queryset(queryset)
        context = {**self.get_serializer_context(), "topology_version": topology.version}
        response = self.get_paginated_response(serializer_class(page, many=True, context=context).data)
        return with_etag(response, topology.version)

    def _one(self, obj: Any, serializer_class: type[Any], version: int | None = None, code: int = 200) -> Response:
        context = dict(self.get_serializer_context())
        if version is not None:
            context["topology_version"] = version
        data = serializer_class(obj, context=context).data
        return with_etag(Response(data, status=code), int(data["topology_version"]))

    def _edit(self, request: Request, values: Mapping[str, Any], write: Any) -> tuple[Any, int]:
        """Run ``write(expected_version)`` (a versioned-edit service, returning ``Edited``) for this topology;
        returns (what it wrote, the new version)."""
        selectors.topology_get(topology_id=self.topology_pk)  # 404 for an unknown topology before anything else
        edited = write(expected_version(request, values))
        return edited.value, edited.version

    def _gone(self, version: int) -> Response:
        return with_etag(Response(status=status.HTTP_204_NO_CONTENT), version)


@extend_schema_view(
    list=extend_schema(summary="A topology's LANs", responses={200: s.LANSerializer(many=True), **errors(404)}),
    retrieve=extend_schema(summary="One LAN (by name or id)", responses={200: s.LANSerializer, **errors(404)}),
)
class LANViewSet(_ChildViewSet):
    """LANs of a topology, addressed by name (or id). Writes only while the topology is pending."""

    serializer_class = s.LANSerializer
    lookup_field = "ref"
    lookup_value_regex = r"[A-Za-z0-9-]{1,64}"

    model = LAN

    def _rows(self) -> Any:
        return selectors.lan_list(topology_id=self.topology_pk)

    def get_object(self) -> LAN:
        return selectors.lan_get(topology_id=self.topology_pk, ref=self.kwargs["ref"])

    def list(self, request: Request, topology_pk: str) -> Response:
        return self._list(self.get_queryset(), s.LANSerializer)

    def retrieve(self, request: Request, topology_pk: str, ref: str) -> Response:
        return self._one(self.get_object(), s.LANSerializer)

    @extend_schema(
        summary="Add a LAN (without `subnet`: the next free /24 of 10.0.0.0/16)",
        request=s.LANWriteSerializer,
        parameters=[IF_MATCH],
        responses={201: s.LANSerializer, 409: CONFLICT, **errors(400, 404)},
    )
    def create(self, request: Request, topology_pk: str) -> Response:
        values = _validated(s.LANWriteSerializer, request)
        lan, version = self._edit(
            request,
            values,
            lambda v: services.lan_create(
                topology_id=self.topology_pk,
                name=values["name"],
                subnet=values.get("subnet"),
                is_dmz=values.get("is_dmz", False),
                expected_version=v,
            ),
        )
        return self._one(lan, s.LANSerializer, version, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a LAN's name, subnet or DMZ flag",
        request=s.LANWriteSerializer,
        parameters=[IF_MATCH],
        responses={200: s.LANSerializer, 409: CONFLICT, **errors(400, 404)},
    )
    def update(self, request: Request, topology_pk: str, ref: str, partial: bool = False) -> Response:
        lan = self.get_object()
        values = _validated(s.LANWriteSerializer, request, partial=partial)
        fields = {key: values[key] for key in ("name", "subnet", "is_dmz") if key in values}
        if fields.get("subnet", "") is None:
            raise InvalidInputError("a LAN's subnet cannot be cleared", fields={"subnet": ["May not be null."]})
        lan, version = self._edit(
            request, values, lambda v: services.lan_update(lan_id=lan.pk, expected_version=v, **fields)
        )
        return self._one(lan, s.LANSerializer, version)

    @extend_schema(
        summary="Change some fields of a LAN",
        request=s.LANWriteSerializer,
        parameters=[IF_MATCH],
        responses={200: s.LANSerializer, 409: CONFLICT, **errors(400, 404)},
    )
    def partial_update(self, request: Request, topology_pk: str, ref: str) -> Response:
        return self.update(request, topology_pk, ref, partial=True)

    @extend_schema(
        summary="Remove a LAN and its edges (refused when a decky would be left on no LAN)",
        request=None,
        parameters=[IF_MATCH],
        responses={204: None, 409: CONFLICT, **errors(400, 404)},
    )
    def destroy(self, request: Request, topology_pk: str, ref: str) -> Response:
        lan = self.get_object()
        values = _validated(s.VersionOnlySerializer, request)
        _, version = self._edit(request, values, lambda v: services.lan_delete(lan_id=lan.pk, expected_version=v))
        return self._gone(version)


@extend_schema_view(
    list=extend_schema(
        summary="A topology's deckies", responses={200: s.TopologyDeckySerializer(many=True), **errors(404)}
    ),
    retrieve=extend_schema(
        summary="One decky of a topology", responses={200: s.TopologyDeckySerializer, **errors(404)}
    ),
)
class TopologyDeckyViewSet(_ChildViewSet):
    """Deckies of a topology, addressed by name. Shape writes only while pending; live service changes while
    the topology is pending, active or degraded."""

    serializer_class = s.TopologyDeckySerializer
    lookup_field = "name"
    lookup_value_regex = r"[a-z0-9-]{1,64}"

    model = Decky

    def _rows(self) -> Any:
        return selectors.topology_decky_list(topology_id=self.topology_pk)

    def get_object(self) -> Decky:
        return selectors.topology_decky_get(topology_id=self.topology_pk, name=self.kwargs["name"])

    def _fresh(self, name: str, version: int, code: int = status.HTTP_200_OK) -> Response:
        decky = selectors.topology_decky_get(topology_id=self.topology_pk, name=name)
        return self._one(decky, s.TopologyDeckySerializer, version, code)

    def list(self, request: Request, topology_pk: str) -> Response:
        return self._list(self.get_queryset(), s.TopologyDeckySerializer)

    def retrieve(self, request: Request, topology_pk: str, name: str) -> Response:
        return self._one(self.get_object(), s.TopologyDeckySerializer)

    @extend_schema(
        summary="Add a decky to a pending topology (attach it to LANs with edges)",
        request=s.TopologyDeckyCreateSerializer,
        parameters=[IF_MATCH],
        responses={201: s.TopologyDeckySerializer, 409: CONFLICT, **errors(400, 404, 422)},
    )
    def create(self, request: Request, topology_pk: str) -> Response:
        values = _validated(s.TopologyDeckyCreateSerializer, request)
        fields = {key: value for key, value in values.items() if key != "expected_version"}
        topology = selectors.topology_get(topology_id=self.topology_pk)
        decky, version = self._edit(
            request,
            values,
            lambda v: services.topology_decky_create(topology_id=topology.pk, expected_version=v, **fields),
        )
        return self._fresh(decky.name, version, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a topology decky's desired shape (`services` replaces the list)",
        request=s.TopologyDeckyUpdateSerializer,
        parameters=[IF_MATCH],
        responses={200: s.TopologyDeckySerializer, 409: CONFLICT, **errors(400, 404, 422)},
    )
    def update(self, request: Request, topology_pk: str, name: str) -> Response:
        decky = self.get_object()
        values = _validated(s.TopologyDeckyUpdateSerializer, request)
        fields = {key: value for key, value in values.items() if key != "expected_version"}
        services_given = fields.pop("services", None)
        config_given = fields.pop("service_config", None)
        _, version = self._edit(
            request,
            values,
            lambda v: services.topology_decky_update(
                decky=decky, services=services_given, service_config=config_given, expected_version=v, **fields
            ),
        )
        return self._fresh(decky.name, version)

    @extend_schema(
        summary="Change some fields of a topology decky",
        request=s.TopologyDeckyUpdateSerializer,
        parameters=[IF_MATCH],
        responses={200: s.TopologyDeckySerializer, 409: CONFLICT, **errors(400, 404, 422)},
    )
    def partial_update(self, request: Request, topology_pk: str, name: str) -> Response:
        return self.update(request, topology_pk, name)

    @extend_schema(
        summary="Remove a decky (and its edges) from a pending topology",
        request=None,
        parameters=[IF_MATCH],
        responses={204: None, 409: CONFLICT, **errors(400, 404)},
    )
    def destroy(self, request: Request, topology_pk: str, name: str) -> Response:
        decky = self.get_object()
        values = _validated(s.VersionOnlySerializer, request)
        _, version = self._edit(
            request, values, lambda v: services.topology_decky_delete(decky=decky, expected_version=v)
        )
        return self._gone(version)

    def _services_response(self, decky: Decky, slugs: Sequence[str], version: int, code: int) -> Response:
        body = {"decky_name": decky.name, "topology_id": decky.topology_id, "services": slugs}
        return with_etag(Response(DeckyServicesSerializer(body).data, status=code), version)

    @extend_schema(
        summary="Add one service to a topology decky (live when the topology is active or degraded)",
        request=ServiceAddSerializer,
        parameters=[IF_MATCH],
        responses={
            201: DeckyServicesSerializer,
            **errors(
                400,
                404,
                409,
                422,
                502,
                503,
                e400="Bad config for the service.",
                e409="Already on the decky, another operation is open, or the topology is deploying or torn down.",
                e422="Unknown or fleet-singleton service.",
            ),
        },
    )
    @action(detail=True, methods=["post"], url_path="services")
    def add_service(self, request: Request, topology_pk: str, name: str) -> Response:
        decky = self.get_object()
        values = _validated(ServiceAddSerializer, request)
        edited = services.topology_decky_service_add(
            decky=decky,
            slug=values["name"],
            config=values["config"],
            expected_version=expected_version(request),
            actor=actor(request),
        )
        return self._services_response(decky, edited.value, edited.version, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Remove one service from a topology decky (live when the topology is active or degraded)",
        request=None,
        parameters=[IF_MATCH],
        responses={
            200: DeckyServicesSerializer,
            **errors(
                404,
                409,
                422,
                502,
                503,
                e409="Not on the decky, its last service, another operation is open, or the topology is deploying.",
                e422="No catalogue knows this service.",
            ),
        },
    )
    @action(detail=True, methods=["delete"], url_path=r"services/(?P<svc>[a-z0-9_-]{1,64})")
    def remove_service(self, request: Request, topology_pk: str, name: str, svc: str) -> Response:
        decky = self.get_object()
        edited = services.topology_decky_service_remove(
            decky=decky, slug=svc, expected_version=expected_version(request), actor=actor(request)
        )
        return self._services_response(decky, edited.value, edited.version, status.HTTP_200_OK)


@extend_schema_view(
    list=extend_schema(summary="A topology's edges", responses={200: s.EdgeSerializer(many=True), **errors(404)}),
    retrieve=extend_schema(summary="One edge", responses={200: s.EdgeSerializer, **errors(404)}),
)
class EdgeViewSet(_ChildViewSet):
    """Edges (decky ↔ LAN memberships) of a topology, addressed by id. Writes only while pending."""

    serializer_class = s.EdgeSerializer
    lookup_field = "edge_id"
    lookup_value_regex = UUID_RE

    model = Edge

    def _rows(self) -> Any:
        return selectors.edge_list(topology_id=self.topology_pk)

    def get_object(self) -> Edge:
        return selectors.edge_get(topology_id=self.topology_pk, edge_id=self.kwargs["edge_id"])

    def _fresh(self, edge: Edge, version: int, code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.edge_get(topology_id=self.topology_pk, edge_id=edge.pk)
        return self._one(fresh, s.EdgeSerializer, version, code)

    def list(self, request: Request, topology_pk: str) -> Response:
        return self._list(self.get_queryset(), s.EdgeSerializer)

    def retrieve(self, request: Request, topology_pk: str, edge_id: str) -> Response:
        return self._one(self.get_object(), s.EdgeSerializer)

    @extend_schema(
        summary="Attach a decky to a LAN (both by name; the LAN also by id)",
        request=s.EdgeCreateSerializer,
        parameters=[IF_MATCH],
        responses={201: s.EdgeSerializer, 409: CONFLICT, **errors(400, 404)},
    )
    def create(self, request: Request, topology_pk: str) -> Response:
        values = _validated(s.EdgeCreateSerializer, request)
        decky, lan = selectors.edge_endpoints_get(
            topology_id=self.topology_pk, decky=values["decky"], lan=values["lan"]
        )
        edge, version = self._edit(
            request,
            values,
            lambda v: services.edge_create(
                topology_id=self.topology_pk,
                decky_id=decky.pk,
                lan_id=lan.pk,
                ip=values["ip"],
                is_bridge=values["is_bridge"],
                forwards_l3=values["forwards_l3"],
                expected_version=v,
            ),
        )
        return self._fresh(edge, version, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an edge's address or flags",
        request=s.EdgeUpdateSerializer,
        parameters=[IF_MATCH],
        responses={200: s.EdgeSerializer, 409: CONFLICT, **errors(400, 404)},
    )
    def update(self, request: Request, topology_pk: str, edge_id: str) -> Response:
        edge = self.get_object()
        values = _validated(s.EdgeUpdateSerializer, request)
        fields = {key: values[key] for key in ("ip", "is_bridge", "forwards_l3") if key in values}
        _, version = self._edit(
            request, values, lambda v: services.edge_update(edge_id=edge.pk, expected_version=v, **fields)
        )
        return self._fresh(edge, version)

    @extend_schema(
        summary="Change some fields of an edge",
        request=s.EdgeUpdateSerializer,
        parameters=[IF_MATCH],
        responses={200: s.EdgeSerializer, 409: CONFLICT, **errors(400, 404)},
    )
    def partial_update(self, request: Request, topology_pk: str, edge_id: str) -> Response:
        return self.update(request, topology_pk, edge_id)

    @extend_schema(
        summary="Detach a decky from a LAN (the decky stays)",
        request=None,
        parameters=[IF_MATCH],
        responses={204: None, 409: CONFLICT, **errors(400, 404)},
    )
    def destroy(self, request: Request, topology_pk: str, edge_id: str) -> Response:
        edge = self.get_object()
        values = _validated(s.VersionOnlySerializer, request)
        _, version = self._edit(request, values, lambda v: services.edge_delete(edge_id=edge.pk, expected_version=v))
        return self._gone(version)


__all__ = ["EdgeViewSet", "LANViewSet", "TopologyDeckyViewSet", "TopologyViewSet", "expected_version", "with_etag"]
