"""Serializers of lifecycle rows, events and the 202 "accepted" body."""

from __future__ import annotations

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
