"""Writes to topologies: creation, the status machine, and every edit of a topology or its children.

One versioned-edit entry point, :func:`topology_edit`: it locks the topology row (``SELECT … FOR UPDATE``), checks
the topology's status allows the edit, checks ``expected_version`` when given (else :class:`VersionConflict`, 409),
and bumps the version, all in the caller's transaction; the write happens under that lock. Every change of a
topology's shape goes through it (the API, the admin, the commands, live service changes of its deckies), so
concurrent writers holding the same version serialise on the lock and exactly one wins, and every change is
visible to other editors (and in the ``ETag``).
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from deckies import live as decky_live
from deckies import operations as decky_operations
from deckies import services as decky_services
from deckies.models import Decky
from decnet_site.exceptions import ConflictError, InvalidInputError, NotFoundError
from lifecycle.models import DeckyLifecycle
from lifecycle.services import event_emit
from topology.exceptions import TopologyNotEditableError, TopologyNotFoundError, VersionConflict
from topology.models import LAN, Edge, Topology, TopologyStatusEvent
from topology.status import (
    DELETABLE_STATUSES,
    EDITABLE_STATUSES,
    LIVE_STATUSES,
    TopologyStatus,
    assert_transition,
)

#: New LANs without an explicit subnet get the next free /24 of this pool.
LAN_SUBNET_POOL = ipaddress.IPv4Network("10.0.0.0/16")
#: A topology decky's services may change while nothing runs yet (pending) or while it runs (active, degraded).
SERVICE_CHANGE_STATUSES: frozenset[str] = EDITABLE_STATUSES | LIVE_STATUSES


#: Topologies whose versioned edit is open in this context (see :func:`topology_edit`).
_editing: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("topology_editing", default=frozenset())


@dataclass(frozen=True)
class Edited[T]:
    """What a versioned edit wrote, and the topology's version after it (the new ``ETag``)."""

    value: T
    version: int


@contextlib.contextmanager
def topology_edit(
    topology_id: uuid.UUID | str,
    expected_version: int | None,
    *,
    statuses: frozenset[str] = EDITABLE_STATUSES,
    what: str = "LANs, deckies and edges",
) -> Iterator[Topology]:
    """Lock the topology, require one of ``statuses``, check ``expected_version`` (None: not checked) and bump the
    version; yields the locked topology carrying its new version. Opens a transaction (or joins the caller's).

    Raises :class:`TopologyNotFoundError`, :class:`TopologyNotEditableError` (409) and :class:`VersionConflict`.

    Edits nest: inside an edit of the same topology (the admin saving a topology with its inlines), an inner edit
    checks the status but neither the version nor bumps it again, so one save is one version.
    """
    key = str(topology_id)
    with transaction.atomic():
        topology = Topology.objects.select_for_update().filter(pk=topology_id).first()
        if topology is None:
            raise TopologyNotFoundError(f"topology {topology_id} does not exist")
        if topology.status not in statuses:
            allowed = ", ".join(sorted(statuses))
            raise TopologyNotEditableError(
                f"topology is {topology.status}; its {what} can change only while it is {allowed}",
                status=topology.status,
            )
        outer = _editing.get()
        if key in outer:
            yield topology
            return
        if expected_version is not None and topology.version != expected_version:
            raise VersionConflict(current=topology.version, expected=expected_version)
        Topology.objects.filter(pk=topology.pk).update(version=F("version") + 1, updated_at=timezone.now())
        topology.version += 1
        token = _editing.set(outer | {key})
        try:
            yield topology
        finally:
            _editing.reset(token)


# --- topologies -------------------------------------------------------------------------------------------------------


def topology_create(*, name: str, description: str = "") -> Topology:
    """Create a pending topology at version 1; a taken name is a :class:`ConflictError` (409)."""
    topology = Topology(name=name, description=description)
    if Topology.objects.filter(name=name).exists():
        raise ConflictError(f"a topology named {name!r} already exists", name=name)
    topology.full_clean()
    with transaction.atomic():
        topology.save()
        event_emit(topic=f"topology.{topology.pk}.created", type="created", payload={"name": name})
    return topology


