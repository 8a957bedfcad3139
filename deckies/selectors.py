"""Reads of deckies and hosts: each selector returns rows with the relations its callers need already joined.

Fleet deckies are the ones with no topology. List selectors annotate each decky with the id of its newest lifecycle
row (a correlated subquery on the rows' ``decky`` reference) and the serializer loads the rows of a whole page in
one query.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from deckies.catalogue.archetypes import Archetype, all_archetypes, get_archetype
from deckies.catalogue.distros import DistroProfile, all_distros, get_distro
from deckies.catalogue.errors import CatalogueError
from deckies.catalogue.services import ServiceSpec, all_services
from deckies.choices import DEPLOYED_STATES
from deckies.filtersets import DeckyFilterSet, HostFilterSet
from deckies.models import Decky, Host
from decnet_site.exceptions import NotFoundError
from lifecycle.models import DeckyLifecycle


class DeckyNotFoundError(NotFoundError):
    """No decky has this name in the given scope (404)."""

    code = "decky_not_found"


class HostNotFoundError(NotFoundError):
    """No Docker host has this id (404)."""

    code = "host_not_found"


def _with_relations(queryset: QuerySet[Decky]) -> QuerySet[Decky]:
    return queryset.select_related("network", "host", "topology").prefetch_related("services")


def latest_lifecycle_subquery() -> Subquery:
    """The id of the newest lifecycle row acting on the outer decky."""
    newest = DeckyLifecycle.objects.filter(decky=OuterRef("pk")).order_by("-started_at", "-id")
    return Subquery(newest.values("id")[:1])


def decky_list(*, filters: Mapping[str, Any] | None = None) -> QuerySet[Decky]:
    """Fleet deckies (``topology`` empty) ordered by name, filtered by :class:`DeckyFilterSet`.

    Rows carry ``network``, ``host`` and their services, plus ``latest_lifecycle_id`` (newest lifecycle row or
    None). Invalid filter values raise ``django.core.exceptions.ValidationError`` (400).
    """
    queryset = _with_relations(Decky.objects.filter(topology__isnull=True)).annotate(
        latest_lifecycle_id=latest_lifecycle_subquery()
    )
    if filters:
        filterset = DeckyFilterSet(data=filters, queryset=queryset)
        if not filterset.is_valid():
            from django.core.exceptions import ValidationError

            raise ValidationError(filterset.errors.get_json_data())
        queryset = filterset.qs
    return queryset.order_by("name")


def _scoped(queryset: QuerySet[Decky], name: str, topology_id: uuid.UUID | str | None) -> QuerySet[Decky]:
    queryset = queryset.filter(name=name)
    if topology_id is None:
        return queryset.filter(topology__isnull=True)
    try:
        return queryset.filter(topology_id=uuid.UUID(str(topology_id)))
    except ValueError:
        return queryset.none()


def _not_found(name: str, topology_id: uuid.UUID | str | None) -> DeckyNotFoundError:
    scope = "the fleet" if topology_id is None else f"topology {topology_id}"
    return DeckyNotFoundError(f"decky {name!r} does not exist in {scope}", decky_name=name)


def decky_get(*, name: str, topology_id: uuid.UUID | str | None = None) -> Decky:
    """The decky ``name`` of the fleet (``topology_id`` None) or of that topology, with its relations and
    ``latest_lifecycle_id``; raises DeckyNotFoundError."""
    queryset = _scoped(Decky.objects.all(), name, topology_id)
    decky = _with_relations(queryset.annotate(latest_lifecycle_id=latest_lifecycle_subquery())).first()
    if decky is None:
        raise _not_found(name, topology_id)
    return decky


def fleet_deckies_named(names: Sequence[str] | None) -> list[Decky]:
    """The fleet deckies called ``names`` (all fleet deckies when None), ordered by name.

    Raises :class:`DeckyNotFoundError` listing every unknown name, or when the fleet is empty.
    """
    queryset = _with_relations(Decky.objects.filter(topology__isnull=True))
    if names is None:
        deckies = list(queryset.order_by("name"))
        if not deckies:
            raise DeckyNotFoundError("the fleet has no deckies")
        return deckies
    wanted = list(dict.fromkeys(names))
    deckies = list(queryset.filter(name__in=wanted).order_by("name"))
    unknown = sorted(set(wanted) - {decky.name for decky in deckies})
    if unknown:
        raise DeckyNotFoundError(f"unknown decky name(s): {', '.join(unknown)}", unknown=unknown)
    return deckies


def deckies_due_for_mutation(*, now: datetime | None = None) -> list[Decky]:
    """Deployed fleet deckies whose ``mutate_interval`` has elapsed since ``last_mutated``.

    A decky never mutated counts from its creation, so a fresh deploy is not rotated on the next tick.
    """
    now = now or timezone.now()
    candidates = _with_relations(
        Decky.objects.filter(topology__isnull=True, mutate_interval__isnull=False, state__in=list(DEPLOYED_STATES))
    )
    due = []
    for decky in candidates.order_by("name"):
        assert decky.mutate_interval is not None
        since = decky.last_mutated or decky.created_at
        if since + decky.mutate_interval <= now:
            due.append(decky)
    return due


def host_list(*, filters: Mapping[str, Any] | None = None) -> QuerySet[Host]:
    """Docker hosts ordered by name, filtered by :class:`HostFilterSet`."""
    queryset = Host.objects.all()
    if filters:
        queryset = HostFilterSet(data=filters, queryset=queryset).qs
    return queryset.order_by("name")


def host_get(*, host_id: uuid.UUID | str) -> Host:
    """The host with this id; raises HostNotFoundError."""
    try:
        host = Host.objects.filter(pk=uuid.UUID(str(host_id))).first()
    except ValueError:
        host = None
    if host is None:
        raise HostNotFoundError(f"host {host_id} does not exist")
    return host


def hosts_to_check() -> Iterable[Host]:
    """Hosts whose engine the health check pings (disabled hosts are left out)."""
    from deckies.choices import HostStatus

    return Host.objects.exclude(status=HostStatus.DISABLED).order_by("name")


# --- catalogue --------------------------------------------------------------------------------------------------------


class CatalogueEntryNotFoundError(NotFoundError):
    """No catalogue entry has this slug (404 on a catalogue route; a 422 where a decky names it)."""

    code = "not_found"


def service_catalogue_list() -> list[ServiceSpec]:
    """Built-in services (singletons included), then bring-your-own services, each sorted by slug."""
    from deckies.services import custom_service_specs

    return [*all_services(), *sorted(custom_service_specs().values(), key=lambda spec: spec.slug)]


def service_catalogue_get(*, slug: str) -> ServiceSpec:
    """One built-in or bring-your-own service; raises CatalogueEntryNotFoundError."""
    from deckies.services import service_spec

    try:
        return service_spec(slug)
    except CatalogueError as exc:
        raise CatalogueEntryNotFoundError(str(exc)) from None


def archetype_list() -> tuple[Archetype, ...]:
    return all_archetypes()


def archetype_get(*, slug: str) -> Archetype:
    """One archetype; raises CatalogueEntryNotFoundError."""
    try:
        return get_archetype(slug)
    except CatalogueError as exc:
        raise CatalogueEntryNotFoundError(str(exc)) from None


def distro_list() -> tuple[DistroProfile, ...]:
    return all_distros()


def distro_get(*, slug: str) -> DistroProfile:
    """One distro; raises CatalogueEntryNotFoundError."""
    try:
        return get_distro(slug)
    except CatalogueError as exc:
        raise CatalogueEntryNotFoundError(str(exc)) from None
