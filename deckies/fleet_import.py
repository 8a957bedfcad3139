"""Import a fleet from DECNET's INI format: plan it against the database, then apply it in one transaction.

Two modes:

- **additive** (default): the file's deckies are added to the fleet. A name or address already used by a fleet
  decky is a collision (409, with the line of the section that caused it).
- **replace**: afterwards the fleet is exactly the file. Deckies with a name in the file are redefined in place
  (keeping their hostname and, when the file gives none, their address); deckies not in the file are deleted.
  A decky that would be deleted or moved to another network while it may have containers (any state but
  ``pending`` / ``torn_down``) or while an operation is open on it is never touched: the whole import is refused,
  naming them, so nothing is lost silently.

Where deckies land: ``[general] net`` selects the fleet network with that subnet, or creates it (named
``lan-<a>-<b>-<c>-<d>-<prefix>``); without ``net`` the default fleet network is used. ``interface`` makes it a
macvlan network on that parent, ``gw`` sets its gateway; an existing network only changes when nothing on it is
deployed. Addresses are the explicit ones, else (replace mode) the decky's current one, else the lowest free host
address (network, broadcast, gateway and every address in use excluded).

``[custom-<slug>]`` sections become :class:`~deckies.models.CustomService` rows (created; updated in replace mode;
a different definition of an existing slug is a collision in additive mode). Nothing here deploys: the deckies
are created ``pending``; ``deploy`` brings them up.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from deckies.catalogue.fields import ConfigValue
from deckies.choices import DeckyState, NetworkDriver
from deckies.ini import (
    DeckySpec,
    FleetSpec,
    IniIssue,
    format_interval,
    parse_fleet_ini,
    raise_issues,
)
from deckies.models import CustomService, Decky, Network
from deckies.services import (
    DEFAULT_NETWORK_NAME,
    custom_service_specs,
    decky_create,
    decky_delete,
    decky_update,
    reserved_subnets,
)
from lifecycle.choices import OPEN_STATUSES
from lifecycle.models import DeckyLifecycle
from lifecycle.services import event_emit

logger = logging.getLogger(__name__)

ADDITIVE = "additive"
REPLACE = "replace"
#: States in which a fleet decky has no container, so its record may be deleted or moved by an import.
DORMANT_STATES: frozenset[str] = frozenset({DeckyState.PENDING, DeckyState.TORN_DOWN})


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    """The fleet network the file's deckies go to; ``action`` is ``create``, ``update`` or ``keep``."""

    name: str
    subnet: str
    gateway: str
    driver: str
    parent_interface: str
    action: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subnet": self.subnet,
            "gateway": self.gateway,
            "driver": self.driver,
            "parent_interface": self.parent_interface,
            "action": self.action,
        }


@dataclass(frozen=True, slots=True)
class DeckyPlan:
    """One decky the import creates or (replace mode) redefines; ``state`` is the current state of a redefined one."""

    name: str
    action: str
    line: int
    ip: str
    archetype: str
    distro: str
    nmap_os: str
    services: tuple[str, ...]
    services_from: str
    service_config: Mapping[str, Mapping[str, ConfigValue]]
    mutate_interval: timedelta | None
    index: int
    state: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "line": self.line,
            "ip": self.ip,
            "archetype": self.archetype,
            "distro": self.distro,
            "nmap_os": self.nmap_os,
            "services": list(self.services),
            "services_from": self.services_from,
            "personas": sorted(self.service_config),
            "mutate_interval": format_interval(self.mutate_interval) or None,
            "state": self.state,
        }


@dataclass(frozen=True, slots=True)
class CustomServicePlan:
    """One ``[custom-*]`` service; ``action`` is ``create``, ``update`` or ``unchanged``."""

    slug: str
    image: str
    command: tuple[str, ...]
    ports: tuple[int, ...]
    action: str
    line: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "image": self.image,
            "command": list(self.command),
            "ports": list(self.ports),
            "action": self.action,
            "line": self.line,
        }


