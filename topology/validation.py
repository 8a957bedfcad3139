"""Deploy-time validation of a topology: pure rules over its LAN, decky, edge and service rows.

:func:`validate_rows` takes rows (saved or merely built) and returns every issue it finds, errors and warnings,
without touching the database; :func:`validate_topology` loads a topology's rows and the subnets other scopes
hold, then calls it; :func:`assert_deployable` raises :class:`~topology.exceptions.TopologyValidationError`
(400, ``validation_failed``) when any issue is an error.

Error codes (DECNET's, plus ``TOPOLOGY_EMPTY`` and ``LAN_FULL``, which DECNET only found when compose failed):

=====================  ==============================================================================
DMZ_MISSING            no LAN is the DMZ
DMZ_MULTIPLE           more than one LAN is the DMZ
DMZ_ORPHAN             a LAN cannot be reached from the DMZ through multi-homed deckies
DECKY_ORPHAN           a decky is on no LAN
LAN_NAME_DUP           two LANs share a name
DECKY_NAME_DUP         two deckies share a name
IP_UNKNOWN_LAN         an edge names a LAN that is not one of the topology's
IP_OUT_OF_SUBNET       an edge address is outside its LAN, or is the network or broadcast address
IP_MALFORMED           an edge address is not an IPv4 address
IP_COLLISION           two edges of a LAN share an address, or an edge takes the LAN's gateway
SUBNET_MALFORMED       a LAN subnet is not an IPv4 network of at least /29 in CIDR form
SUBNET_OVERLAP         two LANs overlap, or a LAN overlaps a LAN of another live topology or a fleet network
UNKNOWN_SERVICE        a decky runs a service no catalogue knows, or a fleet singleton
SERVICE_CFG_UNDECLARED a service's config has a key its schema does not declare
TOPOLOGY_EMPTY         the topology has no decky
LAN_FULL               a LAN has more members than host addresses (the gateway excluded)
=====================  ==============================================================================

Warning codes: ``LAN_EMPTY`` (a LAN no decky is on; it is not created), ``DECKY_NO_SERVICES``,
``BRIDGE_FLAG_MISMATCH`` (a decky on several LANs has an edge not marked ``is_bridge``) and
``FORWARDS_L3_SINGLE_HOMED`` (a decky forwards L3 but is on one LAN). Edges without an address are not an issue:
the engine allocates them at deploy.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from deckies.catalogue.services import ServiceSpec, all_services
from deckies.models import Decky, DeckyService
from topology.exceptions import TopologyValidationError
from topology.models import LAN, Edge, Topology

ERROR = "error"
WARNING = "warning"
#: A LAN must hold the gateway and at least a few deckies (the same bound the model field enforces).
MAX_PREFIX = 29


@dataclass(frozen=True)
class Issue:
    """One finding: ``severity`` is ``error`` (blocks deploy) or ``warning``; ``target`` names the rows."""

    severity: str
    code: str
    message: str
    target: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReservedSubnet:
    """A subnet some other scope holds: a LAN of another live topology, or a fleet network."""

    network: ipaddress.IPv4Network
    owner: str


def _parse_subnet(value: str) -> ipaddress.IPv4Network | None:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except (TypeError, ValueError):
        return None
    if network.version != 4 or network.prefixlen > MAX_PREFIX:
        return None
    return network


def _parse_ip(value: Any) -> ipaddress.IPv4Address | None:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    return address if isinstance(address, ipaddress.IPv4Address) else None


def _gateway(network: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    # The engine gives every LAN bridge its first host address; deckies never get it.
    return network.network_address + 1


def _dup_issues(names: Iterable[str], code: str, kind: str) -> list[Issue]:
    counts: dict[str, int] = defaultdict(int)
    for name in names:
        counts[name] += 1
    return [
        Issue(ERROR, code, f"{count} {kind}s are named {name!r}; names must be unique", {kind.lower(): name})
        for name, count in sorted(counts.items())
        if count > 1
    ]


def _dmz_issues(lans: Sequence[LAN], edges: Sequence[Edge]) -> list[Issue]:
    dmzs = [lan for lan in lans if lan.is_dmz]
    if not dmzs:
        return [Issue(ERROR, "DMZ_MISSING", "no LAN is the DMZ; exactly one must be", {})]
    issues = []
    if len(dmzs) > 1:
        names = sorted(lan.name for lan in dmzs)
        issues.append(
            Issue(
                ERROR,
                "DMZ_MULTIPLE",
                f"{len(dmzs)} LANs are the DMZ ({', '.join(names)}); exactly one must be",
                {"lans": names},
            )
        )
    # LANs are adjacent when one decky is on both; a multi-homed decky is the only path between two LANs.
    lans_of_decky: dict[Any, set[Any]] = defaultdict(set)
    for edge in edges:
        lans_of_decky[edge.decky_id].add(edge.lan_id)
    adjacent: dict[Any, set[Any]] = defaultdict(set)
    for members in lans_of_decky.values():
        for lan_id in members:
            adjacent[lan_id] |= members - {lan_id}
    used = {edge.lan_id for edge in edges}
    reached = {lan.pk for lan in dmzs}
    queue = deque(reached)
    while queue:
        for neighbour in adjacent[queue.popleft()]:
            if neighbour not in reached:
                reached.add(neighbour)
                queue.append(neighbour)
    for lan in sorted(lans, key=lambda row: row.name):
        # An empty LAN is not created at all (LAN_EMPTY warns about it), so it cannot be cut off.
        if lan.pk not in reached and lan.pk in used:
            issues.append(
                Issue(
                    ERROR,
                    "DMZ_ORPHAN",
                    f"LAN {lan.name!r} cannot be reached from the DMZ: no chain of multi-homed deckies joins them",
                    {"lan": lan.name},
                )
            )
    return issues


def _subnet_issues(
    lans: Sequence[LAN], reserved: Sequence[ReservedSubnet]
) -> tuple[list[Issue], dict[Any, ipaddress.IPv4Network]]:
    issues: list[Issue] = []
    networks: dict[Any, ipaddress.IPv4Network] = {}
    for lan in sorted(lans, key=lambda row: row.name):
        network = _parse_subnet(lan.subnet)
        if network is None:
            issues.append(
                Issue(
                    ERROR,
                    "SUBNET_MALFORMED",
                    f"LAN {lan.name!r}: {lan.subnet!r} is not an IPv4 network of /{MAX_PREFIX} or larger in CIDR form",
                    {"lan": lan.name, "subnet": lan.subnet},
                )
            )
            continue
        networks[lan.pk] = network
    ordered = sorted((lan for lan in lans if lan.pk in networks), key=lambda row: row.name)
    for index, lan in enumerate(ordered):
        for other in ordered[index + 1 :]:
            if networks[lan.pk].overlaps(networks[other.pk]):
                issues.append(
                    Issue(
                        ERROR,
                        "SUBNET_OVERLAP",
                        f"LANs {lan.name!r} ({lan.subnet}) and {other.name!r} ({other.subnet}) overlap",
                        {"lan": lan.name, "other_lan": other.name},
                    )
                )
        for claim in reserved:
            if networks[lan.pk].overlaps(claim.network):
                issues.append(
                    Issue(
                        ERROR,
                        "SUBNET_OVERLAP",
                        f"LAN {lan.name!r} ({lan.subnet}) overlaps {claim.network} held by {claim.owner}",
                        {"lan": lan.name, "reserved": str(claim.network), "owner": claim.owner},
                    )
                )
    return issues, networks


def _edge_issues(
    lans: Sequence[LAN],
    deckies: Sequence[Decky],
    edges: Sequence[Edge],
    networks: Mapping[Any, ipaddress.IPv4Network],
) -> list[Issue]:
    issues: list[Issue] = []
    lan_by_id = {lan.pk: lan for lan in lans}
    name_of = {decky.pk: decky.name for decky in deckies}
    used: dict[Any, dict[ipaddress.IPv4Address, str]] = defaultdict(dict)
    members: dict[Any, int] = defaultdict(int)

    def target(edge: Edge, lan_name: str | None = None) -> dict[str, Any]:
        return {
            "edge": str(edge.pk) if edge.pk else None,
            "decky": name_of.get(edge.decky_id),
            "lan": lan_name,
            "ip": None if edge.ip in (None, "") else str(edge.ip),
        }

    for edge in sorted(edges, key=lambda e: (name_of.get(e.decky_id, ""), str(e.lan_id))):
        decky_name = name_of.get(edge.decky_id, str(edge.decky_id))
        lan = lan_by_id.get(edge.lan_id)
        if lan is None:
            issues.append(
                Issue(
                    ERROR,
                    "IP_UNKNOWN_LAN",
                    f"decky {decky_name!r} is attached to a LAN that is not in this topology",
                    {**target(edge), "lan_id": str(edge.lan_id)},
                )
            )
            continue
        members[lan.pk] += 1
        if edge.ip in (None, ""):
            continue
        address = _parse_ip(edge.ip)
        if address is None:
            issues.append(
                Issue(
                    ERROR,
                    "IP_MALFORMED",
                    f"decky {decky_name!r} on LAN {lan.name!r}: {edge.ip!r} is not an IPv4 address",
                    target(edge, lan.name),
                )
            )
            continue
        network = networks.get(lan.pk)
        if network is None:
            continue  # SUBNET_MALFORMED already says why nothing can be checked against it
        if address not in network or address in (network.network_address, network.broadcast_address):
            issues.append(
                Issue(
                    ERROR,
                    "IP_OUT_OF_SUBNET",
                    f"decky {decky_name!r}: {address} is not a host address of LAN {lan.name!r} ({lan.subnet})",
                    target(edge, lan.name),
                )
            )
            continue
        if address == _gateway(network):
            issues.append(
                Issue(
                    ERROR,
                    "IP_COLLISION",
                    f"decky {decky_name!r}: {address} is the gateway of LAN {lan.name!r}",
                    target(edge, lan.name),
                )
            )
            continue
        holder = used[lan.pk].get(address)
        if holder is not None:
            issues.append(
                Issue(
                    ERROR,
                    "IP_COLLISION",
                    f"deckies {holder!r} and {decky_name!r} both use {address} on LAN {lan.name!r}",
                    {**target(edge, lan.name), "other_decky": holder},
                )
            )
            continue
        used[lan.pk][address] = decky_name
    for lan_id, count in sorted(members.items(), key=lambda item: lan_by_id[item[0]].name):
        network = networks.get(lan_id)
        if network is not None and count > network.num_addresses - 3:
            lan = lan_by_id[lan_id]
            issues.append(
                Issue(
                    ERROR,
                    "LAN_FULL",
                    f"LAN {lan.name!r} ({lan.subnet}) has {count} members but only "
                    f"{network.num_addresses - 3} addresses for deckies",
                    {"lan": lan.name},
                )
            )
    return issues


def _decky_issues(
    deckies: Sequence[Decky],
    edges: Sequence[Edge],
    services: Mapping[Any, Sequence[DeckyService]],
    catalogue: Mapping[str, ServiceSpec],
) -> list[Issue]:
    issues: list[Issue] = []
    edges_of: dict[Any, list[Edge]] = defaultdict(list)
    for edge in edges:
        edges_of[edge.decky_id].append(edge)
    for decky in sorted(deckies, key=lambda row: row.name):
        own = edges_of.get(decky.pk, [])
        if not own:
            issues.append(Issue(ERROR, "DECKY_ORPHAN", f"decky {decky.name!r} is on no LAN", {"decky": decky.name}))
        rows = list(services.get(decky.pk, ()))
        if not rows:
            issues.append(
                Issue(WARNING, "DECKY_NO_SERVICES", f"decky {decky.name!r} runs no service", {"decky": decky.name})
            )
        for row in rows:
            spec = catalogue.get(row.slug)
            where = {"decky": decky.name, "service": row.slug}
            if spec is None or spec.fleet_singleton:
                why = "is a fleet singleton (it runs once per fleet)" if spec else "is in no catalogue"
                issues.append(
                    Issue(ERROR, "UNKNOWN_SERVICE", f"decky {decky.name!r}: service {row.slug!r} {why}", where)
                )
                continue
            undeclared = sorted(set(row.config or {}) - set(spec.config_keys))
            if undeclared:
                issues.append(
                    Issue(
                        ERROR,
                        "SERVICE_CFG_UNDECLARED",
                        f"decky {decky.name!r}: service {row.slug!r} does not declare config key(s) "
                        f"{', '.join(undeclared)}",
                        {**where, "keys": undeclared},
                    )
                )
        if len(own) >= 2 and not all(edge.is_bridge for edge in own):
            issues.append(
                Issue(
                    WARNING,
                    "BRIDGE_FLAG_MISMATCH",
                    f"decky {decky.name!r} is on {len(own)} LANs but not all its edges are marked as bridge edges",
                    {"decky": decky.name},
                )
            )
        if len(own) == 1 and own[0].forwards_l3:
            issues.append(
                Issue(
                    WARNING,
                    "FORWARDS_L3_SINGLE_HOMED",
                    f"decky {decky.name!r} forwards L3 but is on one LAN only",
                    {"decky": decky.name},
                )
            )
    return issues


def validate_rows(
    *,
    lans: Sequence[LAN],
    deckies: Sequence[Decky],
    edges: Sequence[Edge],
    services: Mapping[Any, Sequence[DeckyService]],
    catalogue: Mapping[str, ServiceSpec],
    reserved: Sequence[ReservedSubnet] = (),
) -> list[Issue]:
    """Every issue of the given rows, errors first, each group in a stable order. Touches no database.

    ``services`` maps a decky's ``pk`` to its service rows; ``catalogue`` maps slugs to every service a decky
    could name (built-in and bring-your-own); ``reserved`` are subnets held outside this topology.
    Rows may be unsaved (``.build()``): only ``pk``, ``decky_id`` and ``lan_id`` link them.
    """
    issues: list[Issue] = []
    if not deckies:
        issues.append(Issue(ERROR, "TOPOLOGY_EMPTY", "the topology has no decky; add one before deploying", {}))
    issues += _dup_issues((lan.name for lan in lans), "LAN_NAME_DUP", "LAN")
    issues += _dup_issues((decky.name for decky in deckies), "DECKY_NAME_DUP", "Decky")
    issues += _dmz_issues(lans, edges)
    subnet_issues, networks = _subnet_issues(lans, reserved)
    issues += subnet_issues
    issues += _edge_issues(lans, deckies, edges, networks)
    issues += _decky_issues(deckies, edges, services, catalogue)
    used_lans = {edge.lan_id for edge in edges}
    issues += [
        Issue(WARNING, "LAN_EMPTY", f"LAN {lan.name!r} has no decky; it will not be created", {"lan": lan.name})
        for lan in sorted(lans, key=lambda row: row.name)
        if lan.pk not in used_lans
    ]
    return sorted(issues, key=lambda issue: issue.severity != ERROR)


def service_catalogue() -> dict[str, ServiceSpec]:
    """Every service a decky could name: the built-ins (singletons included, so they are reported as such) and
    the bring-your-own services in the database."""
    from deckies.services import custom_service_specs

    return {**custom_service_specs(), **{spec.slug: spec for spec in all_services()}}


def reserved_elsewhere(topology: Topology) -> list[ReservedSubnet]:
    """Subnets held outside ``topology``: LANs of every other topology that is not torn down (they keep their
    claim until then), and every fleet network."""
    from deckies.models import Network
    from topology.status import TopologyStatus

    claims: list[ReservedSubnet] = []
    others = (
        LAN.objects.exclude(topology_id=topology.pk)
        .exclude(topology__status=TopologyStatus.TORN_DOWN)
        .select_related("topology")
        .order_by("topology__name", "name")
    )
    for lan in others:
        network = _parse_subnet(lan.subnet)
        if network is not None:
            claims.append(ReservedSubnet(network, f"LAN {lan.name!r} of topology {lan.topology.name!r}"))
    for fleet_network in Network.objects.order_by("name"):
        network = _parse_any(fleet_network.subnet)
        if network is not None:
            claims.append(ReservedSubnet(network, f"fleet network {fleet_network.name!r}"))
    return claims


def _parse_any(value: str) -> ipaddress.IPv4Network | None:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    return network if isinstance(network, ipaddress.IPv4Network) else None


def validate_topology(topology: Topology) -> list[Issue]:
    """Load ``topology``'s rows (four queries plus the reserved subnets and bring-your-own services) and return
    :func:`validate_rows` over them. Reads only."""
    lans = list(LAN.objects.filter(topology=topology))
    deckies = list(Decky.objects.filter(topology=topology).prefetch_related("services"))
    edges = list(Edge.objects.filter(topology=topology))
    services = {decky.pk: list(decky.services.all()) for decky in deckies}
    return validate_rows(
        lans=lans,
        deckies=deckies,
        edges=edges,
        services=services,
        catalogue=service_catalogue(),
        reserved=reserved_elsewhere(topology),
    )


def errors_of(issues: Iterable[Issue]) -> list[Issue]:
    return [issue for issue in issues if issue.severity == ERROR]


def assert_deployable(topology: Topology) -> list[Issue]:
    """Return the warnings of ``topology``, or raise :class:`TopologyValidationError` listing its errors when it
    has any (the warnings stay available from :func:`validate_topology`)."""
    issues = validate_topology(topology)
    errors = errors_of(issues)
    if errors:
        raise TopologyValidationError([issue.as_dict() for issue in errors])
    return issues
