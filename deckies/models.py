"""Deckies (fleet or topology), their services, Docker hosts, fleet networks and bring-your-own services."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from deckies.choices import DeckyState, HostStatus, NetworkDriver


class StateWriteError(RuntimeError):
    """Raised when code saves a decky whose state changed outside the state machine."""


DECKY_NAME_RE = r"^[a-z0-9-]{1,64}$"
SERVICE_SLUG_RE = r"^[a-z0-9_-]{1,64}$"
decky_name_validator = RegexValidator(DECKY_NAME_RE, "Use 1-64 lowercase letters, digits and hyphens.")
service_slug_validator = RegexValidator(SERVICE_SLUG_RE, "Use 1-64 lowercase letters, digits, '_' and '-'.")


def validate_ipv4_cidr(value: str) -> None:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValidationError(f"{value!r} is not a network in CIDR form ({exc}).") from exc
    if network.version != 4:
        raise ValidationError("Only IPv4 networks are supported.")


class Host(models.Model):
    """A Docker engine deckies can run on, addressed by ``docker_url`` (``unix://…`` or ``tcp://…``)."""

    uuid = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, unique=True)
    docker_url = models.CharField(max_length=255, help_text="e.g. unix:///var/run/docker.sock or tcp://10.0.0.5:2376")
    status = models.CharField(max_length=16, choices=HostStatus.choices, default=HostStatus.ACTIVE, db_index=True)
    last_seen = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)
        constraints = [
            models.CheckConstraint(condition=Q(status__in=list(HostStatus.values)), name="host_status_valid"),
        ]

    def __str__(self) -> str:
        return self.name


class Network(models.Model):
    """The LAN fleet deckies live on: a user-defined bridge by default, or macvlan on a parent interface."""

    name = models.CharField(max_length=64, unique=True, validators=[decky_name_validator])
    driver = models.CharField(max_length=16, choices=NetworkDriver.choices, default=NetworkDriver.BRIDGE)
    subnet = models.CharField(max_length=18, validators=[validate_ipv4_cidr], help_text="IPv4 CIDR")
    gateway = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True, help_text="Empty: first address.")
    parent_interface = models.CharField(max_length=32, blank=True, default="", help_text="macvlan parent, e.g. eth0")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)
        constraints = [
            models.CheckConstraint(condition=Q(driver__in=list(NetworkDriver.values)), name="network_driver_valid"),
            models.CheckConstraint(
                condition=~Q(driver=NetworkDriver.MACVLAN) | ~Q(parent_interface=""), name="network_macvlan_parent"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.subnet})"

    @property
    def ip_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway_address(self) -> str:
        return self.gateway or str(next(self.ip_network.hosts()))

    def clean(self) -> None:
        if self.gateway and self.subnet:
            try:
                inside = ipaddress.ip_address(self.gateway) in ipaddress.ip_network(self.subnet)
            except ValueError:
                return
            if not inside:
                raise ValidationError({"gateway": "The gateway must be inside the subnet."})