@dataclass
class ImportPlan:
    """Everything an import does, computed before any write. ``applied`` is set once it has been written."""

    source: str
    mode: str
    network: NetworkPlan
    deckies: list[DeckyPlan]
    delete: list[str]
    custom_services: list[CustomServicePlan]
    log_target: str | None
    warnings: list[str] = field(default_factory=list)
    applied: bool = False

    @property
    def created(self) -> list[str]:
        return [d.name for d in self.deckies if d.action == "create"]

    @property
    def updated(self) -> list[str]:
        return [d.name for d in self.deckies if d.action == "update"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "mode": self.mode,
            "applied": self.applied,
            "network": self.network.as_dict(),
            "deckies": [d.as_dict() for d in self.deckies],
            "created": self.created,
            "updated": self.updated,
            "deleted": list(self.delete),
            "custom_services": [c.as_dict() for c in self.custom_services],
            "log_target": self.log_target,
            "warnings": list(self.warnings),
        }


# --- planning --------------------------------------------------------------------------------------------------------


def network_name_for(subnet: str) -> str:
    """The name an import gives a new fleet network: ``10.20.0.0/24`` → ``lan-10-20-0-0-24``."""
    return "lan-" + subnet.replace(".", "-").replace("/", "-")


def _open_operations(names: list[str]) -> dict[str, str]:
    """``{decky name: operation}`` of the fleet deckies among ``names`` with an open lifecycle row."""
    rows = DeckyLifecycle.objects.filter(decky_name__in=names, status__in=sorted(OPEN_STATUSES))
    return {row.decky_name: row.operation for row in rows.order_by("started_at")}


def _plan_network(spec: FleetSpec, keep: list[Decky], issues: list[IniIssue]) -> tuple[NetworkPlan, Network | None]:
    """The target network and the row it maps to (None when it is to be created)."""
    general = spec.general
    line = general.line
    if general.net:
        subnet = general.net
        row = Network.objects.filter(subnet=subnet).order_by("pk").first()
        name = row.name if row is not None else network_name_for(subnet)
    else:
        row = Network.objects.filter(name=DEFAULT_NETWORK_NAME).first()
        name = DEFAULT_NETWORK_NAME
        subnet = row.subnet if row is not None else str(settings.DECNET_FLEET_SUBNET)
    network = ipaddress.IPv4Network(subnet)
    default_gateway = str(next(network.hosts()))
    if row is None:
        gateway = general.gw or default_gateway
        driver: str = NetworkDriver.MACVLAN if general.interface else NetworkDriver.BRIDGE
        parent = general.interface or ""
        action = "create"
        for other in Network.objects.all():
            if other.ip_network.overlaps(network):
                issues.append(
                    IniIssue(general.key_lines.get("net", line), f"net {subnet} overlaps fleet network "
                             f"{other.name} ({other.subnet})", "general", conflict=True)
                )  # fmt: skip
    else:
        gateway = general.gw or row.gateway_address
        driver = NetworkDriver.MACVLAN if general.interface else row.driver
        parent = general.interface or row.parent_interface
        changed = gateway != row.gateway_address or driver != row.driver or parent != row.parent_interface
        action = "update" if changed else "keep"
        if changed:
            busy = sorted(d.name for d in keep if d.network_id == row.pk and d.state not in DORMANT_STATES)
            if busy:
                issues.append(
                    IniIssue(line, f"network {row.name} carries deployed deckies ({', '.join(busy)}); its gateway "
                             "and interface cannot change until they are torn down", "general", conflict=True)
                )  # fmt: skip
    if action == "create":
        clash = next((lan for lan in reserved_subnets() if lan.overlaps(network)), None)
        if clash is not None:
            issues.append(
                IniIssue(general.key_lines.get("net", line), f"net {subnet} overlaps topology LAN {clash}",
                         "general", conflict=True)
            )  # fmt: skip
    gw = ipaddress.IPv4Address(gateway)
    if gw not in network or gw in (network.network_address, network.broadcast_address):
        issues.append(IniIssue(general.key_lines.get("gw", line), f"gw {gateway} is not a host address of {subnet}"))
    plan = NetworkPlan(name=name, subnet=subnet, gateway=gateway, driver=driver, parent_interface=parent, action=action)
    return plan, row


