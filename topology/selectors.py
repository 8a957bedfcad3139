"""Reads of topologies and their children; each selector joins what its callers render.

Every child selector is scoped to one topology: a LAN, decky or edge of another topology is reported missing
(404), never returned. Malformed ids are "not found" too, so a path never turns into a 500.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import CharField, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import Concat

from deckies.models import Decky
from deckies.selectors import DeckyNotFoundError
from decnet_site.exceptions import InvalidInputError, NotFoundError
from lifecycle.models import DeckyLifecycle
from topology.exceptions import TopologyNotFoundError
from topology.filtersets import TopologyFilterSet
from topology.models import LAN, Edge, Topology, TopologyStatusEvent
from topology.validation import Issue, validate_topology


class LANNotFoundError(NotFoundError):
    """No LAN of this topology has this name or id (404)."""

    code = "lan_not_found"


class EdgeNotFoundError(NotFoundError):
    """No edge of this topology has this id (404)."""

    code = "edge_not_found"


def _uuid(value: uuid.UUID | str) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def topology_list(*, filters: Mapping[str, Any] | None = None) -> QuerySet[Topology]:
    """Topologies, newest first, filtered by :class:`TopologyFilterSet`; bad filter values raise
    ``ValidationError`` (400)."""
    queryset = Topology.objects.all()
    if filters:
        filterset = TopologyFilterSet(data=filters, queryset=queryset)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors.get_json_data())
        queryset = filterset.qs
    return queryset.order_by("-created_at", "name")


def topology_get(*, topology_id: uuid.UUID | str) -> Topology:
    """The topology ``topology_id``; raises :class:`TopologyNotFoundError` (also for a malformed id)."""
    parsed = _uuid(topology_id)
    topology = Topology.objects.filter(pk=parsed).first() if parsed else None
    if topology is None:
        raise TopologyNotFoundError(f"topology {topology_id} does not exist")
    return topology


def _lifecycle_key_prefix(topology_id: uuid.UUID) -> str:
    # Topology deckies' lifecycle rows are keyed ``t:<topology id>:<name>`` (Decky.lifecycle_key).
    return f"t:{topology_id}:"


def topology_decky_list(*, topology_id: uuid.UUID | str) -> QuerySet[Decky]:
    """The topology's deckies by name, with services, edges (and their LANs), the topology, and the id of each
    decky's newest lifecycle row (``latest_lifecycle_id``). Raises TopologyNotFoundError."""
    topology = topology_get(topology_id=topology_id)
    newest = DeckyLifecycle.objects.filter(
        decky_name=Concat(Value(_lifecycle_key_prefix(topology.pk)), OuterRef("name"), output_field=CharField())
    ).order_by("-started_at", "-id")
    return (
        Decky.objects.filter(topology=topology)
        .select_related("topology", "host")
        .prefetch_related("services", Prefetch("edges", queryset=Edge.objects.select_related("lan")))
        .annotate(latest_lifecycle_id=Subquery(newest.values("id")[:1]))
        .order_by("name")
    )


def topology_decky_get(*, topology_id: uuid.UUID | str, name: str) -> Decky:
    """The decky ``name`` of the topology, as :func:`topology_decky_list` loads it; raises TopologyNotFoundError
    or ``DeckyNotFoundError``."""
    decky = topology_decky_list(topology_id=topology_id).filter(name=name).first()
    if decky is None:
        raise DeckyNotFoundError(f"decky {name!r} does not exist in topology {topology_id}", decky_name=name)
    return decky


def topology_detail_get(*, topology_id: uuid.UUID | str) -> Topology:
    """The topology with its LANs, deckies (as :func:`topology_decky_list`) and edges prefetched."""
    topology = topology_get(topology_id=topology_id)
    edges = Edge.objects.select_related("decky", "lan", "topology").order_by("decky__name", "lan__name")
    return (
        Topology.objects.filter(pk=topology.pk)
        .prefetch_related(
            Prefetch("lans", queryset=LAN.objects.select_related("topology").order_by("name")),
            Prefetch("deckies", queryset=topology_decky_list(topology_id=topology.pk)),
            Prefetch("edges", queryset=edges),
        )
        .get()
    )


def lan_list(*, topology_id: uuid.UUID | str) -> QuerySet[LAN]:
    """The topology's LANs by name; raises TopologyNotFoundError."""
    topology = topology_get(topology_id=topology_id)
    return LAN.objects.filter(topology=topology).select_related("topology").order_by("name")


def lan_get(*, topology_id: uuid.UUID | str, ref: str) -> LAN:
    """The topology's LAN whose name, or else id, is ``ref``; raises TopologyNotFoundError or LANNotFoundError."""
    lans = lan_list(topology_id=topology_id)
    lan = lans.filter(name=ref).first()
    if lan is None and (parsed := _uuid(ref)) is not None:
        lan = lans.filter(pk=parsed).first()
    if lan is None:
        raise LANNotFoundError(f"LAN {ref!r} does not exist in topology {topology_id}", lan=ref)
    return lan


def edge_list(*, topology_id: uuid.UUID | str) -> QuerySet[Edge]:
    """The topology's edges ordered by decky then LAN name; raises TopologyNotFoundError."""
    topology = topology_get(topology_id=topology_id)
    return (
        Edge.objects.filter(topology=topology)
        .select_related("decky", "lan", "topology")
        .order_by("decky__name", "lan__name")
    )


def edge_get(*, topology_id: uuid.UUID | str, edge_id: uuid.UUID | str) -> Edge:
    """One edge of the topology; raises TopologyNotFoundError or EdgeNotFoundError."""
    parsed = _uuid(edge_id)
    edge = edge_list(topology_id=topology_id).filter(pk=parsed).first() if parsed else None
    if edge is None:
        raise EdgeNotFoundError(f"edge {edge_id} does not exist in topology {topology_id}")
    return edge


def edge_endpoints_get(*, topology_id: uuid.UUID | str, decky: str, lan: str) -> tuple[Decky, LAN]:
    """The decky (by name) and LAN (by name or id) a new edge of the topology joins.

    Both are references in a request body, so a missing one is bad input (400, naming the field), not 404.
    Raises TopologyNotFoundError for the topology itself.
    """
    topology = topology_get(topology_id=topology_id)
    found_decky = Decky.objects.filter(topology=topology, name=decky).first()
    try:
        found_lan: LAN | None = lan_get(topology_id=topology.pk, ref=lan)
    except LANNotFoundError:
        found_lan = None
    problems: dict[str, list[str]] = {}
    if found_decky is None:
        problems["decky"] = [f"no decky named {decky!r} in this topology"]
    if found_lan is None:
        problems["lan"] = [f"no LAN named (or with id) {lan!r} in this topology"]
    if found_decky is None or found_lan is None:
        raise InvalidInputError("the decky and the LAN must both belong to this topology", fields=problems)
    return found_decky, found_lan


def status_event_list(*, topology_id: uuid.UUID | str) -> QuerySet[TopologyStatusEvent]:
    """The topology's status moves, newest first; raises TopologyNotFoundError."""
    topology = topology_get(topology_id=topology_id)
    return TopologyStatusEvent.objects.filter(topology=topology).order_by("-at", "-id")


def topology_validate(*, topology_id: uuid.UUID | str) -> list[Issue]:
    """Every validation issue of the topology as it stands (see :mod:`topology.validation`); reads only."""
    return validate_topology(topology_get(topology_id=topology_id))