def topology_update(
    *, topology_id: uuid.UUID | str, expected_version: int | None = None, **fields: Any
) -> Edited[Topology]:
    """Rename or re-describe a topology (pending only), as a versioned edit."""
    unknown = set(fields) - {"name", "description"}
    if unknown:
        raise InvalidInputError(f"cannot update {sorted(unknown)} on a topology")
    with topology_edit(topology_id, expected_version) as topology:
        if "name" in fields and Topology.objects.filter(name=fields["name"]).exclude(pk=topology.pk).exists():
            raise ConflictError(f"a topology named {fields['name']!r} already exists", name=fields["name"])
        for key, value in fields.items():
            setattr(topology, key, value)
        topology.full_clean()
        Topology.objects.filter(pk=topology.pk).update(**fields, updated_at=timezone.now())
    return Edited(topology, topology.version)


def topology_transition(*, topology_id: uuid.UUID | str, to: str, reason: str = "") -> Topology:
    """Move a topology to status ``to`` if the machine allows it, appending a status event atomically.

    The write is a compare-and-set on the current status under the row lock, so two concurrent movers cannot both
    succeed. Raises :class:`TopologyNotFoundError` or :class:`~topology.status.TopologyStatusError` (409).
    """
    with transaction.atomic():
        topology = Topology.objects.select_for_update().filter(pk=topology_id).first()
        if topology is None:
            raise TopologyNotFoundError(f"topology {topology_id} does not exist")
        current = topology.status
        assert_transition(current, to)
        now = timezone.now()
        Topology.objects.filter(pk=topology.pk, status=current).update(status=to, status_changed_at=now, updated_at=now)
        TopologyStatusEvent.objects.create(topology=topology, from_status=current, to_status=to, reason=reason, at=now)
        event_emit(
            topic=f"topology.{topology.pk}.status",
            type="status",
            payload={"topology_id": str(topology.pk), "from": current, "to": to, "reason": reason},
        )
        topology.refresh_from_db()
    return topology


def topology_delete(*, topology_id: uuid.UUID | str, expected_version: int | None = None) -> None:
    """Delete a topology and its LANs, deckies, edges and status events (pending, failed or torn down only).

    With ``expected_version`` the topology must still be at that version (else :class:`VersionConflict`).
    """
    with topology_edit(topology_id, expected_version, statuses=DELETABLE_STATUSES, what="record") as topology:
        event_emit(topic=f"topology.{topology.pk}.deleted", type="deleted", payload={"name": topology.name})
        topology.delete()


def reserved_subnets(*, exclude_topology: uuid.UUID | str | None = None) -> list[ipaddress.IPv4Network]:
    """Subnets claimed by every topology that is not torn down (so a new LAN never overlaps a live one)."""
    lans = LAN.objects.exclude(topology__status=TopologyStatus.TORN_DOWN)
    if exclude_topology is not None:
        lans = lans.exclude(topology_id=exclude_topology)
    return [ipaddress.IPv4Network(subnet) for subnet in lans.values_list("subnet", flat=True)]


def next_free_subnet(taken: Iterable[ipaddress.IPv4Network], pool: ipaddress.IPv4Network = LAN_SUBNET_POOL) -> str:
    """The first /24 of ``pool`` overlapping none of ``taken``; :class:`ConflictError` when the pool is full."""
    taken = list(taken)
    for candidate in pool.subnets(new_prefix=24):
        if not any(candidate.overlaps(other) for other in taken):
            return str(candidate)
    raise ConflictError(f"no free /24 left in {pool}")


# --- LANs -------------------------------------------------------------------------------------------------------------


def lan_create(
    *,
    topology_id: uuid.UUID | str,
    name: str,
    subnet: str | None = None,
    is_dmz: bool = False,
    expected_version: int | None = None,
) -> Edited[LAN]:
    """Add a LAN (pending topologies only); without ``subnet``, the next free /24 of 10.0.0.0/16."""
    with topology_edit(topology_id, expected_version) as topology:
        if LAN.objects.filter(topology=topology, name=name).exists():
            raise ConflictError(f"LAN {name!r} already exists in this topology")
        lan = LAN(topology=topology, name=name, subnet=subnet or next_free_subnet(reserved_subnets()), is_dmz=is_dmz)
        lan.full_clean()
        lan.save()
    return Edited(lan, topology.version)


def _lan(lan_id: uuid.UUID | str) -> LAN:
    lan = LAN.objects.filter(pk=lan_id).first()
    if lan is None:
        raise NotFoundError(f"LAN {lan_id} does not exist")
    return lan


