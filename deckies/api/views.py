"""Views of the deckies API. They parse input, call one service or selector, and shape the answer.

Domain errors are never caught here: :func:`decnet_site.exceptions.exception_handler` maps them to HTTP.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from deckies import live, operations, selectors, services
from deckies.api import serializers as s
from deckies.filtersets import DeckyFilterSet, HostFilterSet
from deckies.models import Decky, Host
from decnet_site.api import Pagination, errors
from decnet_site.api import actor_of as actor
from lifecycle.api.views import ACCEPTED, accepted


@extend_schema_view(
    list=extend_schema(summary="List fleet deckies", responses={200: s.DeckySerializer(many=True), **errors(400)}),
    retrieve=extend_schema(summary="One fleet decky", responses={200: s.DeckySerializer, **errors(404)}),
)
class DeckyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Fleet deckies (no topology): CRUD by name, and the deploy / mutate / teardown / live-service operations."""

    serializer_class = s.DeckySerializer
    filterset_class = DeckyFilterSet
    pagination_class = Pagination
    lookup_field = "name"
    lookup_value_regex = r"[a-z0-9-]{1,64}"

    def get_queryset(self) -> Any:
        return selectors.decky_list()

    def get_object(self) -> Decky:
        return selectors.decky_get(name=self.kwargs["name"])

    def _respond(self, decky: Decky, code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.decky_get(name=decky.name)
        return Response(s.DeckySerializer(fresh, context=self.get_serializer_context()).data, status=code)

    @extend_schema(
        summary="Create a fleet decky (nothing is deployed)",
        request=s.DeckyCreateSerializer,
        responses={201: s.DeckySerializer, **errors(400, 409, 422)},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.DeckyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        decky = services.decky_create(**data.validated_data)
        return self._respond(decky, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a fleet decky's desired shape (applies on the next deploy or mutate)",
        request=s.DeckyUpdateSerializer,
        responses={200: s.DeckySerializer, **errors(400, 404, 409, 422)},
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        decky = self.get_object()
        data = s.DeckyUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        services_given = fields.pop("services", None)
        config_given = fields.pop("service_config", None)
        decky = services.decky_update(decky=decky, services=services_given, service_config=config_given, **fields)
        return self._respond(decky)

    @extend_schema(
        summary="Change some fields of a fleet decky",
        request=s.DeckyUpdateSerializer,
        responses={200: s.DeckySerializer, **errors(400, 404, 409, 422)},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, **kwargs)

    @extend_schema(
        summary="Delete a fleet decky's record (refused while deployed: tear it down first)",
        responses={204: None, **errors(404, e409="The decky is deployed.")},
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.decky_delete(decky=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Deploy one decky (only its containers start; no other decky restarts)",
        request=None,
        responses={202: ACCEPTED, **errors(404, 409, 503, e409="Another operation is open on the decky.")},
    )
    @action(detail=True, methods=["post"])
    def deploy(self, request: Request, name: str) -> Response:
        return accepted(operations.deploy_request(names=[name], actor=actor(request)))

    @extend_schema(
        summary="Rotate the decky's services now",
        description="The new services are committed before the task runs. On a decky that is not deployed only the "
        "desired state changes (the lifecycle row still records the attempt).",
        request=None,
        responses={
            202: ACCEPTED,
            **errors(404, 409, 503, e404="Unknown decky, or no services available to rotate to."),
        },
    )
    @action(detail=True, methods=["post"])
    def mutate(self, request: Request, name: str) -> Response:
        return accepted([operations.mutate_request(name=name, actor=actor(request))])

    @extend_schema(
        summary="Tear one decky down (its base container included)",
        request=None,
        responses={202: ACCEPTED, **errors(404, 409, 503)},
    )
    @action(detail=True, methods=["post"])
    def teardown(self, request: Request, name: str) -> Response:
        return accepted([operations.teardown_request(name=name, actor=actor(request))])

    @extend_schema(
        summary="Add one service live (only that container starts)",
        request=s.ServiceAddSerializer,
        responses={
            201: s.DeckyServicesSerializer,
            **errors(
                400,
                404,
                409,
                422,
                502,
                503,
                e400="Bad config for the service.",
                e409="Already on the decky, or another operation is open.",
                e422="Unknown or fleet-singleton service.",
            ),
        },
    )
    @action(detail=True, methods=["post"], url_path="services")
    def add_service(self, request: Request, name: str) -> Response:
        decky = self.get_object()
        data = s.ServiceAddSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        slugs = live.service_add(
            decky=decky, slug=data.validated_data["name"], config=data.validated_data["config"], actor=actor(request)
        )
        body = {"decky_name": decky.name, "topology_id": None, "services": slugs}
        return Response(s.DeckyServicesSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Remove one service live (only that container stops)",
        request=None,
        responses={
            200: s.DeckyServicesSerializer,
            **errors(
                404,
                409,
                422,
                502,
                503,
                e409="Not on the decky, its last service, or another operation is open.",
                e422="No catalogue knows this service.",
            ),
        },
    )
    @action(detail=True, methods=["delete"], url_path=r"services/(?P<svc>[a-z0-9_-]{1,64})")
    def remove_service(self, request: Request, name: str, svc: str) -> Response:
        decky = self.get_object()
        slugs = live.service_remove(decky=decky, slug=svc, actor=actor(request))
        body = {"decky_name": decky.name, "topology_id": None, "services": slugs}
        return Response(s.DeckyServicesSerializer(body).data)


class FleetDeployView(APIView):
    """``POST /deckies/deploy/``: deploy the named fleet deckies, or all of them."""

    @extend_schema(
        summary="Deploy fleet deckies (all when `names` is left out); no other decky restarts",
        operation_id="deckies_deploy_many",
        request=s.DeployInputSerializer,
        responses={
            202: ACCEPTED,
            **errors(400, 404, 409, 503, e404="Unknown decky name(s), or an empty fleet."),
        },
    )
    def post(self, request: Request) -> Response:
        data = s.DeployInputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        return accepted(operations.deploy_request(names=data.validated_data.get("names"), actor=actor(request)))


class FileView(APIView):
    """``POST|DELETE /deckies/files/``: drop or delete a file inside a fleet or topology decky."""

    @staticmethod
    def _decky(data: dict[str, Any]) -> Decky:
        return selectors.decky_get(name=data["decky_name"], topology_id=data.get("topology_id"))

    @extend_schema(
        summary="Drop a file into a decky (its ssh container, else its base)",
        request=s.FileDropSerializer,
        responses={
            201: s.FileResultSerializer,
            **errors(
                400,
                404,
                409,
                503,
                e400="Bad base64, path, mode or offset.",
                e404="Unknown decky or topology.",
                e409="The container refused the write (e.g. not running).",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = s.FileDropSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        container = live.file_drop(
            decky=self._decky(values),
            path=values["path"],
            content=values["content_b64"],
            mode=values["mode"],
            mtime_offset=values["mtime_offset"],
            actor=actor(request),
        )
        return Response({"message": "ok", "container": container}, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Delete a file inside a decky (rm -f)",
        request=s.FileDeleteSerializer,
        responses={200: s.FileResultSerializer, **errors(400, 404, 409, 503)},
    )
    def delete(self, request: Request) -> Response:
        data = s.FileDeleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        container = live.file_delete(decky=self._decky(values), path=values["path"], actor=actor(request))
        return Response({"message": "ok", "container": container})


class ServiceCatalogueViewSet(viewsets.ViewSet):
    """The service catalogue: built-in services and bring-your-own ones, with their config schemas."""

    lookup_field = "slug"
    lookup_value_regex = r"[a-z0-9_-]{1,64}"

    @extend_schema(summary="Every service", responses={200: s.ServiceCatalogueSerializer(many=True), **errors()})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(s.ServiceCatalogueSerializer(selectors.service_catalogue_list(), many=True).data)

    @extend_schema(summary="One service", responses={200: s.ServiceCatalogueSerializer, **errors(404)})
    def retrieve(self, request: Request, slug: str, *args: Any, **kwargs: Any) -> Response:
        return Response(s.ServiceCatalogueSerializer(selectors.service_catalogue_get(slug=slug)).data)


class ArchetypeViewSet(viewsets.ViewSet):
    """Archetypes: machine roles bundling services, preferred distros and an OS fingerprint family."""

    lookup_field = "slug"
    lookup_value_regex = r"[a-z0-9_-]{1,64}"

    @extend_schema(summary="Every archetype", responses={200: s.ArchetypeSerializer(many=True), **errors()})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(s.ArchetypeSerializer(selectors.archetype_list(), many=True).data)

    @extend_schema(summary="One archetype", responses={200: s.ArchetypeSerializer, **errors(404)})
    def retrieve(self, request: Request, slug: str, *args: Any, **kwargs: Any) -> Response:
        return Response(s.ArchetypeSerializer(selectors.archetype_get(slug=slug)).data)


class DistroViewSet(viewsets.ViewSet):
    """Distros: base images and hostname styles a decky can present."""

    lookup_field = "slug"
    lookup_value_regex = r"[a-z0-9_-]{1,64}"

    @extend_schema(summary="Every distro", responses={200: s.DistroSerializer(many=True), **errors()})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(s.DistroSerializer(selectors.distro_list(), many=True).data)

    @extend_schema(summary="One distro", responses={200: s.DistroSerializer, **errors(404)})
    def retrieve(self, request: Request, slug: str, *args: Any, **kwargs: Any) -> Response:
        return Response(s.DistroSerializer(selectors.distro_get(slug=slug)).data)


@extend_schema_view(
    list=extend_schema(summary="Docker hosts", responses={200: s.HostSerializer(many=True), **errors(400)}),
    retrieve=extend_schema(summary="One Docker host", responses={200: s.HostSerializer, **errors(404)}),
)
class HostViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Docker engines deckies can be placed on (operators write, viewers read)."""

    serializer_class = s.HostSerializer
    filterset_class = HostFilterSet
    pagination_class = Pagination
    lookup_field = "uuid"
    lookup_value_regex = r"[0-9a-fA-F-]{32,36}"

    def get_queryset(self) -> Any:
        return selectors.host_list()

    def get_object(self) -> Host:
        return selectors.host_get(host_id=self.kwargs["uuid"])

    @extend_schema(
        summary="Register a Docker host",
        request=s.HostWriteSerializer,
        responses={201: s.HostSerializer, **errors(400, 409)},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.HostWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        host = services.host_create(**data.validated_data)
        return Response(s.HostSerializer(host).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a Docker host",
        request=s.HostWriteSerializer,
        responses={200: s.HostSerializer, **errors(400, 404, 409)},
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        host = self.get_object()
        data = s.HostWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        host = services.host_update(host=host, **data.validated_data)
        return Response(s.HostSerializer(host).data)

    @extend_schema(
        summary="Change some fields of a Docker host",
        request=s.HostWriteSerializer,
        responses={200: s.HostSerializer, **errors(400, 404, 409)},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, **kwargs)

    @extend_schema(
        summary="Forget a Docker host (refused while deckies are placed on it)",
        responses={204: None, **errors(404, 409)},
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.host_delete(host=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


__all__ = [
    "ArchetypeViewSet",
    "DeckyViewSet",
    "DistroViewSet",
    "FileView",
    "FleetDeployView",
    "HostViewSet",
    "ServiceCatalogueViewSet",
]
