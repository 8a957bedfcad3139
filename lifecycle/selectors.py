"""Reads of lifecycle rows and events, with their query-string filters."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django_filters.fields import IsoDateTimeField

from decnet_site.exceptions import NotFoundError
from lifecycle.choices import OPEN_STATUSES, LifecycleOperation, LifecycleStatus
from lifecycle.exceptions import LifecycleNotFoundError
from lifecycle.models import DeckyLifecycle, Event

#: Most ids one poll may ask for (as in DECNET).
MAX_POLL_IDS = 200


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time normalised to UTC; offsets the database cannot store, or dates that fall outside the
    representable range once normalised, are a validation error (400) instead of a database error."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValidationError("The date-time is out of range.", code="invalid") from None


class SinceFilter(django_filters.IsoDateTimeFilter):
    """``<field> >= value``, with the value normalised to UTC."""

    field_class = UtcIsoDateTimeField


class LifecycleFilterSet(django_filters.FilterSet):
    """``decky`` (exact ``decky_name``), ``operation`` and ``status`` (repeatable), ``since`` (started at or after)."""

    decky = django_filters.CharFilter(field_name="decky_name")
    operation = django_filters.MultipleChoiceFilter(choices=LifecycleOperation.choices)
    status = django_filters.MultipleChoiceFilter(choices=LifecycleStatus.choices)
    since = SinceFilter(field_name="started_at", lookup_expr="gte")

    class Meta:
        model = DeckyLifecycle
        fields = ("decky", "operation", "status", "since")


class EventFilterSet(django_filters.FilterSet):
    """``topic``: exact, or a prefix when it ends with ``.`` or ``>`` (``decky.web-01.``); ``topic_prefix``;
    ``type``; ``since`` (at or after)."""

    topic = django_filters.CharFilter(method="filter_topic", max_length=200)
    topic_prefix = django_filters.CharFilter(field_name="topic", lookup_expr="startswith", max_length=200)
    type = django_filters.CharFilter(field_name="type")
    since = SinceFilter(field_name="at", lookup_expr="gte")

    class Meta:
        model = Event
        fields = ("topic", "topic_prefix", "type", "since")

    def filter_topic(self, queryset: QuerySet[Event], name: str, value: str) -> QuerySet[Event]:
        if value.endswith(">"):
            return queryset.filter(topic__startswith=value[:-1])
        if value.endswith("."):
            return queryset.filter(topic__startswith=value)
        return queryset.filter(topic=value)


def _filtered(filterset_class: type[django_filters.FilterSet], queryset: QuerySet[Any], filters: Any) -> Any:
    if not filters:
        return queryset
    filterset = filterset_class(data=filters, queryset=queryset)
    if not filterset.is_valid():
        raise ValidationError({key: [str(e) for e in errs] for key, errs in filterset.errors.items()})
    return filterset.qs


def lifecycle_list(*, filters: Mapping[str, Any] | None = None) -> QuerySet[DeckyLifecycle]:
    """Lifecycle rows, newest first, filtered by :class:`LifecycleFilterSet` (bad values → ValidationError)."""
    queryset: QuerySet[DeckyLifecycle] = _filtered(LifecycleFilterSet, DeckyLifecycle.objects.all(), filters)
    return queryset.order_by("-started_at", "-id")


def lifecycle_get(*, lifecycle_id: uuid.UUID | str) -> DeckyLifecycle:
    """One row by id; raises :class:`LifecycleNotFoundError` (404) for an unknown or malformed id."""
    try:
        row = DeckyLifecycle.objects.filter(pk=uuid.UUID(str(lifecycle_id))).first()
    except ValueError:
        row = None
    if row is None:
        raise LifecycleNotFoundError(f"lifecycle row {lifecycle_id} does not exist")
    return row


def parse_poll_ids(raw: Iterable[str]) -> list[str]:
    """The ids of a poll query: repeated ``ids=`` values, each possibly comma-separated, de-duplicated in order.

    Raises ``ValidationError`` (400) unless there are 1 to :data:`MAX_POLL_IDS` of them.
    """
    ids = list(dict.fromkeys(part.strip() for value in raw for part in value.split(",") if part.strip()))
    if not ids:
        raise ValidationError({"ids": ["Give 1 to 200 lifecycle ids (ids=a&ids=b or ids=a,b)."]})
    if len(ids) > MAX_POLL_IDS:
        raise ValidationError({"ids": [f"At most {MAX_POLL_IDS} ids per request; got {len(ids)}."]})
    return ids


def _valid_ids(ids: Sequence[str | uuid.UUID]) -> list[uuid.UUID]:
    valid: list[uuid.UUID] = []
    for raw in ids:
        try:
            valid.append(raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw)))
        except ValueError:
            continue
    return valid


def lifecycle_poll(*, ids: Sequence[str | uuid.UUID]) -> list[DeckyLifecycle]:
    """Rows for ``ids`` ordered by ``started_at``; unknown or malformed ids are omitted (one query)."""
    valid = _valid_ids(ids)
    if not valid:
        return []
    return list(DeckyLifecycle.objects.filter(pk__in=valid).order_by("started_at", "id"))


def lifecycle_poll_values(*, ids: Sequence[str | uuid.UUID], fields: Sequence[str]) -> list[dict[str, Any]]:
    """:func:`lifecycle_poll` as plain values of ``fields`` (one query, no model instances)."""
    valid = _valid_ids(ids)
    if not valid:
        return []
    return list(DeckyLifecycle.objects.filter(pk__in=valid).order_by("started_at", "id").values(*fields))


def lifecycle_rows_by_id(ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, DeckyLifecycle]:
    """``{id: row}`` for the given ids (None skipped), in one query; used to attach rows to a page of deckies."""
    wanted = {lifecycle_id for lifecycle_id in ids if lifecycle_id is not None}
    if not wanted:
        return {}
    return {row.pk: row for row in DeckyLifecycle.objects.filter(pk__in=wanted)}


def lifecycle_stale(*, cutoff: datetime) -> QuerySet[DeckyLifecycle]:
    """Open (pending/running) rows started before ``cutoff``, oldest first."""
    return DeckyLifecycle.objects.filter(status__in=sorted(OPEN_STATUSES), started_at__lt=cutoff).order_by("started_at")


def event_list(*, filters: Mapping[str, Any] | None = None) -> QuerySet[Event]:
    """Events, newest first, filtered by :class:`EventFilterSet` (bad values → ValidationError)."""
    queryset: QuerySet[Event] = _filtered(EventFilterSet, Event.objects.all(), filters)
    return queryset.order_by("-at", "-id")


class EventNotFoundError(NotFoundError):
    code = "event_not_found"


def event_get(*, event_id: int) -> Event:
    """One event by id; raises :class:`EventNotFoundError` (404)."""
    event = Event.objects.filter(pk=event_id).first()
    if event is None:
        raise EventNotFoundError(f"event {event_id} does not exist")
    return event
