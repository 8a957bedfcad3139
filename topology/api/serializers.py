"""Serializers of the topology API: topology summary and detail, its LANs, deckies and edges, status events,
validation issues, and the inputs of every write.

Input serializers check shapes only; the rules (pending-only edits, versions, subnets, the service catalogue)
belong to the services, so the API, the admin and the commands agree. Every child write takes an optional
``expected_version``; the view also accepts it as an ``If-Match`` header.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deckies.api.serializers import DeckyListSerializer, DeckySerializer, IntervalField, reject_nul
from deckies.models import DECKY_NAME_RE, SERVICE_SLUG_RE, Decky
from topology.models import LAN, NAME_RE, Edge, Topology, TopologyStatusEvent
from topology.status import TopologyStatus, legal_next

#: The LAN model's name bound (shorter than a decky's: LAN names end up inside Docker network names).
_LAN_NAME_MAX = 32
_HOSTNAME_RE = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"


def _version_field() -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1,
        max_value=2_147_483_647,
        required=False,
        allow_null=True,
        help_text="The topology version this edit is based on; a stale one is refused with 409 version_conflict. "
        'May be sent as an `If-Match: "<version>"` header instead.',
    )


class _TopologyVersionMixin(serializers.Serializer):
    """Adds ``topology_version``: the context's value (right after a write) or the row's topology's version."""

    topology_version = serializers.SerializerMethodField()

    @extend_schema_field(serializers.IntegerField())
    def get_topology_version(self, obj: Any) -> int:
        version = self.context.get("topology_version")
        return int(version) if version is not None else int(obj.topology.version)


# --- topologies -------------------------------------------------------------------------------------------------------


