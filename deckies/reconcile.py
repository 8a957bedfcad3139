"""The reconciler: compare what the database wants with the containers the engines have, record what is observed,
and (when healing) repair it through the job layer.

Desired: every decky whose state says its containers should exist (``running`` / ``degraded``) wants its base
container and one container per service, all running. Observed: the containers carrying the decky's scope labels
(the fleet of a host, or a topology), matched by the ``org.decnet.decky`` / ``org.decnet.service`` labels, never by
parsing names. Per decky the report lists containers **missing** (wanted, absent), **drifted** (present, not
running) and **extra** (present, not wanted). Containers labelled with a decky the database does not know in that
scope are **orphans**.

Observed state is written back (:func:`deckies.states.decky_state_set`): a wanted decky with missing or drifted
containers becomes ``degraded`` with the reason, a degraded one whose containers are all fine again becomes
``running``. Healing (``heal=True``; the schedule heals unless ``DECNET_AUTO_HEAL=0``) queues one ``repair`` row
per drifted decky (the engine recreates exactly what is wrong; after an engine restart, whose service containers
lost their namespace, that brings every decky back), and a teardown for a fleet decky that should have no
container but has some. Nothing is done to a decky with an open operation, nor to deckies in ``failed`` /
``teardown_failed`` / ``tearing_down``, whose intent is ambiguous: they are reported and left to the operator.
Orphans are removed only when asked (``remove_orphans``): an engine may be shared with another installation.

An engine that cannot be reached is never "everything is gone": the report carries ``engine_error`` and nothing is
changed, in the database or anywhere else.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from deckies.choices import DEPLOYED_STATES, DeckyState
from deckies.engine import docker_api, naming, runtime
from deckies.engine.errors import EngineError
from deckies.engine.specs import Scope
from deckies.models import Decky, Host
from deckies.operations import repair_request, teardown_request
from deckies.scopes import fleet_scope, provider_for
from deckies.states import can_move, decky_state_set
from decnet_site.exceptions import DomainError
from lifecycle.choices import OPEN_STATUSES
from lifecycle.models import DeckyLifecycle

logger = logging.getLogger(__name__)

#: The key of a decky's base container in the ``missing`` lists (service containers use their slug).
BASE = "base"
#: States whose containers may be removed by healing: the decky should have none.
NO_CONTAINER_STATES: frozenset[str] = frozenset({DeckyState.PENDING, DeckyState.TORN_DOWN})
ACTOR = "reconciler"


@dataclass(frozen=True, slots=True)
class ContainerIssue:
    """One container the report talks about."""

    name: str
    decky: str
    service: str | None
    status: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "decky": self.decky, "service": self.service or BASE, "status": self.status}


@dataclass
class DeckyReport:
    """How one decky compares with its containers. ``busy`` names an open operation (the decky is then reported
    but neither recorded nor healed); ``actions`` says what reconciling did for it."""

    name: str
    state: str
    ip: str | None
    wanted: bool
    expected: list[str]
    scope: str = "fleet"
    topology_id: str | None = None
    running: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    drifted: list[ContainerIssue] = field(default_factory=list)
    extra: list[ContainerIssue] = field(default_factory=list)
    busy: str | None = None
    actions: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not (self.missing or self.drifted or self.extra)

    def reason(self) -> str:
        """What is wrong, in one line (empty when healthy)."""
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(self.missing))
        if self.drifted:
            parts.append("not running " + ", ".join(f"{c.service or BASE} ({c.status})" for c in self.drifted))
        if self.extra:
            parts.append("unexpected " + ", ".join(c.name for c in self.extra))
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "topology_id": self.topology_id,
            "state": self.state,
            "ip": self.ip,
            "wanted": self.wanted,
            "healthy": self.healthy,
            "expected": self.expected,
            "running": self.running,
            "missing": self.missing,
            "drifted": [c.as_dict() for c in self.drifted],
            "extra": [c.as_dict() for c in self.extra],
            "busy": self.busy,
            "actions": self.actions,
        }


@dataclass
class ReconcileReport:
    """The outcome of one reconciliation. ``engine_error`` is set when an engine could not be listed (its deckies'
    reports then carry the desired side only and nothing was changed); ``lifecycle_ids`` are the operations healing
    queued; ``removed`` the orphan containers removed; ``errors`` what healing could not do."""

    host: str | None
    checked_at: datetime
    heal: bool
    engine_error: str | None = None
    deckies: list[DeckyReport] = field(default_factory=list)
    orphans: list[ContainerIssue] = field(default_factory=list)
    lifecycle_ids: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.engine_error is None and not self.orphans and all(d.healthy for d in self.deckies)

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "checked_at": self.checked_at.isoformat(),
            "heal": self.heal,
            "healthy": self.healthy,
            "engine_error": self.engine_error,
            "deckies": [d.as_dict() for d in self.deckies],
            "orphans": [c.as_dict() for c in self.orphans],
            "lifecycle_ids": self.lifecycle_ids,
            "removed": self.removed,
            "errors": self.errors,
        }


#: Called after each reconciliation with its report (the topology app moves its topologies active ↔ degraded).
Observer = Callable[[ReconcileReport, list[Decky]], None]
_observers: list[Observer] = []


def register_observer(observer: Observer) -> None:
    if observer not in _observers:
        _observers.append(observer)


def _issue(container: runtime.ContainerState) -> ContainerIssue:
    return ContainerIssue(container.name, container.decky, container.service, container.status)


def _compare(decky: Decky, containers: list[runtime.ContainerState], scope_label: str) -> DeckyReport:
    wanted = decky.state in DEPLOYED_STATES
    slugs = [service.slug for service in decky.services.all()]
    report = DeckyReport(
        name=decky.name,
        state=decky.state,
        ip=decky.ip,
        wanted=wanted,
        expected=[BASE, *slugs] if wanted else [],
        scope=scope_label,
        topology_id=None if decky.topology_id is None else str(decky.topology_id),
    )
    seen: set[str] = set()
    for container in sorted(containers, key=lambda c: c.name):
        key = container.service or BASE
        if not wanted or (container.service is not None and container.service not in slugs) or key in seen:
            report.extra.append(_issue(container))
            continue
        seen.add(key)
        if container.status == "running":
            report.running.append(key)
        else:
            report.drifted.append(_issue(container))
    report.missing = [key for key in report.expected if key not in seen]
    return report


def _busy(deckies: Iterable[Decky]) -> dict[int, str]:
    rows = DeckyLifecycle.objects.filter(
        decky_id__in=[d.pk for d in deckies], status__in=sorted(OPEN_STATUSES)
    ).order_by("started_at")
    return {row.decky_id: f"{row.operation} {row.status} ({row.pk})" for row in rows if row.decky_id is not None}


def _record_observed(entry: DeckyReport, decky: Decky) -> None:
    """Write what was seen onto a wanted, idle decky: degraded with the reason, or back to running."""
    if not entry.wanted or entry.busy:
        return
    if not entry.healthy:
        target, error = DeckyState.DEGRADED, f"reconcile: {entry.reason()}"
    elif decky.state == DeckyState.DEGRADED:
        target, error = DeckyState.RUNNING, ""
    else:
        return
    if can_move(decky.state, target) and (decky.state != target or decky.last_error != error):
        decky_state_set(decky, target, error=error, seen=entry.healthy)
        entry.actions.append(f"state {target}")


def _heal_one(entry: DeckyReport, decky: Decky, report: ReconcileReport, run_inline: bool) -> None:
    if entry.healthy:
        return
    if entry.busy:
        entry.actions.append(f"skipped: {entry.busy}")
        return
    if entry.state not in DEPLOYED_STATES and entry.state not in NO_CONTAINER_STATES:
        entry.actions.append(f"skipped: state {entry.state}; deploy or tear it down")
        return
    try:
        if entry.wanted:
            row = repair_request(decky=decky, reason=entry.reason(), run_inline=run_inline, actor=ACTOR)
        elif decky.topology_id is None:
            row = teardown_request(decky=decky, run_inline=run_inline, actor=ACTOR)
        else:
            entry.actions.append("skipped: containers of an undeployed topology decky (tear the topology down)")
            return
        report.lifecycle_ids.append(str(row.pk))
        entry.actions.append(f"{row.operation} {row.pk}")
    except DomainError as exc:
        report.errors.append(f"{entry.name}: {exc}")
        entry.actions.append(f"failed: {exc}")


def _reconcile_scope(
    scope: Scope,
    label: str,
    deckies: list[Decky],
    report: ReconcileReport,
    *,
    heal: bool,
    run_inline: bool,
    remove_orphans: bool,
) -> None:
    try:
        # Containers first, then open operations, then states: an operation that finishes between two reads has
        # committed its state together with its terminal row, so a fresh container is never taken for extra.
        observed = runtime.containers(scope)
    except EngineError as exc:
        report.engine_error = str(exc)
        busy = _busy(deckies)
        for decky in deckies:
            entry = _compare(decky, [], label)
            entry.missing, entry.busy = [], busy.get(decky.pk)
            report.deckies.append(entry)
        logger.warning("reconcile: engine of %s unreachable, nothing changed: %s", label, exc)
        return
    busy = _busy(deckies)
    fresh = {d.pk: d for d in Decky.objects.filter(pk__in=[d.pk for d in deckies]).prefetch_related("services")}
    by_decky: dict[str, list[runtime.ContainerState]] = defaultdict(list)
    for container in observed:
        by_decky[container.decky].append(container)
    for decky in deckies:
        current = fresh.get(decky.pk)
        if current is None:
            continue
        current.host, current.network, current.topology = decky.host, decky.network, decky.topology
        entry = _compare(current, by_decky.pop(current.name, []), label)
        entry.busy = busy.get(current.pk)
        _record_observed(entry, current)
        if heal:
            _heal_one(entry, current, report, run_inline)
        report.deckies.append(entry)
    orphans = [_issue(c) for name in sorted(by_decky) for c in by_decky[name]]
    report.orphans.extend(orphans)
    if heal and remove_orphans and orphans:
        names = {issue.name for issue in orphans}
        try:
            present = docker_api.list_containers(scope.url, {naming.LABEL_PROJECT: scope.project})
            report.removed.extend(docker_api.remove_containers(scope.url, [c for c in present if c.name in names]))
        except EngineError as exc:
            report.errors.append(f"orphans: {exc}")


def _deckies(queryset: Any) -> list[Decky]:
    return list(queryset.select_related("network", "host", "topology").prefetch_related("services").order_by("name"))


def reconcile(
    *, heal: bool = False, host: Host | None = None, run_inline: bool = False, remove_orphans: bool = False
) -> ReconcileReport:
    """Reconcile the fleet deckies placed on ``host`` (None: the local engine) with that engine's containers.

    Records observed state; when ``heal``, queues repairs (run here when ``run_inline``) and removes orphans when
    ``remove_orphans``. Raises nothing for engine trouble (``engine_error`` is set and nothing changes).
    """
    report = ReconcileReport(host=host.name if host is not None else None, checked_at=timezone.now(), heal=heal)
    rows = Decky.objects.filter(topology__isnull=True)
    rows = rows.filter(host=host) if host is not None else rows.filter(host__isnull=True)
    _reconcile_scope(
        fleet_scope(host), "fleet", _deckies(rows), report, heal=heal, run_inline=run_inline,
        remove_orphans=remove_orphans,
    )  # fmt: skip
    for observer in _observers:
        observer(report, [])
    return report


def reconcile_all(*, heal: bool | None = None, run_inline: bool = False) -> ReconcileReport:
    """Reconcile every scope: the fleet of every host and every topology with deployed deckies. ``heal`` defaults
    to ``DECNET_AUTO_HEAL``. Observers (the topology app) see the report and the deckies."""
    heal = bool(settings.DECNET_AUTO_HEAL) if heal is None else heal
    report = ReconcileReport(host=None, checked_at=timezone.now(), heal=heal)
    groups: dict[Scope, tuple[str, list[Decky]]] = {}
    deckies = _deckies(Decky.objects.all())
    for host in [None, *Host.objects.all()]:
        fleet = [d for d in deckies if d.topology_id is None and d.host_id == (None if host is None else host.pk)]
        if fleet or host is None:
            groups[fleet_scope(host)] = ("fleet" if host is None else f"fleet:{host.name}", fleet)
    for decky in deckies:
        if decky.topology_id is None or decky.state not in DEPLOYED_STATES:
            continue
        try:
            scope = provider_for(decky).scope(decky)
        except DomainError as exc:
            report.errors.append(f"{decky.name}: {exc}")
            continue
        label = f"topology:{decky.topology.name if decky.topology else decky.topology_id}"
        groups.setdefault(scope, (label, []))[1].append(decky)
    for scope, (label, members) in groups.items():
        _reconcile_scope(scope, label, members, report, heal=heal, run_inline=run_inline, remove_orphans=False)
    for observer in _observers:
        observer(report, deckies)
    return report


__all__ = [
    "BASE",
    "ContainerIssue",
    "DeckyReport",
    "ReconcileReport",
    "reconcile",
    "reconcile_all",
    "register_observer",
]