def _plan_addresses(
    spec: FleetSpec,
    network: NetworkPlan,
    row: Network | None,
    existing: Mapping[str, Decky],
    keep: list[Decky],
    replace: bool,
    issues: list[IniIssue],
) -> dict[str, str]:
    """``{decky name: address}`` for every decky of the file (empty for the ones whose address is in error)."""
    subnet = ipaddress.IPv4Network(network.subnet)
    reserved = {subnet.network_address, subnet.broadcast_address, ipaddress.IPv4Address(network.gateway)}
    file_names = {d.name for d in spec.deckies}
    # Addresses held by deckies that stay on the target network and are not redefined by this file.
    held: dict[ipaddress.IPv4Address, str] = {}
    if row is not None:
        for other in keep:
            if other.network_id == row.pk and other.ip and other.name not in file_names:
                held[ipaddress.IPv4Address(other.ip)] = other.name
    taken: dict[ipaddress.IPv4Address, str] = dict(held)
    result: dict[str, str] = {}
    for decky in spec.deckies:
        if decky.ip is None:
            continue
        address = ipaddress.IPv4Address(decky.ip)
        line = decky.key_lines.get("ip", decky.line)
        if address not in subnet or address in reserved:
            what = "the gateway" if address == ipaddress.IPv4Address(network.gateway) else "not a usable address"
            issues.append(IniIssue(line, f"ip {address} of {decky.name} is {what} of {network.subnet}", decky.section))
            continue
        if address in taken:
            issues.append(
                IniIssue(line, f"ip {address} of {decky.name} is already used by fleet decky {taken[address]}",
                         decky.section, conflict=True)
            )  # fmt: skip
            continue
        taken[address] = decky.name
        result[decky.name] = str(address)
    if replace:
        # A redefined decky keeps its address when the file gives none and nothing else claims it.
        for decky in spec.deckies:
            current = existing.get(decky.name)
            if decky.name in result or current is None or not current.ip or row is None:
                continue
            address = ipaddress.IPv4Address(current.ip)
            if current.network_id == row.pk and address in subnet and address not in reserved and address not in taken:
                taken[address] = decky.name
                result[decky.name] = str(address)
    free = (host for host in subnet.hosts() if host not in reserved)
    for decky in spec.deckies:
        if decky.name in result or decky.ip is not None:
            continue
        allocated = next((host for host in free if host not in taken), None)
        if allocated is None:
            issues.append(
                IniIssue(decky.line, f"no free address left in {network.subnet} for {decky.name}", decky.section,
                         conflict=True)
            )  # fmt: skip
            continue
        taken[allocated] = decky.name
        result[decky.name] = str(allocated)
    return result


def _plan_custom(spec: FleetSpec, replace: bool, issues: list[IniIssue]) -> list[CustomServicePlan]:
    rows = {row.slug: row for row in CustomService.objects.filter(slug__in=[c.slug for c in spec.custom_services])}
    plans = []
    for custom in spec.custom_services:
        row = rows.get(custom.slug)
        action = "create"
        if row is not None:
            same = (row.image, list(row.command), list(row.ports)) == (
                custom.image,
                list(custom.command),
                list(custom.ports),
            )
            action = "unchanged" if same else "update"
            if not same and not replace:
                issues.append(
                    IniIssue(custom.line, f"custom service {custom.slug!r} already exists with a different "
                             "definition; import with replace to redefine it", f"custom-{custom.slug}", conflict=True)
                )  # fmt: skip
        plans.append(CustomServicePlan(custom.slug, custom.image, custom.command, custom.ports, action, custom.line))
    return plans


