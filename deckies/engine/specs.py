"""The plain data the engine works from: what should run, with no database behind it.

The apps turn their models into these frozen values (``deckies.plans``, ``topology.plans``) and hand them to the
renderer and the runtime, so the engine never imports a model, never queries, and can be tested with literals.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ServicePlan:
    """One service of a decky with its validated config."""

    slug: str
    config: Mapping[str, Any] = field(default_factory=dict)
    position: int = 0


@dataclass(frozen=True)
class NetworkPlan:
    """A fleet network: a user-defined bridge, or macvlan on a parent interface."""

    name: str
    subnet: str
    driver: str = "bridge"
    gateway: str | None = None
    parent_interface: str = ""

    @property
    def ip_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway_address(self) -> str:
        return self.gateway or str(next(self.ip_network.hosts()))


@dataclass(frozen=True)
class DeckyPlan:
    """One decky as it should run: identity, fingerprint, services, and where its address lives.

    A fleet decky has ``network`` and ``ip``; a topology decky has ``topology_id`` and gets its addresses from the
    topology's edges.
    """

    name: str
    hostname: str
    nmap_os: str
    services: tuple[ServicePlan, ...]
    ip: str | None = None
    mac_address: str = ""
    network: NetworkPlan | None = None
    topology_id: str | None = None
    distro: str = "debian"

    @property
    def slugs(self) -> list[str]:
        return [service.slug for service in sorted(self.services, key=lambda s: (s.position, s.slug))]


@dataclass(frozen=True)
class LanPlan:
    """One LAN of a topology (a bridge network; internal unless it is the DMZ)."""

    id: str
    name: str
    subnet: str
    is_dmz: bool = False

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)


@dataclass(frozen=True)
class EdgePlan:
    """A decky's membership of a LAN (``decky`` is its name, ``lan`` the LAN's id), with its address if fixed."""

    id: str
    decky: str
    lan: str
    ip: str | None = None
    is_bridge: bool = False
    forwards_l3: bool = False


@dataclass(frozen=True)
class TopologyPlan:
    """A whole topology as it should run."""

    id: str
    name: str
    lans: tuple[LanPlan, ...]
    deckies: tuple[DeckyPlan, ...]
    edges: tuple[EdgePlan, ...]


@dataclass(frozen=True)
class Scope:
    """Where a set of containers lives: a compose project on one engine, described by one compose file.

    The fleet of a host is one scope; each topology is one scope. Operations on one scope are serialised across
    processes by a lock file next to its compose file.
    """

    project: str
    url: str
    path: Path
    topology_id: str | None = None

    @property
    def is_fleet(self) -> bool:
        return self.topology_id is None
