"""Views of a topology's children: its LANs, deckies (with their live services) and edges.

Every write is one versioned edit of the topology (see :mod:`topology.api.views` for ``If-Match`` and ``ETag``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from deckies.api.serializers import DeckyServicesSerializer, ServiceAddSerializer
from deckies.models import Decky
from decnet_site.api import Pagination, errors
from decnet_site.api import actor_of as actor
from decnet_site.exceptions import InvalidInputError
from topology import selectors, services
from topology.api import serializers as s
from topology.api.views import CONFLICT, IF_MATCH, UUID_RE, expected_version, validated, with_etag
from topology.models import LAN, Edge

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
        values = validated(s.LANWriteSerializer, request)
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
        values = validated(s.LANWriteSerializer, request, partial=partial)
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
        values = validated(s.VersionOnlySerializer, request)
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
        values = validated(s.TopologyDeckyCreateSerializer, request)
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
        values = validated(s.TopologyDeckyUpdateSerializer, request)
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
        values = validated(s.VersionOnlySerializer, request)
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
        values = validated(ServiceAddSerializer, request)
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
        values = validated(s.EdgeCreateSerializer, request)
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
        values = validated(s.EdgeUpdateSerializer, request)
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
        values = validated(s.VersionOnlySerializer, request)
        _, version = self._edit(request, values, lambda v: services.edge_delete(edge_id=edge.pk, expected_version=v))
        return self._gone(version)


__all__ = ["EdgeViewSet", "LANViewSet", "TopologyDeckyViewSet"]
