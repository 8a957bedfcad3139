"""The work behind each decky operation, run by the job layer (:mod:`lifecycle.jobs`).

Each class is registered for an ``(operation, scope)`` in :class:`deckies.apps.DeckiesConfig`. ``run`` talks to the
engine outside any transaction and returns one :class:`~lifecycle.jobs.Outcome` per row, with a sentence saying
what happened. ``record`` runs inside the transaction that ends the rows (whether the worker or the reaper ends
them) and is the one place a decky's state is written after an operation.

"Succeeded" means ready: a deploy, a repair, a live mutate or a service added succeeds only once every service
container of the decky runs and accepts connections on its TCP ports (checked from inside the decky, bounded by
``DECNET_READY_TIMEOUT``); otherwise the row fails naming the service that never came up.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.utils import timezone

from deckies.choices import DeckyState
from deckies.engine import readiness, runtime
from deckies.engine.errors import EngineError
from deckies.engine.specs import Scope
from deckies.models import Decky, DeckyService, Host
from deckies.scopes import decky_plan, fleet_scope, load_deckies, provider_for, ready_checks, render_fleet
from deckies.states import can_move, decky_state_set, state_topic
from lifecycle.jobs import Outcome
from lifecycle.models import DeckyLifecycle
from lifecycle.services import event_emit

logger = logging.getLogger(__name__)


class NotReadyError(EngineError):
    """The containers were created, but a service never came up (its container stopped, or its ports stayed
    closed for the whole readiness wait) (502)."""

    status_code = 502
    code = "not_ready"


class DeckyGoneError(EngineError):
    """The decky was deleted before its operation ran."""

    status_code = 404
    code = "decky_not_found"


def ready_timeout() -> float:
    return float(settings.DECNET_READY_TIMEOUT)


def _deckies_of(rows: Sequence[DeckyLifecycle]) -> dict[uuid.UUID, Decky | None]:
    by_pk = {decky.pk: decky for decky in load_deckies([row.decky_id for row in rows if row.decky_id is not None])}
    return {row.pk: by_pk.get(row.decky_id or 0) for row in rows}


def _pk(row: DeckyLifecycle) -> int:
    """The row's decky id (0, which matches nothing, once the decky is deleted)."""
    return row.decky_id or 0


def _gone(row: DeckyLifecycle) -> Outcome:
    return Outcome.failure(DeckyGoneError(f"decky {row.decky_name!r} no longer exists"))


def _set(decky_id: int | None, state: str, error: str = "", *, seen: bool = False) -> None:
    """Write the decky's state when the machine allows it from where it stands (else log why not)."""
    if decky_id is None:
        return
    current = Decky.objects.filter(pk=decky_id).values_list("state", flat=True).first()
    if current is None:
        return
    if not can_move(current, state):
        logger.info("decky %s stays %s (an operation ended %s, which it cannot move to)", decky_id, current, state)
        return
    decky_state_set(decky_id, state, error=error, seen=seen)


def _verdict(decky: Decky, verdict: readiness.DeckyReadiness, checks: Sequence[readiness.ServiceCheck]) -> Outcome:
    """The outcome of a readiness wait: which services answer on which ports, or what never came up."""
    if not verdict.ready:
        problems = "; ".join(verdict.problems)
        return Outcome.failure(NotReadyError(problems), f"{decky.name}: {problems}")
    ports = sorted({port for check in checks for port in check.tcp_ports})
    where = f" on {decky.ip}" if decky.ip else ""
    listening = f"; port(s) {', '.join(map(str, ports))} accept connections" if ports else ""
    return Outcome.success(f"{decky.name} is up{where}: {', '.join(c.slug for c in checks) or 'base only'}{listening}")


def _ready(decky: Decky, scope: Scope, names: Sequence[str] | None = None) -> Outcome:
    """Wait until ``decky`` (or only its services ``names``) is ready."""
    checks = [c for c in ready_checks(scope, decky_plan(decky)) if names is None or c.slug in names]
    return _verdict(decky, readiness.check_decky(scope, decky.name, checks, ready_timeout()), checks)


# --- fleet deploy and teardown ----------------------------------------------------------------------------------------


def _by_host(deckies: Sequence[Decky]) -> list[tuple[Host | None, list[Decky]]]:
    groups: dict[Any, tuple[Host | None, list[Decky]]] = {}
    for decky in deckies:
        groups.setdefault(decky.host_id, (decky.host if decky.host_id is not None else None, []))[1].append(decky)
    return [groups[key] for key in sorted(groups, key=str)]


