"""Views of lifecycle rows (list, detail, the polling endpoint) and of the event log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from decnet_site.api import Pagination, errors
from lifecycle import selectors
from lifecycle.api.serializers import (
    POLL_FIELDS,
    DeckyLifecycleSerializer,
    EventSerializer,
    LifecycleAcceptedSerializer,
    LifecycleRowsSerializer,
    poll_representation,
)
from lifecycle.models import DeckyLifecycle, Event
from lifecycle.selectors import EventFilterSet, LifecycleFilterSet


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return errors(*codes)


def poll_location(rows: Sequence[DeckyLifecycle]) -> str:
    """The polling URL of exactly these rows."""
    ids = ",".join(str(row.pk) for row in rows)
    return f"{reverse('lifecycle-api:lifecycle-poll')}?{urlencode({'ids': ids})}"


def accepted(rows: Sequence[DeckyLifecycle], body: dict[str, Any] | None = None) -> Response:
    """202 with ``{"lifecycle_ids": [...]}`` (added to ``body`` when given) and a ``Location`` polling those rows."""
    data = {**(body or {}), "lifecycle_ids": [str(row.pk) for row in rows]}
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": poll_location(rows)})


ACCEPTED = OpenApiResponse(
    LifecycleAcceptedSerializer,
    description="Accepted: poll the rows at the `Location` header (`/api/v1/deckies/lifecycle/?ids=…`).",
)


class LifecyclePollView(APIView):
    """``GET /deckies/lifecycle/?ids=…``: the rows a 202 answer named, for polling until they are terminal."""

    @extend_schema(
        summary="Poll lifecycle rows by id",
        description="`ids` is repeatable (`ids=a&ids=b`) or comma-separated (`ids=a,b`); 1 to 200 ids. Rows come "
        "back ordered by `started_at`; unknown ids are omitted.",
        parameters=[
            OpenApiParameter("ids", OpenApiTypes.STR, OpenApiParameter.QUERY, required=True, many=True, explode=True)
        ],
        responses={200: LifecycleRowsSerializer, **_errors(400)},
    )
    def get(self, request: Request) -> Response:
        ids = selectors.parse_poll_ids(request.query_params.getlist("ids"))
        rows = selectors.lifecycle_poll_values(ids=ids, fields=POLL_FIELDS)
        return Response({"rows": poll_representation(rows)})


@extend_schema_view(
    list=extend_schema(
        summary="Lifecycle rows, newest first", responses={200: DeckyLifecycleSerializer(many=True), **_errors(400)}
    ),
    retrieve=extend_schema(summary="One lifecycle row", responses={200: DeckyLifecycleSerializer, **_errors(404)}),
)
class LifecycleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Every operation attempt: filter by ``decky``, ``operation``, ``status`` and ``since``."""

    serializer_class = DeckyLifecycleSerializer
    filterset_class = LifecycleFilterSet
    pagination_class = Pagination
    lookup_value_regex = r"[0-9a-fA-F-]{32,36}"

    def get_queryset(self) -> Any:
        return selectors.lifecycle_list()

    def get_object(self) -> DeckyLifecycle:
        return selectors.lifecycle_get(lifecycle_id=self.kwargs["pk"])


@extend_schema_view(
    list=extend_schema(summary="Events, newest first", responses={200: EventSerializer(many=True), **_errors(400)}),
    retrieve=extend_schema(summary="One event", responses={200: EventSerializer, **_errors(404)}),
)
class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The event log: ``topic`` exact or prefix (``topic=decky.web-01.``), ``topic_prefix``, ``type``, ``since``."""

    serializer_class = EventSerializer
    filterset_class = EventFilterSet
    pagination_class = Pagination
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self) -> Any:
        return selectors.event_list()

    def get_object(self) -> Event:
        return selectors.event_get(event_id=int(self.kwargs["pk"]))