def lan_update(*, lan_id: uuid.UUID | str, expected_version: int | None = None, **fields: Any) -> Edited[LAN]:
    """Change a LAN's name, subnet or DMZ flag (pending topologies only)."""
    allowed = {"name", "subnet", "is_dmz"}
    if set(fields) - allowed:
        raise InvalidInputError(f"cannot update {sorted(set(fields) - allowed)} on a LAN")
    lan = _lan(lan_id)
    with topology_edit(lan.topology_id, expected_version) as topology:
        if "name" in fields and LAN.objects.filter(topology=topology, name=fields["name"]).exclude(pk=lan.pk).exists():
            raise ConflictError(f"LAN {fields['name']!r} already exists in this topology")
        for key, value in fields.items():
            setattr(lan, key, value)
        lan.full_clean()
        lan.save()
    return Edited(lan, topology.version)


def lan_delete(*, lan_id: uuid.UUID | str, expected_version: int | None = None) -> Edited[None]:
    """Remove a LAN and its edges; refused (400) when a decky would be left on no LAN."""
    lan = _lan(lan_id)
    with topology_edit(lan.topology_id, expected_version) as topology:
        stranded = [
            edge.decky.name
            for edge in lan.edges.select_related("decky")
            if not Edge.objects.filter(decky_id=edge.decky_id).exclude(lan=lan).exists()
        ]
        if stranded:
            raise InvalidInputError(
                f"deleting LAN {lan.name!r} would leave deckies on no LAN: {', '.join(sorted(stranded))}",
                deckies=sorted(stranded),
            )
        lan.delete()
    return Edited(None, topology.version)


# --- edges ------------------------------------------------------------------------------------------------------------

EDGE_EDITABLE_FIELDS = frozenset({"ip", "is_bridge", "forwards_l3"})


def edge_create(
    *,
    topology_id: uuid.UUID | str,
    decky_id: int,
    lan_id: uuid.UUID | str,
    ip: str | None = None,
    is_bridge: bool = False,
    forwards_l3: bool = False,
    expected_version: int | None = None,
) -> Edited[Edge]:
    """Attach a decky to a LAN of the same topology (pending only); both must belong to it (else 400)."""
    with topology_edit(topology_id, expected_version) as topology:
        decky = Decky.objects.filter(pk=decky_id, topology=topology).first()
        lan = LAN.objects.filter(pk=lan_id, topology=topology).first()
        if decky is None or lan is None:
            raise InvalidInputError("the decky and the LAN must both belong to this topology")
        if Edge.objects.filter(decky=decky, lan=lan).exists():
            raise ConflictError(f"decky {decky.name!r} is already on LAN {lan.name!r}")
        if ip is not None and ipaddress.IPv4Address(ip) not in lan.network:
            raise InvalidInputError(f"{ip} is not inside LAN {lan.name!r} ({lan.subnet})")
        edge = Edge(topology=topology, decky=decky, lan=lan, ip=ip, is_bridge=is_bridge, forwards_l3=forwards_l3)
        edge.full_clean()
        edge.save()
    return Edited(edge, topology.version)


def _edge(edge_id: uuid.UUID | str) -> Edge:
    edge = Edge.objects.select_related("lan").filter(pk=edge_id).first()
    if edge is None:
        raise NotFoundError(f"edge {edge_id} does not exist")
    return edge


def edge_update(*, edge_id: uuid.UUID | str, expected_version: int | None = None, **fields: Any) -> Edited[Edge]:
    """Change an edge's address or flags (pending only); the address must be inside the LAN (else 400)."""
    unknown = set(fields) - EDGE_EDITABLE_FIELDS
    if unknown:
        raise InvalidInputError(f"cannot update {sorted(unknown)} on an edge")
    edge = _edge(edge_id)
    with topology_edit(edge.topology_id, expected_version) as topology:
        ip = fields.get("ip", edge.ip)
        if ip is not None and ipaddress.IPv4Address(ip) not in edge.lan.network:
            raise InvalidInputError(f"{ip} is not inside LAN {edge.lan.name!r} ({edge.lan.subnet})")
        for key, value in fields.items():
            setattr(edge, key, value)
        edge.full_clean()
        edge.save()
    return Edited(edge, topology.version)


def edge_delete(*, edge_id: uuid.UUID | str, expected_version: int | None = None) -> Edited[None]:
    """Detach a decky from a LAN (pending only); the decky itself stays."""
    edge = _edge(edge_id)
    with topology_edit(edge.topology_id, expected_version) as topology:
        edge.delete()
    return Edited(None, topology.version)


