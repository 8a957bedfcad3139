"""Serializers of lifecycle rows, events and the 202 "accepted" body."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rest_framework import serializers

from lifecycle.models import DeckyLifecycle, Event


class DeckyLifecycleSerializer(serializers.ModelSerializer):
    """One lifecycle row, as the polling loop sees it."""

    class Meta:
        model = DeckyLifecycle
        fields = (
            "id",
            "decky_name",
            "decky_id",
            "topology_id",
            "host_uuid",
            "operation",
            "status",
            "error",
            "message",
            "actor",
            "worker",
            "started_at",
            "updated_at",
            "completed_at",
        )
        read_only_fields = fields


POLL_FIELDS = DeckyLifecycleSerializer.Meta.fields


def _iso(value: datetime | None) -> str | None:
    # DRF's DateTimeField representation, without building a field per value: UTC ISO 8601 with a "Z".
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def poll_representation(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows from ``.values(*POLL_FIELDS)`` as :class:`DeckyLifecycleSerializer` renders them, built directly: the
    polling loop is the path clients hammer, and a serializer per row costs more than the query."""
    out = []
    for row in rows:
        item = dict(row)
        item["id"] = str(item["id"])
        if item["topology_id"] is not None:
            item["topology_id"] = str(item["topology_id"])
        for key in ("started_at", "updated_at", "completed_at"):
            item[key] = _iso(item[key])
        out.append(item)
    return out


class LifecycleRowsSerializer(serializers.Serializer):
    """``{"rows": [...]}``: the answer of the polling endpoint."""

    rows = DeckyLifecycleSerializer(many=True)


class LifecycleAcceptedSerializer(serializers.Serializer):
    """Body of every 202: the lifecycle rows to poll (also in the ``Location`` header)."""

    lifecycle_ids = serializers.ListField(child=serializers.UUIDField())


class EventSerializer(serializers.ModelSerializer):
    """One entry of the append-only event log."""

    class Meta:
        model = Event
        fields = ("id", "topic", "type", "payload", "at")
        read_only_fields = fields
