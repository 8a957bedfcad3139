"""Writes to topologies: creation, the status machine, and version-checked child-row edits.

Concurrency contract for child writes (LANs, deckies, edges): the topology row is locked
(``SELECT … FOR UPDATE``) for the length of the transaction, then, when ``expected_version`` is given, the
version is bumped with a conditional ``UPDATE … WHERE version = expected``. Concurrent writers holding the same
expected version therefore serialise on the lock and exactly one wins; the others get :class:`VersionConflict`.
With ``expected_version=None`` nothing is checked and the version stays put.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from decnet_site.exceptions import ConflictError, InvalidInputError, NotFoundError
from lifecycle.services import event_emit
from topology.exceptions import TopologyNotEditableError, TopologyNotFoundError, VersionConflict
from topology.models import LAN, Edge, Topology, TopologyStatusEvent
from topology.status import DELETABLE_STATUSES, EDITABLE_STATUSES, TopologyStatus, assert_transition

#: New LANs without an explicit subnet get the next free /24 of this pool.
LAN_SUBNET_POOL = ipaddress.IPv4Network("10.0.0.0/16")


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


def topology_update(*, topology_id: uuid.UUID | str, expected_version: int | None = None, **fields: Any) -> Topology:
    """Rename or re-describe a topology (pending only), version-checked like any child write."""
    allowed = {"name", "description"}
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidInputError(f"cannot update {sorted(unknown)} on a topology")
    with transaction.atomic():
        topology = _lock_for_edit(topology_id, expected_version)
        if "name" in fields and Topology.objects.filter(name=fields["name"]).exclude(pk=topology.pk).exists():
            raise ConflictError(f"a topology named {fields['name']!r} already exists", name=fields["name"])
        for key, value in fields.items():
            setattr(topology, key, value)
        topology.full_clean()
        topology.save(update_fields=[*fields, "updated_at"])
    return topology


def topology_transition(*, topology_id: uuid.UUID | str, to: str, reason: str = "") -> Topology:
    """Move a topology to status ``to`` if the machine allows it, appending a status event atomically.

    The write is a compare-and-set on the current status, so two concurrent movers cannot both succeed.
    Raises :class:`TopologyNotFoundError` or :class:`~topology.status.TopologyStatusError` (409).
    """
    with transaction.atomic():
        topology = Topology.objects.select_for_update().filter(pk=topology_id).first()
        if topology is None:
            raise TopologyNotFoundError(f"topology {topology_id} does not exist")
        current = topology.status
        assert_transition(current, to)
        now = timezone.now()
        moved = Topology.objects.filter(pk=topology.pk, status=current).update(
            status=to, status_changed_at=now, updated_at=now
        )
        if not moved:  # pragma: no cover - only reachable without row locks (SQLite serialises instead)
            raise ConflictError(f"topology {topology_id} changed status concurrently")
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
    with transaction.atomic():
        topology = Topology.objects.select_for_update().filter(pk=topology_id).first()
        if topology is None:
            raise TopologyNotFoundError(f"topology {topology_id} does not exist")
        if expected_version is not None and topology.version != expected_version:
            raise VersionConflict(current=topology.version, expected=expected_version)
        if topology.status not in DELETABLE_STATUSES:
            raise TopologyNotEditableError(
                f"a {topology.status} topology cannot be deleted; tear it down first", status=topology.status
            )
        event_emit(topic=f"topology.{topology.pk}.deleted", type="deleted", payload={"name": topology.name})
        topology.delete()


def _lock_for_edit(topology_id: uuid.UUID | str, expected_version: int | None) -> Topology:
    """Lock the topology, require it editable, and check-and-bump its version. Call inside a transaction."""
    topology = Topology.objects.select_for_update().filter(pk=topology_id).first()
    if topology is None:
        raise TopologyNotFoundError(f"topology {topology_id} does not exist")
    if topology.status not in EDITABLE_STATUSES:
        raise TopologyNotEditableError(
            f"topology is {topology.status}; LANs, deckies and edges can only change while it is pending",
            status=topology.status,
        )
    if expected_version is not None:
        bumped = Topology.objects.filter(pk=topology.pk, version=expected_version).update(
            version=F("version") + 1, updated_at=timezone.now()
        )
        if not bumped:
            raise VersionConflict(current=topology.version, expected=expected_version)
        topology.version = expected_version + 1
    return topology


def topology_versioned_edit[T](
    *, topology_id: uuid.UUID | str, expected_version: int | None, write: Callable[[int], T]
) -> tuple[T, int]:
    """Run one child-row write as a versioned edit that always bumps the version; returns (result, new version).

    ``write`` receives the version to pass on as ``expected_version`` to a child-row service (``lan_create``,
    ``deckies.services.decky_create``, …). Without ``expected_version`` the caller is not checked, but the
    version is still bumped: the row lock is taken first, so the current version is passed on and cannot go
    stale before the write, and every change is visible to other editors (and in the ``ETag``). Raises
    :class:`TopologyNotFoundError` and whatever ``write`` raises (409 not editable / version conflict, …).
    """
    with transaction.atomic():
        current = Topology.objects.select_for_update().filter(pk=topology_id).values_list("version", flat=True)
        version = current.first()
        if version is None:
            raise TopologyNotFoundError(f"topology {topology_id} does not exist")
        result = write(version if expected_version is None else expected_version)
        new_version = Topology.objects.filter(pk=topology_id).values_list("version", flat=True).get()
    return result, new_version


def topology_lock_for_edit(topology_id: uuid.UUID | str, expected_version: int | None) -> Topology:
    """Public form of the edit guard, for other apps' services that write topology children (deckies)."""
    return _lock_for_edit(topology_id, expected_version)


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


