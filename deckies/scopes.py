"""From models to the engine's plain data, and which scope (fleet of a host, or a topology) a decky lives in.

The engine takes :mod:`deckies.engine.specs` values; this module builds them from the database. A decky of the flat
fleet lives in its host's fleet scope, handled here. A topology decky lives in its topology's scope, which only the
``topology`` app knows how to render (LANs, edges): it registers a :class:`ScopeProvider` at start-up
(:func:`register_topology_provider`), so operations on any decky go through :func:`provider_for` without this app
importing the topology app.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from django.conf import settings

from deckies.catalogue.services import ServiceSpec
from deckies.choices import DEPLOYED_STATES
from deckies.engine import compose, runtime
from deckies.engine.readiness import ServiceCheck
from deckies.engine.specs import DeckyPlan, NetworkPlan, Scope, ServicePlan
from deckies.models import Decky, Host, Network
from deckies.services import custom_service_specs, service_spec
from decnet_site.exceptions import UnprocessableError


def network_plan(network: Network) -> NetworkPlan:
    return NetworkPlan(
        name=network.name,
        subnet=network.subnet,
        driver=str(network.driver),
        gateway=network.gateway or None,
        parent_interface=network.parent_interface,
    )


def decky_plan(decky: Decky) -> DeckyPlan:
    """The engine's view of ``decky`` (its services, network and host should be loaded with it)."""
    return DeckyPlan(
        name=decky.name,
        hostname=decky.hostname or decky.name,
        nmap_os=decky.nmap_os,
        services=tuple(
            ServicePlan(slug=row.slug, config=dict(row.config or {}), position=row.position)
            for row in decky.services.all()
        ),
        ip=None if decky.ip is None else str(decky.ip),
        mac_address=decky.mac_address,
        network=None if decky.network is None else network_plan(decky.network),
        topology_id=None if decky.topology_id is None else str(decky.topology_id),
        distro=decky.distro,
    )


def host_url(host: Host | None) -> str:
    """The Docker engine URL of ``host`` (None: the local engine, ``DECNET_DOCKER_URL``)."""
    return host.docker_url if host is not None and host.docker_url else str(settings.DECNET_DEFAULT_DOCKER_URL)


def ready_checks(scope: Scope, decky: DeckyPlan, custom: dict[str, ServiceSpec] | None = None) -> list[ServiceCheck]:
    """What "ready" means for ``decky``: each service's container running and its TCP ports accepting."""
    custom = custom_service_specs() if custom is None else custom
    checks = []
    for slug in decky.slugs:
        spec = service_spec(slug, custom)
        tcp = tuple(port for port in spec.ports if port not in spec.udp_ports)
        checks.append(ServiceCheck(slug=slug, container=runtime.container_of(scope, decky.name, slug), tcp_ports=tcp))
    return checks


class ScopeProvider(Protocol):
    """How to reach and render the scope of a decky."""

    def scope(self, decky: Decky) -> Scope:
        """The compose project, engine and file the decky's containers belong to."""
        ...

    def render(self, decky: Decky) -> compose.RenderedProject:
        """The whole file of that scope, with ``decky`` as given (its desired state) and every other decky of the
        scope as stored."""
        ...


# --- the fleet --------------------------------------------------------------------------------------------------------


def _fleet_rows(host: Host | None) -> list[Decky]:
    rows = Decky.objects.filter(topology__isnull=True, state__in=list(DEPLOYED_STATES))
    rows = rows.filter(host=host) if host is not None else rows.filter(host__isnull=True)
    return list(rows.select_related("network", "host").prefetch_related("services"))


def fleet_plans(host: Host | None, *, include: Iterable[Decky] = (), exclude: Iterable[str] = ()) -> list[DeckyPlan]:
    """The fleet deckies a host's file holds: the deployed ones (state running/degraded), plus ``include`` (as
    given, so unsaved or just-committed changes render), minus the names in ``exclude``."""
    included = {decky.name: decky for decky in include}
    excluded = set(exclude)
    rows = [d for d in _fleet_rows(host) if d.name not in included and d.name not in excluded]
    rows += [d for name, d in included.items() if name not in excluded]
    return [decky_plan(d) for d in sorted(rows, key=lambda d: d.name)]


def fleet_scope(host: Host | None) -> Scope:
    return runtime.fleet_scope(host_url(host), None if host is None else host.name, None if host is None else host.pk)


def render_fleet(
    host: Host | None, *, include: Iterable[Decky] = (), exclude: Iterable[str] = ()
) -> compose.RenderedProject:
    """The fleet file of ``host`` (see :func:`fleet_plans`)."""
    return compose.render_fleet(fleet_plans(host, include=include, exclude=exclude), custom=custom_service_specs())


class FleetProvider:
    """Fleet deckies: the scope is their host's fleet."""

    def scope(self, decky: Decky) -> Scope:
        return fleet_scope(decky.host if decky.host_id is not None else None)

    def render(self, decky: Decky) -> compose.RenderedProject:
        return render_fleet(decky.host if decky.host_id is not None else None, include=[decky])


_fleet = FleetProvider()
_topology: ScopeProvider | None = None


def register_topology_provider(provider: ScopeProvider) -> None:
    """Called by the topology app at start-up."""
    global _topology
    _topology = provider


def provider_for(decky: Decky) -> ScopeProvider:
    """The provider of ``decky``'s scope; :class:`UnprocessableError` for a topology decky when no topology app is
    installed."""
    if decky.topology_id is None:
        return _fleet
    if _topology is None:
        raise UnprocessableError(f"decky {decky.name!r} belongs to a topology, and no topology support is installed")
    return _topology


def load_deckies(pks: Sequence[int]) -> list[Decky]:
    """Deckies as the engine side needs them: network, host and topology joined, services prefetched."""
    return list(
        Decky.objects.filter(pk__in=list(pks))
        .select_related("network", "host", "topology")
        .prefetch_related("services")
        .order_by("name")
    )
