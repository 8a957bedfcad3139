"""Topologies: LANs (bridge networks) joined by deckies through edges, with an audited status machine."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from topology.status import TopologyStatus

NAME_RE = r"^[a-z0-9][a-z0-9-]{0,63}$"
name_validator = RegexValidator(NAME_RE, "Use 1-64 lowercase letters, digits and hyphens, starting alphanumeric.")


def validate_ipv4_network(value: str) -> None:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValidationError(f"{value!r} is not a valid network in CIDR form ({exc}).") from exc
    if network.version != 4:
        raise ValidationError("Only IPv4 subnets are supported.")
    if network.prefixlen > 29:
        raise ValidationError("A LAN needs at least a /29 to hold a gateway and deckies.")


class StatusWriteError(RuntimeError):
    """Raised when code saves a topology whose status changed outside the status machine."""


class Topology(models.Model):
    """A network of LANs joined by deckies, deployed and torn down as one compose project.

    ``status`` moves only through :func:`topology.services.topology_transition` (a compare-and-set UPDATE that
    appends a :class:`TopologyStatusEvent` in the same transaction); ``save()`` refuses any other status change.
    ``version`` is the optimistic-concurrency token bumped by child-row writes that carry ``expected_version``.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, unique=True, validators=[name_validator])
    description = models.TextField(blank=True, default="")
    status = models.CharField(
        max_length=32, choices=TopologyStatus.choices, default=TopologyStatus.PENDING, db_index=True, editable=False
    )
    version = models.PositiveIntegerField(default=1, editable=False)
    status_changed_at = models.DateTimeField(default=timezone.now, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name_plural = "topologies"
        constraints = [
            models.CheckConstraint(condition=Q(status__in=list(TopologyStatus.values)), name="topology_status_valid"),
            models.CheckConstraint(condition=Q(version__gte=1), name="topology_version_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        loaded = getattr(self, "_loaded_status", None)
        if loaded is None and self.status != TopologyStatus.PENDING and self._state.adding:
            raise StatusWriteError("a new topology starts pending")
        if loaded is not None and loaded != self.status:
            raise StatusWriteError("topology status changes only through topology_transition()")
        super().save(*args, **kwargs)

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, **kwargs: Any) -> Topology:
        instance = super().from_db(db, field_names, values, **kwargs)
        instance._loaded_status = instance.status  # type: ignore[attr-defined]
        return instance

    @property
    def short_id(self) -> str:
        """First 8 hex digits of the id: used in every Docker name of this topology."""
        return self.id.hex[:8]


class LAN(models.Model):
    """One bridge network of a topology. Internal (no route out) unless it is the DMZ."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    topology = models.ForeignKey(Topology, on_delete=models.CASCADE, related_name="lans")
    name = models.CharField(max_length=32, validators=[name_validator])
    subnet = models.CharField(
        max_length=18, validators=[validate_ipv4_network], help_text="IPv4 CIDR, e.g. 10.0.1.0/24"
    )
    is_dmz = models.BooleanField(default=False, help_text="The DMZ is the one LAN reachable from outside.")

    class Meta:
        ordering = ("topology", "name")
        verbose_name = "LAN"
        constraints = [models.UniqueConstraint(fields=["topology", "name"], name="uq_lan_topology_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.subnet})"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)


class Edge(models.Model):
    """A decky's membership of a LAN, with its address there. A decky with two or more edges is a bridge."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    topology = models.ForeignKey(Topology, on_delete=models.CASCADE, related_name="edges")
    decky = models.ForeignKey("deckies.Decky", on_delete=models.CASCADE, related_name="edges")
    lan = models.ForeignKey(LAN, on_delete=models.CASCADE, related_name="edges")
    ip = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True, help_text="Empty: allocated at deploy.")
    is_bridge = models.BooleanField(default=False)
    forwards_l3 = models.BooleanField(default=False, help_text="The decky routes between its LANs.")

    class Meta:
        ordering = ("topology", "lan__name")
        constraints = [
            models.UniqueConstraint(fields=["decky", "lan"], name="uq_edge_decky_lan"),
            models.UniqueConstraint(fields=["lan", "ip"], condition=Q(ip__isnull=False), name="uq_edge_lan_ip"),
        ]

    def __str__(self) -> str:
        return f"{self.decky_id} ↔ {self.lan_id}"


class TopologyStatusEvent(models.Model):
    """Append-only audit of status moves, written in the same transaction as the move."""

    topology = models.ForeignKey(Topology, on_delete=models.CASCADE, related_name="status_events")
    from_status = models.CharField(max_length=32, choices=TopologyStatus.choices)
    to_status = models.CharField(max_length=32, choices=TopologyStatus.choices)
    reason = models.TextField(blank=True, default="")
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-at", "-id")

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"
