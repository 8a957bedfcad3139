"""Writes to deckies and their desired shape (no Docker here: deploying is an operation, see ``operations``).

Creating or editing a decky never touches Docker. Services are validated against the catalogue (unknown or
fleet-singleton services → 422, bad config → 400) before anything is written.

Topology deckies are child rows of their topology: the topology app calls :func:`decky_create`,
:func:`decky_update` and :func:`decky_delete` for them inside its versioned edit (topology locked, status and
version checked and bumped), so these functions never look at the topology themselves.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from deckies.catalogue.archetypes import get_archetype
from deckies.catalogue.distros import distro_for_index, get_distro, random_hostname
from deckies.catalogue.fields import validate_config
from deckies.catalogue.fingerprints import all_os_families
from deckies.catalogue.services import ServiceSpec, all_services, get_service, make_custom_service
from deckies.choices import DEPLOYED_STATES
from deckies.models import CustomService, Decky, DeckyService, Host, Network
from decnet_site.exceptions import ConflictError, InvalidInputError, UnprocessableError

DEFAULT_NETWORK_NAME = "decnet-lan"
_rng = random.SystemRandom()


def custom_service_specs() -> dict[str, ServiceSpec]:
    """Bring-your-own services from the database, as catalogue specs keyed by slug."""
    return {
        row.slug: make_custom_service(row.slug, row.image, list(row.command), list(row.ports))
        for row in CustomService.objects.all()
    }


def service_spec(slug: str, custom: Mapping[str, ServiceSpec] | None = None) -> ServiceSpec:
    """The catalogue entry for ``slug`` (built-in or bring-your-own); raises ``UnknownServiceError`` (422)."""
    return get_service(slug, custom=custom_service_specs() if custom is None else custom)


def validate_decky_services(
    slugs: Sequence[str], configs: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Check a decky's service list and per-service configs; return ``{slug: validated config}`` in order.

    Raises ``UnknownServiceError`` / :class:`UnprocessableError` (422) for unknown, singleton or duplicate
    services, ``ConfigValidationError`` (400) for bad config, and :class:`InvalidInputError` for config keyed by a
    service the decky does not have.
    """
    configs = configs or {}
    if len(set(slugs)) != len(slugs):
        raise UnprocessableError("a service appears twice in the list")
    stray = sorted(set(configs) - set(slugs))
    if stray:
        raise InvalidInputError(f"config given for services the decky does not have: {', '.join(stray)}")
    builtin = {spec.slug for spec in all_services()}
    # The bring-your-own table is read only when a slug is not built in (most requests never need it).
    custom = {} if builtin.issuperset(slugs) else custom_service_specs()
    validated: dict[str, dict[str, Any]] = {}
    for slug in slugs:
        spec = service_spec(slug, custom)
        if spec.fleet_singleton:
            raise UnprocessableError(f"{slug} is a fleet_singleton; it runs once per fleet, not per decky")
        validated[slug] = dict(validate_config(spec.config_schema, configs.get(slug) or {}))
    return validated


#: Subnets other apps hold, which a new fleet network must not overlap (the topology app registers its LANs').
SubnetReservations = Callable[[], Iterable[ipaddress.IPv4Network]]
_reservations: list[SubnetReservations] = []


def register_subnet_reservations(provider: SubnetReservations) -> None:
    """Called by other apps at start-up (idempotent)."""
    if provider not in _reservations:
        _reservations.append(provider)


def reserved_subnets() -> list[ipaddress.IPv4Network]:
    """Every subnet another app holds (topology LANs that are not torn down)."""
    return [subnet for provider in _reservations for subnet in provider()]


def network_get_default() -> Network:
    """The fleet's default network (a user-defined bridge on ``DECNET_FLEET_SUBNET``), created on first use."""
    network, _ = Network.objects.get_or_create(
        name=DEFAULT_NETWORK_NAME, defaults={"subnet": settings.DECNET_FLEET_SUBNET}
    )
    return network


def allocate_ip(network: ipaddress.IPv4Network, taken: Iterable[str], gateway: str | None = None) -> str:
    """The first host address of ``network`` not in ``taken`` and not the gateway; 409 when none is left."""
    reserved = {ipaddress.IPv4Address(ip) for ip in taken}
    hosts = network.hosts()
    first = next(hosts, None)
    gateway_ip = ipaddress.IPv4Address(gateway) if gateway else first
    reserved.add(gateway_ip)  # type: ignore[arg-type]
    for candidate in ([first] if first else []) + list(hosts):
        if candidate not in reserved:
            return str(candidate)
    raise ConflictError(f"no free address left in {network}")