class TopologySerializer(serializers.ModelSerializer):
    """A topology's summary: status (with the statuses it may move to next) and concurrency version."""

    legal_next = serializers.SerializerMethodField()

    class Meta:
        model = Topology
        fields: tuple[str, ...] = (
            "id",
            "name",
            "description",
            "status",
            "version",
            "legal_next",
            "status_changed_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=TopologyStatus.choices)))
    def get_legal_next(self, topology: Topology) -> list[str]:
        return sorted(legal_next(topology.status))


class TopologyWriteSerializer(serializers.Serializer):
    """Create a topology, or rename / re-describe a pending one."""

    name = serializers.RegexField(NAME_RE, max_length=64)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    expected_version = _version_field()


class LANSerializer(_TopologyVersionMixin, serializers.ModelSerializer):
    """One LAN (bridge network) of a topology."""

    topology_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = LAN
        fields = ("id", "topology_id", "name", "subnet", "is_dmz", "topology_version")
        read_only_fields = fields


class LANWriteSerializer(serializers.Serializer):
    """Add a LAN (``subnet`` left out: the next free /24 of 10.0.0.0/16) or change one."""

    name = serializers.RegexField(NAME_RE, max_length=_LAN_NAME_MAX)
    subnet = serializers.CharField(max_length=18, required=False, allow_null=True)
    is_dmz = serializers.BooleanField(required=False)
    expected_version = _version_field()


class TopologyDeckySerializer(_TopologyVersionMixin, DeckySerializer):
    """A decky of a topology: the fleet decky's fields, minus fleet placement, plus its address on each LAN.

    ``ip`` is its primary address (on the DMZ if it is there), known once the topology has been deployed.
    """

    network = None  # type: ignore[assignment]
    host = None  # type: ignore[assignment]
    topology_id = serializers.UUIDField(read_only=True)
    addresses = serializers.SerializerMethodField()

    class Meta:
        model = Decky
        list_serializer_class = DeckyListSerializer
        fields = (
            "name",
            "topology_id",
            "hostname",
            "ip",
            "addresses",
            "distro",
            "archetype",
            "nmap_os",
            "services",
            "service_config",
            "mutate_interval",
            "last_mutated",
            "state",
            "last_error",
            "latest_lifecycle",
            "topology_version",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    @extend_schema_field(serializers.DictField(child=serializers.IPAddressField(allow_null=True)))
    def get_addresses(self, decky: Decky) -> dict[str, str | None]:
        """``{LAN name: address}``; an address is null until the deploy allocates it."""
        return {edge.lan.name: (str(edge.ip) if edge.ip else None) for edge in decky.edges.all()}


class TopologyDeckyUpdateSerializer(serializers.Serializer):
    """Change a topology decky's desired shape; fields left out keep their value. ``services`` replaces the list.

    Placement (network, host, address) is the topology's: addresses live on edges.
    """

    services = serializers.ListField(
        child=serializers.RegexField(SERVICE_SLUG_RE, max_length=64), max_length=64, required=False
    )
    service_config = serializers.DictField(child=serializers.DictField(), required=False)
    hostname = serializers.RegexField(_HOSTNAME_RE, max_length=253, required=False)
    distro = serializers.CharField(max_length=32, required=False)
    archetype = serializers.CharField(max_length=64, required=False, allow_blank=True)
    nmap_os = serializers.CharField(max_length=32, required=False)
    mutate_interval = IntervalField(
        required=False, allow_null=True, min_value=timedelta(minutes=1), max_value=timedelta(days=36500)
    )
    expected_version = _version_field()

    def validate_service_config(self, value: dict[str, Any]) -> dict[str, Any]:
        return reject_nul(value, "service_config")


class TopologyDeckyCreateSerializer(TopologyDeckyUpdateSerializer):
    """Add a decky to a topology. ``services`` may be left out when ``archetype`` supplies them."""

    name = serializers.RegexField(DECKY_NAME_RE, max_length=64)


class EdgeSerializer(_TopologyVersionMixin, serializers.ModelSerializer):
    """A decky's membership of a LAN, by names, with its address there (null until allocated at deploy)."""

    decky = serializers.CharField(source="decky.name", read_only=True)
    lan = serializers.CharField(source="lan.name", read_only=True)
    lan_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Edge
        fields = ("id", "decky", "lan", "lan_id", "ip", "is_bridge", "forwards_l3", "topology_version")
        read_only_fields = fields


class EdgeCreateSerializer(serializers.Serializer):
    """Attach a decky (by name) to a LAN (by name or id) of the same topology."""

    decky = serializers.RegexField(DECKY_NAME_RE, max_length=64)
    lan = serializers.CharField(max_length=64, help_text="LAN name or id.")
    ip = serializers.IPAddressField(protocol="IPv4", required=False, allow_null=True, default=None)
    is_bridge = serializers.BooleanField(required=False, default=False)
    forwards_l3 = serializers.BooleanField(required=False, default=False)
    expected_version = _version_field()


class EdgeUpdateSerializer(serializers.Serializer):
    """Change an edge's address or flags."""

    ip = serializers.IPAddressField(protocol="IPv4", required=False, allow_null=True)
    is_bridge = serializers.BooleanField(required=False)
    forwards_l3 = serializers.BooleanField(required=False)
    expected_version = _version_field()


class VersionOnlySerializer(serializers.Serializer):
    """The optional body of a DELETE or an operation: only ``expected_version``."""

    expected_version = _version_field()


class TopologyDetailSerializer(TopologySerializer):
    """A topology with its LANs, deckies and edges."""

    lans = serializers.SerializerMethodField()
    deckies = serializers.SerializerMethodField()
    edges = serializers.SerializerMethodField()

    class Meta:
        model = Topology
        fields = (*TopologySerializer.Meta.fields, "lans", "deckies", "edges")
        read_only_fields = fields

    def _child_context(self, topology: Topology) -> dict[str, Any]:
        return {**self.context, "topology_version": topology.version}

    @extend_schema_field(LANSerializer(many=True))
    def get_lans(self, topology: Topology) -> list[Any]:
        return list(LANSerializer(topology.lans.all(), many=True, context=self._child_context(topology)).data)

    @extend_schema_field(TopologyDeckySerializer(many=True))
    def get_deckies(self, topology: Topology) -> list[Any]:
        data = TopologyDeckySerializer(topology.deckies.all(), many=True, context=self._child_context(topology))
        return list(data.data)

    @extend_schema_field(EdgeSerializer(many=True))
    def get_edges(self, topology: Topology) -> list[Any]:
        return list(EdgeSerializer(topology.edges.all(), many=True, context=self._child_context(topology)).data)


class TopologyStatusEventSerializer(serializers.ModelSerializer):
    """One status move of a topology, with why it happened."""

    class Meta:
        model = TopologyStatusEvent
        fields = ("id", "from_status", "to_status", "reason", "at")
        read_only_fields = fields


class IssueSerializer(serializers.Serializer):
    """One validation finding; ``target`` names the LAN, decky, edge or service concerned."""

    severity = serializers.ChoiceField(choices=["error", "warning"])
    code = serializers.CharField()
    message = serializers.CharField()
    target = serializers.DictField()


class ValidationReportSerializer(serializers.Serializer):
    """Validation of a topology as it stands: ``valid`` is false when any issue is an error."""

    topology_id = serializers.UUIDField()
    valid = serializers.BooleanField()
    error_count = serializers.IntegerField()
    warning_count = serializers.IntegerField()
    issues = IssueSerializer(many=True)


class ValidationFailedSerializer(serializers.Serializer):
    """The 400 body of a deploy refused by validation."""

    detail = serializers.CharField()
    code = serializers.CharField()
    issues = IssueSerializer(many=True)


class VersionConflictSerializer(serializers.Serializer):
    """The 409 body of a write based on a stale version."""

    detail = serializers.CharField()
    code = serializers.CharField()
    current = serializers.IntegerField()
    expected = serializers.IntegerField()


class TopologyAcceptedSerializer(TopologySerializer):
    """Body of a topology deploy or teardown 202: the topology, plus the lifecycle rows to poll (one per decky)."""

    lifecycle_ids = serializers.ListField(child=serializers.UUIDField())

    class Meta(TopologySerializer.Meta):
        fields = (*TopologySerializer.Meta.fields, "lifecycle_ids")
