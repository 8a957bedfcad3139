"""Desired-state builders shared by the engine tests: deckies made through the services layer, as the API would."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypedDict

from deckies import live, scopes
from deckies.engine import compose, runtime
from deckies.engine.specs import Scope
from deckies.models import CustomService, Decky, Host, Network
from deckies.services import decky_create
from topology import plans
from topology.models import LAN, Edge, Topology


class DeckySpec(TypedDict):
    name: str
    nmap_os: str
    distro: str
    hostname: str
    services: list[str]
    service_config: dict[str, dict[str, Any]]


#: Three deckies with different OS families and 2+ services each (ssh/http, ftp/mysql, redis/smtp).
FLEET_TRIO: tuple[DeckySpec, ...] = (
    {
        "name": "web-01",
        "nmap_os": "linux",
        "distro": "debian",
        "hostname": "SRV-ATLAS-42",
        "services": ["ssh", "http"],
        "service_config": {"ssh": {"password": "hunter2"}, "http": {"server_header": "Apache/2.4.58 (Ubuntu)"}},
    },
    {
        "name": "win-01",
        "nmap_os": "windows",
        "distro": "debian",
        "hostname": "SRV-BIRCH-17",
        "services": ["ftp", "mysql"],
        "service_config": {"ftp": {"banner": "Microsoft FTP Service"}},
    },
    {
        "name": "iot-01",
        "nmap_os": "embedded",
        "distro": "alpine",
        "hostname": "cobalt-23",
        "services": ["redis", "smtp"],
        "service_config": {},
    },
)


def make_network(name: str, subnet: str, *, driver: str = "bridge", parent: str = "") -> Network:
    return Network.objects.create(name=name, subnet=subnet, driver=driver, parent_interface=parent)


def make_fleet(
    network: Network,
    ips: Sequence[str],
    *,
    prefix: str = "",
    macs: Sequence[str] = (),
    extra_services: dict[str, list[str]] | None = None,
) -> list[Decky]:
    """The :data:`FLEET_TRIO` on ``network`` at ``ips`` (names prefixed with ``prefix``)."""
    deckies = []
    for index, spec in enumerate(FLEET_TRIO):
        services = [*spec["services"], *(extra_services or {}).get(spec["name"], [])]
        decky = decky_create(
            name=f"{prefix}{spec['name']}",
            services=services,
            service_config=spec["service_config"],
            network=network,
            ip=ips[index],
            hostname=spec["hostname"],
            distro=spec["distro"],
            nmap_os=spec["nmap_os"],
        )
        if macs:
            decky.mac_address = macs[index]
            decky.save(update_fields=["mac_address"])
        deckies.append(decky)
    return reload(deckies)


def reload(deckies: Sequence[Decky]) -> list[Decky]:
    """Fresh instances with what the engine reads prefetched (as callers are asked to pass them)."""
    ids = [d.pk for d in deckies]
    rows = Decky.objects.filter(pk__in=ids).select_related("network", "host", "topology").prefetch_related("services")
    by_id = {d.pk: d for d in rows}
    return [by_id[i] for i in ids]


def make_custom_service() -> CustomService:
    return CustomService.objects.create(
        slug="tarpit_byos", image="decnet/base:1", command=["sleep", "infinity"], ports=[2222]
    )


def make_topology(
    subnets: tuple[str, str], *, topology_id: uuid.UUID | None = None, name: str = "maze", dmz_ip: str | None = None
) -> Topology:
    """Two LANs (``dmz`` internet-facing, ``corp`` internal) and three deckies:
    ``gw`` bridges both LANs (forwards L3, addresses allocated), ``web`` sits in the DMZ and ``db`` in corp."""
    topology = Topology.objects.create(id=topology_id or uuid.uuid4(), name=name)
    dmz = LAN.objects.create(topology=topology, name="dmz", subnet=subnets[0], is_dmz=True)
    corp = LAN.objects.create(topology=topology, name="corp", subnet=subnets[1], is_dmz=False)
    gw = decky_create(name="gw", services=["ssh"], topology_id=topology.pk, hostname="gw01", nmap_os="linux")
    web = decky_create(
        name="web",
        services=["http", "ftp"],
        topology_id=topology.pk,
        hostname="web01",
        nmap_os="windows",
        distro="debian",
    )
    db = decky_create(
        name="db",
        services=["mysql", "redis"],
        topology_id=topology.pk,
        hostname="db01",
        nmap_os="embedded",
        distro="alpine",
    )
    Edge.objects.create(topology=topology, decky=gw, lan=dmz, ip=None, is_bridge=True, forwards_l3=True)
    Edge.objects.create(topology=topology, decky=gw, lan=corp, ip=None, is_bridge=True, forwards_l3=True)
    Edge.objects.create(topology=topology, decky=web, lan=dmz, ip=dmz_ip)
    corp_hosts = list(corp.network.hosts())
    Edge.objects.create(topology=topology, decky=db, lan=corp, ip=str(corp_hosts[min(19, len(corp_hosts) - 1)]))
    return Topology.objects.get(pk=topology.pk)


# --- the engine, driven with models as the operations do it (no lifecycle rows, no readiness wait) ---


def host_of(deckies: Sequence[Decky]) -> Host | None:
    hosts = {d.host_id for d in deckies}
    assert len(hosts) == 1, "these helpers work on the deckies of one host"
    return deckies[0].host if deckies[0].host_id is not None else None


def fleet_yaml(include: Sequence[Decky] = (), *, host: Host | None = None) -> str:
    """The fleet file of ``host`` rendered with ``include`` (as deploying them would render it)."""
    return scopes.render_fleet(host, include=include).yaml


def fleet_scope(deckies: Sequence[Decky] = ()) -> Scope:
    return scopes.fleet_scope(host_of(deckies) if deckies else None)


def deploy(deckies: Sequence[Decky]) -> None:
    """Bring these fleet deckies up as the deploy operation does (one compose call)."""
    host = host_of(deckies)
    runtime.deploy_deckies(
        scopes.fleet_scope(host), lambda: scopes.render_fleet(host, include=deckies), [d.name for d in deckies]
    )


def teardown(deckies: Sequence[Decky]) -> None:
    """Remove these fleet deckies' containers as the teardown operation does."""
    host = host_of(deckies)
    names = [d.name for d in deckies]
    runtime.teardown_deckies(
        scopes.fleet_scope(host),
        lambda: scopes.render_fleet(host, exclude=names),
        lambda: scopes.render_fleet(host, include=deckies),
        names,
    )