# --- deckies of a topology --------------------------------------------------------------------------------------------


def topology_decky_create(
    *, topology_id: uuid.UUID | str, expected_version: int | None = None, **fields: Any
) -> Edited[Decky]:
    """Add a decky to a pending topology (see :func:`deckies.services.decky_create` for ``fields``)."""
    with topology_edit(topology_id, expected_version) as topology:
        decky = decky_services.decky_create(topology_id=topology.pk, **fields)
    return Edited(decky, topology.version)


def topology_decky_update(
    *,
    decky: Decky,
    expected_version: int | None = None,
    services: Sequence[str] | None = None,
    service_config: Any = None,
    **fields: Any,
) -> Edited[Decky]:
    """Change a decky of a pending topology (see :func:`deckies.services.decky_update`)."""
    assert decky.topology_id is not None
    with topology_edit(decky.topology_id, expected_version) as topology:
        updated = decky_services.decky_update(decky=decky, services=services, service_config=service_config, **fields)
    return Edited(updated, topology.version)


def topology_decky_delete(*, decky: Decky, expected_version: int | None = None) -> Edited[None]:
    """Remove a decky (and its edges) from a pending topology."""
    assert decky.topology_id is not None
    with topology_edit(decky.topology_id, expected_version) as topology:
        decky_services.decky_delete(decky=decky)
    return Edited(None, topology.version)


def _service_change(decky: Decky, expected_version: int | None) -> contextlib.AbstractContextManager[Topology]:
    assert decky.topology_id is not None
    return topology_edit(
        decky.topology_id, expected_version, statuses=SERVICE_CHANGE_STATUSES, what="deckies' services"
    )


def topology_decky_service_add(
    *,
    decky: Decky,
    slug: str,
    config: dict[str, Any] | None = None,
    expected_version: int | None = None,
    actor: str | None = None,
) -> Edited[list[str]]:
    """Add one service to a topology decky: live (only that container starts) while the topology is active or
    degraded, desired state only while it is pending; refused (409) in any other status. Versioned edit."""
    with _service_change(decky, expected_version) as topology:
        row = decky_live.prepare_service_add(
            decky=decky, slug=slug, config=config, live=topology.status in LIVE_STATUSES, actor=actor
        )
    return Edited(decky_live.complete(row), topology.version)


def topology_decky_service_remove(
    *, decky: Decky, slug: str, expected_version: int | None = None, actor: str | None = None
) -> Edited[list[str]]:
    """Remove one service from a topology decky (like :func:`topology_decky_service_add`)."""
    with _service_change(decky, expected_version) as topology:
        row = decky_live.prepare_service_remove(
            decky=decky, slug=slug, live=topology.status in LIVE_STATUSES, actor=actor
        )
    return Edited(decky_live.complete(row), topology.version)


def topology_decky_mutate(
    *, decky: Decky, run_inline: bool = False, actor: str | None = None, expected_version: int | None = None
) -> DeckyLifecycle:
    """Rotate a topology decky's services (applied live while the topology is active or degraded)."""
    with _service_change(decky, expected_version) as topology:
        return decky_operations.mutate_request(
            decky=decky, live=topology.status in LIVE_STATUSES, run_inline=run_inline, actor=actor
        )


def topology_observe(report: Any, deckies: Sequence[Decky]) -> None:
    """After a reconciliation: an active topology with a drifted decky becomes degraded (the reason names them), a
    degraded one whose deckies are all fine again becomes active. Topologies with an operation open are left alone."""
    entries_by_topology: dict[str, list[Any]] = {}
    for entry in report.deckies:
        if entry.topology_id is not None:
            entries_by_topology.setdefault(entry.topology_id, []).append(entry)
    for topology_id, entries in entries_by_topology.items():
        if any(entry.busy for entry in entries):
            continue
        sick = [entry for entry in entries if entry.wanted and not entry.healthy]
        status = Topology.objects.filter(pk=topology_id).values_list("status", flat=True).first()
        if sick and status == TopologyStatus.ACTIVE:
            reason = "reconcile: " + "; ".join(f"{e.name}: {e.reason()}" for e in sick[:8])
            topology_transition(topology_id=topology_id, to=TopologyStatus.DEGRADED, reason=reason)
        elif not sick and status == TopologyStatus.DEGRADED and all(e.wanted for e in entries):
            topology_transition(
                topology_id=topology_id, to=TopologyStatus.ACTIVE, reason="reconcile: every decky healthy"
            )