def _plan(spec: FleetSpec, *, replace: bool) -> ImportPlan:
    """Compare ``spec`` with the database and decide every write; raises the INI errors (with lines) on problems."""
    issues: list[IniIssue] = []
    existing = {
        d.name: d for d in Decky.objects.filter(topology__isnull=True).select_related("network").order_by("name")
    }
    file_names = [d.name for d in spec.deckies]
    busy = _open_operations(list(existing))
    delete: list[str] = []
    if replace:
        delete = sorted(set(existing) - set(file_names))
        unsafe = [
            f"{name} ({busy[name]} in progress)" if name in busy else f"{name} ({existing[name].state})"
            for name in delete
            if name in busy or existing[name].state not in DORMANT_STATES
        ]
        if unsafe:
            issues.append(
                IniIssue(None, "replacing the fleet would delete deckies that may have containers: "
                         f"{', '.join(unsafe)}; tear them down first (manage.py teardown --names "
                         f"{','.join(n.split(' ')[0] for n in unsafe)}) or keep them in the file", conflict=True)
            )  # fmt: skip
        for decky in spec.deckies:
            if decky.name in busy:
                issues.append(
                    IniIssue(decky.line, f"decky {decky.name} has a {busy[decky.name]} operation in progress; "
                             "wait for it before redefining the decky", decky.section, conflict=True)
                )  # fmt: skip
    else:
        for decky in spec.deckies:
            if decky.name in existing:
                issues.append(
                    IniIssue(decky.line, f"decky {decky.name} already exists in the fleet (state "
                             f"{existing[decky.name].state}); import with replace to redefine it",
                             decky.section, conflict=True)
                )  # fmt: skip
    keep = [d for name, d in existing.items() if name not in delete]
    network, row = _plan_network(spec, keep, issues)
    if replace:
        target = row.pk if row is not None else None
        for decky in spec.deckies:
            current = existing.get(decky.name)
            if current is not None and current.network_id != target and current.state not in DORMANT_STATES:
                issues.append(
                    IniIssue(decky.line, f"decky {decky.name} is {current.state} on network "
                             f"{current.network.name if current.network else '-'}; tear it down before moving it "
                             f"to {network.name}", decky.section, conflict=True)
                )  # fmt: skip
    addresses = _plan_addresses(spec, network, row, existing, keep, replace, issues)
    customs = _plan_custom(spec, replace, issues)
    raise_issues(issues, spec.source)
    warnings = []
    if spec.general.log_target:
        warnings.append(
            f"log_target {spec.general.log_target} is recorded in the import event only: service containers "
            "write their events to stdout, collected from the Docker engine"
        )
    if network.driver == NetworkDriver.MACVLAN:
        warnings.append(
            f"macvlan on {network.parent_interface}: the Docker host cannot reach the deckies itself without a "
            "macvlan shim interface; other machines on the LAN can"
        )
    deckies = [
        DeckyPlan(
            name=d.name,
            action="update" if d.name in existing else "create",
            line=d.line,
            ip=addresses[d.name],
            archetype=d.archetype,
            distro=d.distro,
            nmap_os=d.nmap_os,
            services=d.services,
            services_from=d.services_from,
            service_config=d.service_config,
            mutate_interval=d.mutate_interval,
            index=d.index,
            state=existing[d.name].state if d.name in existing else None,
        )
        for d in spec.deckies
    ]
    return ImportPlan(
        source=spec.source,
        mode=REPLACE if replace else ADDITIVE,
        network=network,
        deckies=deckies,
        delete=delete,
        custom_services=customs,
        log_target=spec.general.log_target,
        warnings=warnings,
    )


# --- applying --------------------------------------------------------------------------------------------------------


def _apply_network(plan: NetworkPlan) -> Network:
    row = Network.objects.select_for_update().filter(name=plan.name).first()
    if row is None:
        row = Network(name=plan.name, subnet=plan.subnet)
    elif plan.action == "keep":
        return row
    row.gateway = plan.gateway
    row.driver = plan.driver
    row.parent_interface = plan.parent_interface
    row.full_clean()
    row.save()
    return row