def add_service(decky: Decky, slug: str) -> None:
    provider = scopes.provider_for(decky)
    runtime.add_service(provider.scope(decky), lambda: provider.render(decky), decky.name, slug)


def remove_service(decky: Decky, slug: str) -> None:
    provider = scopes.provider_for(decky)
    runtime.remove_service(provider.scope(decky), lambda: provider.render(decky), decky.name, slug)


def containers(decky: Decky) -> list[runtime.ContainerState]:
    return runtime.containers(scopes.provider_for(decky).scope(decky), decky.name)


def topology_yaml(topology: Topology) -> str:
    return plans.render_topology(topology).yaml


def topology_rendered(topology: Topology) -> compose.RenderedProject:
    return plans.render_topology(topology)


def deploy_topology(topology: Topology) -> runtime.TopologyDeployReport:
    return runtime.deploy_project(plans.topology_scope(topology), lambda: plans.render_topology(topology))


def teardown_topology(topology: Topology) -> None:
    runtime.remove_project(plans.topology_scope(topology), lambda: plans.render_topology(topology))


def drop_file(decky: Decky, path: str, content: bytes, mode: int = 0o644, mtime: Any = None) -> str:
    scope, container = live.file_target(decky)
    return runtime.drop_file(scope, container, path, content, mode, mtime)


def delete_file(decky: Decky, path: str) -> str:
    scope, container = live.file_target(decky)
    return runtime.delete_file(scope, container, path)