class DeployFleet:
    """Bring fleet deckies up, one compose call per host for the whole job, then wait until each is ready."""

    def run(self, rows: Sequence[DeckyLifecycle]) -> Mapping[uuid.UUID, Outcome]:
        deckies = _deckies_of(rows)
        outcomes: dict[uuid.UUID, Outcome] = {row.pk: _gone(row) for row in rows if deckies[row.pk] is None}
        present = [d for d in deckies.values() if d is not None]
        row_of = {decky.pk: row.pk for row in rows if (decky := deckies[row.pk]) is not None}
        for host, group in _by_host(present):
            scope = fleet_scope(host)
            names = [decky.name for decky in group]
            try:
                runtime.deploy_deckies(scope, functools.partial(render_fleet, host, include=group), names)
            except EngineError as exc:
                for decky in group:
                    outcomes[row_of[decky.pk]] = Outcome.failure(exc, f"deploy of {decky.name} failed: {exc}")
                continue
            plans = {decky.name: ready_checks(scope, decky_plan(decky)) for decky in group}
            verdicts = readiness.wait_ready(scope, plans, ready_timeout())
            for decky in group:
                outcomes[row_of[decky.pk]] = _verdict(decky, verdicts[decky.name], plans[decky.name])
        return outcomes

    def record(self, finished: Sequence[tuple[DeckyLifecycle, Outcome]]) -> None:
        for row, outcome in finished:
            if outcome.ok:
                _set(row.decky_id, DeckyState.RUNNING, seen=True)
                # A first deploy is the decky's "creation" mutation: the rotation interval counts from here.
                Decky.objects.filter(pk=_pk(row), last_mutated__isnull=True).update(last_mutated=timezone.now())
            else:
                _set(row.decky_id, DeckyState.FAILED, outcome.message)


class TeardownFleet:
    """Remove every container of fleet deckies (their bases included) and drop them from the host's file."""

    def run(self, rows: Sequence[DeckyLifecycle]) -> Mapping[uuid.UUID, Outcome]:
        deckies = _deckies_of(rows)
        outcomes: dict[uuid.UUID, Outcome] = {row.pk: _gone(row) for row in rows if deckies[row.pk] is None}
        row_of = {decky.pk: row.pk for row in rows if (decky := deckies[row.pk]) is not None}
        for host, group in _by_host([d for d in deckies.values() if d is not None]):
            names = [decky.name for decky in group]
            for decky in group:
                _set(decky.pk, DeckyState.TEARING_DOWN, decky.last_error)
            try:
                runtime.teardown_deckies(
                    fleet_scope(host),
                    functools.partial(render_fleet, host, exclude=names),
                    functools.partial(render_fleet, host, include=group),
                    names,
                )
            except EngineError as exc:
                for decky in group:
                    outcomes[row_of[decky.pk]] = Outcome.failure(exc, f"teardown of {decky.name} failed: {exc}")
                continue
            for decky in group:
                outcomes[row_of[decky.pk]] = Outcome.success(f"{decky.name}: every container removed")
        return outcomes

    def record(self, finished: Sequence[tuple[DeckyLifecycle, Outcome]]) -> None:
        for row, outcome in finished:
            if outcome.ok:
                _set(row.decky_id, DeckyState.TORN_DOWN)
            else:
                state = Decky.objects.filter(pk=_pk(row)).values_list("state", flat=True).first()
                if state == DeckyState.TEARING_DOWN:
                    _set(row.decky_id, DeckyState.TEARDOWN_FAILED, outcome.message)


# --- any scope: mutate, repair ----------------------------------------------------------------------------------------


def _apply(row: DeckyLifecycle, decky: Decky | None, verb: str) -> Outcome:
    """Re-render the decky's scope and bring exactly its containers in line (drop services it no longer has, start
    new ones, recreate a decky with a stopped container), then wait until it is ready."""
    if decky is None:
        return _gone(row)
    provider = provider_for(decky)
    scope = provider.scope(decky)
    try:
        runtime.deploy_deckies(scope, lambda: provider.render(decky), [decky.name])
    except EngineError as exc:
        return Outcome.failure(exc, f"{verb} of {decky.name} failed: {exc}")
    return _ready(decky, scope)


class Mutate:
    """Apply a rotation already committed to the decky's services (only the desired state when not live)."""

    def run(self, rows: Sequence[DeckyLifecycle]) -> Mapping[uuid.UUID, Outcome]:
        deckies = _deckies_of(rows)
        outcomes = {}
        for row in rows:
            decky = deckies[row.pk]
            if decky is not None and not row.params.get("live"):
                services = ", ".join(s.slug for s in decky.services.all())
                outcomes[row.pk] = Outcome.success(f"{decky.name} now runs {services} once deployed (not running now)")
            else:
                outcomes[row.pk] = _apply(row, decky, "mutate")
        return outcomes

    def record(self, finished: Sequence[tuple[DeckyLifecycle, Outcome]]) -> None:
        for row, outcome in finished:
            if not row.params.get("live"):
                continue
            if outcome.ok:
                _set(row.decky_id, DeckyState.RUNNING, seen=True)
            else:
                _set(row.decky_id, DeckyState.FAILED, outcome.message)


