"""A topology as the engine sees it: plain data from its rows, its compose scope, and the scope provider that lets
the deckies app operate on topology deckies (registered at start-up, see :mod:`topology.apps`)."""

from __future__ import annotations

import uuid

from deckies.engine import compose, runtime
from deckies.engine.errors import RenderError
from deckies.engine.specs import EdgePlan, LanPlan, Scope, TopologyPlan
from deckies.models import Decky
from deckies.scopes import decky_plan, host_url
from deckies.services import custom_service_specs
from topology.models import LAN, Edge, Topology


def _deckies(topology_id: uuid.UUID | str) -> list[Decky]:
    return list(
        Decky.objects.filter(topology_id=topology_id).select_related("host", "network").prefetch_related("services")
    )


def topology_plan(topology: Topology, *, override: Decky | None = None) -> TopologyPlan:
    """The topology's desired state; ``override`` replaces the stored row of that decky (unsaved changes render)."""
    deckies = [d for d in _deckies(topology.pk) if override is None or d.pk != override.pk]
    if override is not None:
        deckies.append(override)
    return TopologyPlan(
        id=str(topology.pk),
        name=topology.name,
        lans=tuple(
            LanPlan(id=str(lan.pk), name=lan.name, subnet=lan.subnet, is_dmz=lan.is_dmz)
            for lan in LAN.objects.filter(topology=topology).order_by("name")
        ),
        deckies=tuple(decky_plan(d) for d in sorted(deckies, key=lambda d: d.name)),
        edges=tuple(
            EdgePlan(
                id=str(edge.pk),
                decky=edge.decky.name,
                lan=str(edge.lan_id),
                ip=None if edge.ip is None else str(edge.ip),
                is_bridge=edge.is_bridge,
                forwards_l3=edge.forwards_l3,
            )
            for edge in Edge.objects.filter(topology=topology).select_related("decky").order_by("pk")
        ),
    )


def topology_url(topology: Topology) -> str:
    """The engine a topology runs on: one compose project lives on one engine, that of its deckies' host (or the
    local engine). Raises :class:`RenderError` when its deckies are placed on different hosts."""
    hosts = {d.host_id: d.host for d in Decky.objects.filter(topology=topology).select_related("host")}
    placed = [host for key, host in hosts.items() if key is not None]
    if len(placed) > 1:
        raise RenderError("the deckies of one topology are placed on different hosts")
    return host_url(placed[0] if placed else None)


def topology_scope(topology: Topology) -> Scope:
    return runtime.topology_scope(topology_url(topology), topology.pk)


def render_topology(topology: Topology, *, override: Decky | None = None) -> compose.RenderedProject:
    """Deterministic compose YAML source for a topology: one bridge per LAN (internal unless DMZ). No Docker."""
    return compose.render_topology(topology_plan(topology, override=override), custom=custom_service_specs())


class TopologyProvider:
    """How the deckies app reaches and renders a topology decky's scope."""

    def scope(self, decky: Decky) -> Scope:
        return topology_scope(Topology.objects.get(pk=decky.topology_id or uuid.UUID(int=0)))

    def render(self, decky: Decky) -> compose.RenderedProject:
        return render_topology(Topology.objects.get(pk=decky.topology_id or uuid.UUID(int=0)), override=decky)