def _fleet_ip(network: Network, ip: str | None, exclude_pk: int | None = None) -> str:
    taken_qs = Decky.objects.filter(network=network, topology__isnull=True, ip__isnull=False)
    if exclude_pk is not None:
        taken_qs = taken_qs.exclude(pk=exclude_pk)
    taken = {str(ip) for ip in taken_qs.values_list("ip", flat=True) if ip}
    if ip is None:
        return allocate_ip(network.ip_network, taken, network.gateway_address)
    address = ipaddress.IPv4Address(ip)
    if address not in network.ip_network or address in (
        network.ip_network.network_address,
        network.ip_network.broadcast_address,
    ):
        raise InvalidInputError(f"{ip} is not a usable address of network {network.name} ({network.subnet})")
    if ip == network.gateway_address:
        raise InvalidInputError(f"{ip} is the gateway of network {network.name}")
    if ip in taken:
        raise ConflictError(f"{ip} is already used by another decky on {network.name}")
    return ip


def _check_nmap_os(nmap_os: str) -> None:
    known = {family.slug for family in all_os_families()}
    if nmap_os not in known:
        raise UnprocessableError(f"unknown OS family {nmap_os!r}; known: {', '.join(sorted(known))}")


def decky_create(
    *,
    name: str,
    services: Sequence[str] = (),
    service_config: Mapping[str, Mapping[str, Any]] | None = None,
    topology_id: Any = None,
    network: Network | None = None,
    host: Host | None = None,
    hostname: str = "",
    ip: str | None = None,
    distro: str | None = None,
    archetype: str = "",
    nmap_os: str | None = None,
    mutate_interval: timedelta | None = None,
    mac_address: str = "",
    index: int = 0,
) -> Decky:
    """Create a decky (fleet when ``topology_id`` is None) with its services; nothing is deployed.

    The archetype, when given, supplies default services, preferred distro and OS family. A fleet decky gets
    the default network and the next free IP unless given. A topology decky must be created inside the topology's
    versioned edit (see the module docstring). Raises 400/404/409/422 domain errors on bad input.
    """
    arche = get_archetype(archetype) if archetype else None
    slugs = list(services) or (list(arche.services) if arche else [])
    if not slugs:
        raise InvalidInputError("a decky needs at least one service (or an archetype that provides them)")
    validated = validate_decky_services(slugs, service_config)
    profile = get_distro(distro) if distro else distro_for_index(arche, index)
    nmap_os = nmap_os or (arche.nmap_os if arche else "linux")
    _check_nmap_os(nmap_os)
    with transaction.atomic():
        if topology_id is not None:
            network = None
        else:
            network = network or network_get_default()
            ip = _fleet_ip(network, ip)
        if Decky.objects.filter(name=name, topology_id=topology_id).exists():
            scope = "the fleet" if topology_id is None else "this topology"
            raise ConflictError(f"a decky named {name!r} already exists in {scope}")
        decky = Decky(
            name=name,
            topology_id=topology_id,
            network=network,
            host=host,
            hostname=hostname or random_hostname(profile.hostname_style, _rng),
            ip=ip,
            distro=profile.slug,
            archetype=archetype,
            nmap_os=nmap_os,
            mutate_interval=mutate_interval,
            mac_address=mac_address,
        )
        decky.full_clean(validate_constraints=False)
        try:
            with transaction.atomic():
                decky.save()
        except IntegrityError as exc:
            raise ConflictError(f"decky {name!r} conflicts with an existing decky (name or IP): {exc}") from exc
        _replace_services(decky, validated)
    return decky


def _replace_services(decky: Decky, validated: Mapping[str, Mapping[str, Any]]) -> None:
    decky.services.all().delete()
    DeckyService.objects.bulk_create(
        DeckyService(decky=decky, slug=slug, config=dict(config), position=position)
        for position, (slug, config) in enumerate(validated.items())
    )


DECKY_EDITABLE_FIELDS = frozenset(
    {"hostname", "ip", "distro", "archetype", "nmap_os", "mutate_interval", "host", "network", "mac_address"}
)


def decky_update(
    *,
    decky: Decky,
    services: Sequence[str] | None = None,
    service_config: Mapping[str, Mapping[str, Any]] | None = None,
    **fields: Any,
) -> Decky:
    """Change a decky's desired shape. Services, when given, replace the list (configs kept unless given); a decky
    always keeps at least one.

    A deployed fleet decky may change; the change applies on the next deploy or mutate. A topology decky is changed
    inside the topology's versioned edit.
    """
    unknown = set(fields) - DECKY_EDITABLE_FIELDS
    if unknown:
        raise InvalidInputError(f"cannot update {', '.join(sorted(unknown))} on a decky")
    if "distro" in fields:
        get_distro(fields["distro"])
    if fields.get("archetype"):
        get_archetype(fields["archetype"])
    if "nmap_os" in fields:
        _check_nmap_os(fields["nmap_os"])
    with transaction.atomic():
        if decky.topology_id is None and ("ip" in fields or "network" in fields):
            network = fields.get("network") or decky.network or network_get_default()
            fields["network"] = network
            fields["ip"] = _fleet_ip(network, fields.get("ip", decky.ip), exclude_pk=decky.pk)
        for key, value in fields.items():
            setattr(decky, key, value)
        decky.full_clean(validate_constraints=False)
        decky.save()
        if services is not None or service_config is not None:
            current = {row.slug: row.config for row in decky.services.all()}
            slugs = list(services) if services is not None else list(current)
            merged = {slug: (service_config or {}).get(slug, current.get(slug, {})) for slug in slugs}
            if not slugs:
                raise InvalidInputError("a decky needs at least one service")
            _replace_services(decky, validate_decky_services(slugs, merged))
    return decky