class Repair:
    """Recreate what drifted on a deployed decky (missing or stopped containers), found by the reconciler."""

    def run(self, rows: Sequence[DeckyLifecycle]) -> Mapping[uuid.UUID, Outcome]:
        deckies = _deckies_of(rows)
        outcomes = {}
        for row in rows:
            outcome = _apply(row, deckies[row.pk], "repair")
            reason = str(row.params.get("reason") or "drift")
            outcomes[row.pk] = Outcome.success(f"repaired ({reason}): {outcome.message}") if outcome.ok else outcome
        return outcomes

    def record(self, finished: Sequence[tuple[DeckyLifecycle, Outcome]]) -> None:
        for row, outcome in finished:
            if outcome.ok:
                _set(row.decky_id, DeckyState.RUNNING, seen=True)
            else:
                _set(row.decky_id, DeckyState.DEGRADED, outcome.message)


# --- any scope: one service live (run in the request, see deckies.live) -----------------------------------------------


def _services_of(decky_id: int) -> list[str]:
    return list(
        DeckyService.objects.filter(decky_id=decky_id).order_by("position", "slug").values_list("slug", flat=True)
    )


def _service_event(row: DeckyLifecycle, verb: str) -> None:
    decky = Decky.objects.filter(pk=_pk(row)).first()
    if decky is None:
        return
    event_emit(
        topic=state_topic(decky, f"service.{verb}"),
        type=f"service_{verb}",
        payload={
            "decky_name": decky.name,
            "topology_id": None if decky.topology_id is None else str(decky.topology_id),
            "service_name": row.params.get("service"),
            "services": _services_of(decky.pk),
            "live": bool(row.params.get("live")),
            "lifecycle_id": str(row.pk),
            "actor": row.actor,
        },
    )


class ServiceAdd:
    """Start one service container of a live decky (nothing else restarts) and wait until it answers."""

    def run(self, rows: Sequence[DeckyLifecycle]) -> Mapping[uuid.UUID, Outcome]:
        deckies = _deckies_of(rows)
        outcomes = {}
        for row in rows:
            decky, slug = deckies[row.pk], str(row.params.get("service"))
            if decky is None:
                outcomes[row.pk] = _gone(row)
            elif not row.params.get("live"):
                outcomes[row.pk] = Outcome.success(f"{slug} added to {decky.name}; it starts on the next deploy")
            else:
                provider = provider_for(decky)
                scope = provider.scope(decky)
                try:
                    runtime.add_service(scope, functools.partial(provider.render, decky), decky.name, slug)
                except EngineError as exc:
                    outcomes[row.pk] = Outcome.failure(exc, f"adding {slug} to {decky.name} failed: {exc}")
                    continue
                outcomes[row.pk] = _ready(decky, scope, [slug])
        return outcomes

    def record(self, finished: Sequence[tuple[DeckyLifecycle, Outcome]]) -> None:
        for row, outcome in finished:
            if outcome.ok:
                _service_event(row, "added")
            else:
                # The database never claims a change Docker did not make: the service row goes again.
                DeckyService.objects.filter(decky_id=_pk(row), slug=row.params.get("service")).delete()
                Decky.objects.filter(pk=_pk(row)).update(last_error=outcome.message[:4000])


class ServiceRemove:
    """Stop and remove one service container of a live decky; nothing else restarts."""

    def run(self, rows: Sequence[DeckyLifecycle]) -> Mapping[uuid.UUID, Outcome]:
        deckies = _deckies_of(rows)
        outcomes = {}
        for row in rows:
            decky, slug = deckies[row.pk], str(row.params.get("service"))
            if decky is None:
                outcomes[row.pk] = _gone(row)
            elif not row.params.get("live"):
                outcomes[row.pk] = Outcome.success(f"{slug} removed from {decky.name} (it was not running)")
            else:
                provider = provider_for(decky)
                try:
                    runtime.remove_service(
                        provider.scope(decky), functools.partial(provider.render, decky), decky.name, slug
                    )
                except EngineError as exc:
                    outcomes[row.pk] = Outcome.failure(exc, f"removing {slug} from {decky.name} failed: {exc}")
                    continue
                outcomes[row.pk] = Outcome.success(f"{slug} stopped and removed from {decky.name}")
        return outcomes

    def record(self, finished: Sequence[tuple[DeckyLifecycle, Outcome]]) -> None:
        for row, outcome in finished:
            if outcome.ok:
                _service_event(row, "removed")
                continue
            saved = row.params.get("saved") or {}
            DeckyService.objects.get_or_create(
                decky_id=_pk(row),
                slug=row.params.get("service"),
                defaults={"config": saved.get("config") or {}, "position": int(saved.get("position") or 0)},
            )
            Decky.objects.filter(pk=_pk(row)).update(last_error=outcome.message[:4000])