def lan_create(
    *,
    topology_id: uuid.UUID | str,
    name: str,
    subnet: str | None = None,
    is_dmz: bool = False,
    expected_version: int | None = None,
) -> LAN:
    """Add a LAN (pending topologies only); without ``subnet``, the next free /24 of 10.0.0.0/16."""
    with transaction.atomic():
        topology = _lock_for_edit(topology_id, expected_version)
        if LAN.objects.filter(topology=topology, name=name).exists():
            raise ConflictError(f"LAN {name!r} already exists in this topology")
        lan = LAN(topology=topology, name=name, subnet=subnet or next_free_subnet(reserved_subnets()), is_dmz=is_dmz)
        lan.full_clean()
        lan.save()
    return lan


def lan_update(*, lan_id: uuid.UUID | str, expected_version: int | None = None, **fields: Any) -> LAN:
    """Change a LAN's name, subnet or DMZ flag (pending topologies only)."""
    allowed = {"name", "subnet", "is_dmz"}
    if set(fields) - allowed:
        raise InvalidInputError(f"cannot update {sorted(set(fields) - allowed)} on a LAN")
    lan = LAN.objects.filter(pk=lan_id).first()
    if lan is None:
        raise NotFoundError(f"LAN {lan_id} does not exist")
    with transaction.atomic():
        _lock_for_edit(lan.topology_id, expected_version)
        for key, value in fields.items():
            setattr(lan, key, value)
        lan.full_clean()
        lan.save()
    return lan


def lan_delete(*, lan_id: uuid.UUID | str, expected_version: int | None = None) -> None:
    """Remove a LAN and its edges; refused (400) when a decky would be left on no LAN."""
    lan = LAN.objects.filter(pk=lan_id).first()
    if lan is None:
        raise NotFoundError(f"LAN {lan_id} does not exist")
    with transaction.atomic():
        _lock_for_edit(lan.topology_id, expected_version)
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


def edge_create(
    *,
    topology_id: uuid.UUID | str,
    decky_id: int,
    lan_id: uuid.UUID | str,
    ip: str | None = None,
    is_bridge: bool = False,
    forwards_l3: bool = False,
    expected_version: int | None = None,
) -> Edge:
    """Attach a decky to a LAN of the same topology (pending only); both must belong to it (else 400)."""
    from deckies.models import Decky

    with transaction.atomic():
        topology = _lock_for_edit(topology_id, expected_version)
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
    return edge


EDGE_EDITABLE_FIELDS = frozenset({"ip", "is_bridge", "forwards_l3"})


def edge_update(*, edge_id: uuid.UUID | str, expected_version: int | None = None, **fields: Any) -> Edge:
    """Change an edge's address or flags (pending only); the address must be inside the LAN (else 400)."""
    unknown = set(fields) - EDGE_EDITABLE_FIELDS
    if unknown:
        raise InvalidInputError(f"cannot update {sorted(unknown)} on an edge")
    edge = Edge.objects.select_related("lan").filter(pk=edge_id).first()
    if edge is None:
        raise NotFoundError(f"edge {edge_id} does not exist")
    with transaction.atomic():
        _lock_for_edit(edge.topology_id, expected_version)
        ip = fields.get("ip", edge.ip)
        if ip is not None and ipaddress.IPv4Address(ip) not in edge.lan.network:
            raise InvalidInputError(f"{ip} is not inside LAN {edge.lan.name!r} ({edge.lan.subnet})")
        for key, value in fields.items():
            setattr(edge, key, value)
        edge.full_clean()
        edge.save()
    return edge


def edge_delete(*, edge_id: uuid.UUID | str, expected_version: int | None = None) -> None:
    """Detach a decky from a LAN (pending only); the decky itself stays."""
    edge = Edge.objects.filter(pk=edge_id).first()
    if edge is None:
        raise NotFoundError(f"edge {edge_id} does not exist")
    with transaction.atomic():
        _lock_for_edit(edge.topology_id, expected_version)
        edge.delete()