def decky_delete(*, decky: Decky) -> None:
    """Delete a decky's record. Refused (409) while it is deployed: tear it down first so no container leaks."""
    with transaction.atomic():
        state = Decky.objects.select_for_update().filter(pk=decky.pk).values_list("state", flat=True).first()
        if state is None:
            return
        if state in DEPLOYED_STATES:
            raise ConflictError(f"decky {decky.name!r} is {state}; tear it down before deleting it")
        decky.delete()


# --- hosts ------------------------------------------------------------------------------------------------------------

HOST_EDITABLE_FIELDS = frozenset({"name", "docker_url", "status"})


def _check_host_name(name: str, exclude_pk: Any = None) -> None:
    clash = Host.objects.filter(name=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise ConflictError(f"a host named {name!r} already exists")


def host_create(*, name: str, docker_url: str, status: str | None = None) -> Host:
    """Register a Docker engine deckies can be placed on; nothing is contacted. Duplicate name → 409."""
    host = Host(name=name, docker_url=docker_url)
    if status:
        host.status = status
    with transaction.atomic():
        _check_host_name(name)
        host.full_clean()
        host.save()
    return host


def host_update(*, host: Host, **fields: Any) -> Host:
    """Rename a host, point it at another engine URL or change its status. Deckies placed on it stay placed."""
    unknown = set(fields) - HOST_EDITABLE_FIELDS
    if unknown:
        raise InvalidInputError(f"cannot update {', '.join(sorted(unknown))} on a host")
    with transaction.atomic():
        if "name" in fields:
            _check_host_name(fields["name"], exclude_pk=host.pk)
        for key, value in fields.items():
            setattr(host, key, value)
        host.full_clean()
        host.save()
    return host


def host_delete(*, host: Host) -> None:
    """Forget a host. Refused (409) while deckies are placed on it: move or delete them first."""
    placed = list(host.deckies.values_list("name", flat=True)[:10])
    if placed:
        raise ConflictError(f"deckies are placed on host {host.name!r}: {', '.join(placed)}", deckies=placed)
    host.delete()


# --- bring-your-own services and fleet networks -----------------------------------------------------------------------


def custom_service_save(
    *,
    slug: str,
    image: str,
    command: Any = (),
    ports: Any = (),
    description: str = "",
    instance: CustomService | None = None,
) -> CustomService:
    """Create or change a bring-your-own service after the catalogue accepted its definition (bad slug, a
    built-in's slug, bad image, command or ports → 400 listing every problem; a taken slug → 409)."""
    spec = make_custom_service(slug, image, command, ports)
    row = instance or CustomService()
    with transaction.atomic():
        clash = CustomService.objects.filter(slug=slug)
        if row.pk is not None:
            clash = clash.exclude(pk=row.pk)
        if clash.exists():
            raise ConflictError(f"a custom service named {slug!r} already exists")
        row.slug, row.image, row.description = slug, image, description
        row.command, row.ports = list(spec.custom_command or ()), list(spec.ports)
        row.full_clean()
        row.save()
    return row


def custom_service_delete(*, service: CustomService) -> None:
    """Forget a bring-your-own service; refused (409) while a decky lists it."""
    users = sorted(DeckyService.objects.filter(slug=service.slug).values_list("decky__name", flat=True)[:10])
    if users:
        raise ConflictError(f"custom service {service.slug!r} is used by decky(s) {', '.join(users)}", deckies=users)
    service.delete()


def network_save(*, instance: Network | None = None, **fields: Any) -> Network:
    """Create or change a fleet network. Its subnet or driver cannot change while deckies are on it (409): their
    addresses and containers depend on it."""
    row = instance or Network()
    with transaction.atomic():
        if row.pk is not None:
            stored = Network.objects.select_for_update().get(pk=row.pk)
            moved = {key for key in ("subnet", "driver", "gateway", "parent_interface") if key in fields}
            moved = {key for key in moved if str(fields[key] or "") != str(getattr(stored, key) or "")}
            if moved and Decky.objects.filter(network=stored).exists():
                raise ConflictError(
                    f"network {stored.name!r} has deckies; its {', '.join(sorted(moved))} cannot change"
                )
        for key, value in fields.items():
            setattr(row, key, value)
        row.full_clean()
        row.save()
    return row


def network_delete(*, network: Network) -> None:
    """Forget a fleet network; refused (409) while deckies are on it."""
    names = sorted(Decky.objects.filter(network=network).values_list("name", flat=True)[:10])
    if names:
        raise ConflictError(f"network {network.name!r} has deckies: {', '.join(names)}", deckies=names)
    network.delete()