class Decky(models.Model):
    """One decoy host: a base container owning the IP, hostname and TCP/IP fingerprint, plus one container per
    service sharing its network namespace.

    A decky with ``topology`` empty belongs to the flat fleet (on ``network``); otherwise it belongs to that
    topology and its addresses are on its edges. Names are unique within their scope.
    The desired shape is these fields plus :class:`DeckyService` rows; ``state``/``last_error`` are runtime, and
    ``state`` moves only through :func:`deckies.states.decky_state_set` (``save()`` refuses any other change).
    """

    name = models.CharField(max_length=64, validators=[decky_name_validator])
    topology = models.ForeignKey(
        "topology.Topology", on_delete=models.CASCADE, null=True, blank=True, related_name="deckies"
    )
    network = models.ForeignKey(Network, on_delete=models.PROTECT, null=True, blank=True, related_name="deckies")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, null=True, blank=True, related_name="deckies")
    hostname = models.CharField(max_length=253, blank=True, default="", help_text="Empty: generated from the distro.")
    ip = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True, help_text="Empty: allocated.")
    mac_address = models.CharField(max_length=17, blank=True, default="", help_text="macvlan only; empty: random.")
    distro = models.CharField(max_length=32, default="debian")
    archetype = models.CharField(max_length=64, blank=True, default="")
    nmap_os = models.CharField(max_length=32, default="linux", help_text="OS fingerprint family (TTL etc.).")
    mutate_interval = models.DurationField(null=True, blank=True, help_text="Rotate services this often; empty: never.")
    last_mutated = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=32, choices=DeckyState.choices, default=DeckyState.PENDING, db_index=True)
    last_error = models.TextField(blank=True, default="")
    last_seen = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    #: The state as loaded or last saved; ``save()`` compares it with ``state`` (not a database column).
    _loaded_state: str | None = None

    class Meta:
        ordering = ("name",)
        verbose_name_plural = "deckies"
        permissions = [("operate_decky", "Can deploy, mutate and tear down deckies and topologies")]
        constraints = [
            models.UniqueConstraint(fields=["name"], condition=Q(topology__isnull=True), name="uq_fleet_decky_name"),
            models.UniqueConstraint(
                fields=["topology", "name"], condition=Q(topology__isnull=False), name="uq_topology_decky_name"
            ),
            models.UniqueConstraint(
                fields=["network", "ip"], condition=Q(ip__isnull=False, topology__isnull=True), name="uq_fleet_decky_ip"
            ),
            models.CheckConstraint(condition=Q(state__in=list(DeckyState.values)), name="decky_state_valid"),
        ]

    def __str__(self) -> str:
        return self.name if self.topology_id is None else f"{self.name} @ {self.topology_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        loaded = getattr(self, "_loaded_state", None)
        if loaded is None and self._state.adding and self.state != DeckyState.PENDING:
            raise StateWriteError("a new decky starts pending")
        if loaded is not None and loaded != self.state:
            raise StateWriteError("a decky's state changes only through deckies.states.decky_state_set()")
        super().save(*args, **kwargs)
        self._loaded_state = self.state

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, **kwargs: Any) -> Decky:
        instance = super().from_db(db, field_names, values, **kwargs)
        instance._loaded_state = instance.__dict__.get("state")
        return instance

    @property
    def is_fleet(self) -> bool:
        return self.topology_id is None

    @property
    def service_slugs(self) -> list[str]:
        return [service.slug for service in self.services.all()]


class DeckyService(models.Model):
    """One honeypot service on a decky, with its per-service config.

    A row per service (rather than a JSON list on the decky) gives the database the uniqueness rule, lets the
    API filter deckies by service with a join, lets the admin edit services inline, and lets one service change
    without rewriting the others. ``config`` is validated against the service's schema by the services layer.
    """

    decky = models.ForeignKey(Decky, on_delete=models.CASCADE, related_name="services")
    slug = models.CharField(max_length=64, validators=[service_slug_validator])
    config = models.JSONField(default=dict, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("decky", "position", "slug")
        verbose_name = "decky service"
        constraints = [models.UniqueConstraint(fields=["decky", "slug"], name="uq_decky_service")]

    def __str__(self) -> str:
        return self.slug


class CustomService(models.Model):
    """A bring-your-own service: any image, optional command and ports, usable on any decky like a built-in."""

    slug = models.CharField(max_length=64, unique=True, validators=[service_slug_validator])
    image = models.CharField(max_length=255)
    command = models.JSONField(default=list, blank=True, help_text='argv list, e.g. ["nginx", "-g", "daemon off;"]')
    ports = models.JSONField(default=list, blank=True, help_text="TCP ports, e.g. [8080, 8443]")
    description = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("slug",)

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        if not isinstance(self.command, list) or not all(isinstance(arg, str) for arg in self.command):
            raise ValidationError({"command": "The command must be a list of strings."})
        if not isinstance(self.ports, list) or not all(
            isinstance(port, int) and 1 <= port <= 65535 for port in self.ports
        ):
            raise ValidationError({"ports": "Ports must be a list of integers between 1 and 65535."})


__all__ = ["CustomService", "Decky", "DeckyService", "Host", "Network"]