def _apply_custom(plans: list[CustomServicePlan]) -> None:
    for plan in plans:
        if plan.action == "unchanged":
            continue
        row = CustomService.objects.filter(slug=plan.slug).first() or CustomService(slug=plan.slug)
        row.image, row.command, row.ports = plan.image, list(plan.command), list(plan.ports)
        row.full_clean()
        row.save()


def _apply(plan: ImportPlan, spec_by_name: Mapping[str, DeckySpec]) -> None:
    network = _apply_network(plan.network)
    _apply_custom(plan.custom_services)
    for doomed in Decky.objects.filter(topology__isnull=True, name__in=plan.delete):
        decky_delete(decky=doomed)
    updates = {d.name: d for d in plan.deckies if d.action == "update"}
    rows = {d.name: d for d in Decky.objects.filter(topology__isnull=True, name__in=list(updates))}
    # Free the addresses that move first, so two redefined deckies may swap addresses inside this transaction.
    moving = [rows[n].pk for n, d in updates.items() if rows[n].ip != d.ip or rows[n].network_id != network.pk]
    Decky.objects.filter(pk__in=moving).update(ip=None)
    for name, decky in updates.items():
        row = Decky.objects.get(pk=rows[name].pk)
        decky_update(
            decky=row,
            services=list(decky.services),
            # Every service gets the file's persona (or none): replace means the file is the whole truth.
            service_config={slug: dict(decky.service_config.get(slug, {})) for slug in decky.services},
            network=network,
            ip=decky.ip,
            distro=decky.distro,
            archetype=decky.archetype,
            nmap_os=decky.nmap_os,
            mutate_interval=decky.mutate_interval,
        )
    for decky in plan.deckies:
        if decky.action != "create":
            continue
        decky_create(
            name=decky.name,
            services=list(decky.services),
            service_config={slug: dict(config) for slug, config in decky.service_config.items()},
            network=network,
            ip=decky.ip,
            distro=decky.distro,
            archetype=decky.archetype,
            nmap_os=decky.nmap_os,
            mutate_interval=decky.mutate_interval,
            index=spec_by_name[decky.name].index,
        )


def fleet_import(
    *, text: str, replace: bool = False, dry_run: bool = False, source: str = "<ini>", actor: str | None = None
) -> ImportPlan:
    """Parse ``text``, plan it against the fleet and, unless ``dry_run``, apply the plan atomically.

    Contract: one transaction; the fleet's decky rows (and the target network row) are locked while planning, so
    concurrent imports serialise and each plans against what the previous one wrote. Either every write of the
    plan happens or none does. Nothing is deployed and Docker is never called. Emits ``fleet.import`` (applied
    imports only).

    Raises :class:`~deckies.ini.IniTooLargeError` (413), :class:`~deckies.ini.IniError` (400) and
    :class:`~deckies.ini.IniConflictError` (409), each naming the lines at fault, plus the decky services' domain
    errors should the database change under a race the locks do not cover (unique constraints → 409).
    """
    spec = parse_fleet_ini(text, source=source, custom_services=custom_service_specs())
    with transaction.atomic():
        list(Decky.objects.select_for_update().filter(topology__isnull=True).values_list("pk", flat=True))
        plan = _plan(spec, replace=replace)
        if dry_run:
            return plan
        _apply(plan, {d.name: d for d in spec.deckies})
        plan.applied = True
        event_emit(
            topic="fleet.import",
            type="imported",
            payload={
                "source": source,
                "mode": plan.mode,
                "actor": actor,
                "network": plan.network.name,
                "created": plan.created,
                "updated": plan.updated,
                "deleted": plan.delete,
                "custom_services": [c.slug for c in plan.custom_services if c.action != "unchanged"],
                "log_target": plan.log_target,
            },
        )
    logger.info(
        "fleet import from %s by %s (%s): %d created, %d updated, %d deleted",
        source,
        actor or "system",
        plan.mode,
        len(plan.created),
        len(plan.updated),
        len(plan.delete),
    )
    return plan


__all__ = ["ADDITIVE", "REPLACE", "CustomServicePlan", "DeckyPlan", "ImportPlan", "NetworkPlan", "fleet_import"]
