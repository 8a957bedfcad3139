"""The fleet reconciler: compare what the database wants with the containers the engine has, and optionally heal.

Desired: every fleet decky placed on the host whose state says its containers should exist (``running`` /
``degraded``) wants its base container and one container per service, all running. Observed: the containers
carrying the fleet labels on that host's engine (:func:`deckies.engine.runtime.fleet_containers`), matched to
deckies by the ``org.decnet.decky`` / ``org.decnet.service`` labels, never by parsing names.

Per decky the report lists containers **missing** (wanted, absent), **drifted** (present, not running) and
**extra** (present, not wanted: services no longer on the decky, or any container of a decky that should have
none). Containers labelled with a decky the database does not know on this host are **orphans**.

Healing (``heal=True``) queues :func:`deckies.operations.deploy_request` for each wanted decky with missing or
drifted containers (the engine recreates exactly those) and removes extra containers through the engine. It never
acts on a decky with an open lifecycle row (an operation is changing it right now), nor on deckies in ``failed`` /
``teardown_failed`` / ``tearing_down``, whose intent is ambiguous: they are reported and left to the operator
(deploy or tear down). Orphans are removed only when asked (``remove_orphans``): an engine shared with another
control plane (a test suite, a second installation) carries fleet containers this database has never heard of.

An engine that cannot be reached is never "everything is gone": the report carries ``engine_error`` and nothing
is changed, in the database or anywhere else.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from deckies.choices import DEPLOYED_STATES, DeckyState
from deckies.engine import docker_api, naming, runtime
from deckies.engine.errors import EngineError
from deckies.models import Decky
from decnet_site.exceptions import DomainError
from lifecycle.choices import OPEN_STATUSES
from lifecycle.models import DeckyLifecycle

if TYPE_CHECKING:
    from deckies.models import Host

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
    """How one fleet decky compares with its containers.

    ``wanted`` is whether its containers should exist; ``expected`` is ``base`` plus its service slugs when they
    should. ``busy`` names an open operation (the decky is then reported but never healed). ``actions`` says what
    healing did for it.
    """

    name: str
    state: str
    ip: str | None
    wanted: bool
    expected: list[str]
    running: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    drifted: list[ContainerIssue] = field(default_factory=list)
    extra: list[ContainerIssue] = field(default_factory=list)
    busy: str | None = None
    actions: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not (self.missing or self.drifted or self.extra)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
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
    """The outcome of one reconciliation of one host's fleet.

    ``engine_error`` is set when the engine could not be listed; the decky reports then carry the desired side
    only and nothing was changed. ``lifecycle_ids`` are the deploys healing queued; ``removed`` the containers it
    removed; ``errors`` what healing could not do.
    """

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


def _issue(container: runtime.ContainerState) -> ContainerIssue:
    return ContainerIssue(container.name, container.decky, container.service, container.status)


def _compare(decky: Decky, containers: list[runtime.ContainerState]) -> DeckyReport:
    wanted = decky.state in DEPLOYED_STATES
    slugs = [service.slug for service in decky.services.all()]
    report = DeckyReport(
        name=decky.name,
        state=decky.state,
        ip=decky.ip,
        wanted=wanted,
        expected=[BASE, *slugs] if wanted else [],
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


def _open_rows(names: Iterable[str]) -> dict[str, str]:
    rows = DeckyLifecycle.objects.filter(decky_name__in=list(names), status__in=sorted(OPEN_STATUSES))
    return {row.decky_name: f"{row.operation} {row.status} ({row.pk})" for row in rows.order_by("started_at")}


def _remove(host: Host | None, issues: list[ContainerIssue]) -> list[str]:
    """Remove exactly these containers (found again by label and name, so nothing else can be hit)."""
    if not issues:
        return []
    url = runtime.host_url(host)
    labels = {naming.LABEL_PROJECT: naming.fleet_project(), naming.LABEL_SCOPE: naming.SCOPE_FLEET}
    names = {issue.name for issue in issues}
    return docker_api.remove_containers(url, [c for c in docker_api.list_containers(url, labels) if c.name in names])


def _heal(
    report: ReconcileReport, deckies: dict[str, Decky], host: Host | None, run_inline: bool, remove_orphans: bool
) -> None:
    from deckies.operations import deploy_request

    for entry in report.deckies:
        if entry.healthy:
            continue
        if entry.busy:
            entry.actions.append(f"skipped: {entry.busy}")
            continue
        if entry.state not in DEPLOYED_STATES and entry.state not in NO_CONTAINER_STATES:
            entry.actions.append(f"skipped: state {entry.state}; deploy or tear it down")
            continue
        # The operation may have started since the report was taken: look once more right before acting.
        if _open_rows([entry.name]):
            entry.actions.append("skipped: an operation started meanwhile")
            continue
        try:
            if entry.extra:
                removed = _remove(host, entry.extra)
                report.removed.extend(removed)
                entry.actions.append(f"removed {', '.join(removed) or 'nothing (already gone)'}")
            if entry.wanted and (entry.missing or entry.drifted):
                (row,) = deploy_request(deckies=[deckies[entry.name]], run_inline=run_inline, actor=ACTOR)
                report.lifecycle_ids.append(str(row.pk))
                entry.actions.append(f"deploy {row.pk}")
        except (DomainError, EngineError) as exc:
            report.errors.append(f"{entry.name}: {exc}")
            entry.actions.append(f"failed: {exc}")
    if report.orphans and remove_orphans:
        try:
            report.removed.extend(_remove(host, report.orphans))
        except EngineError as exc:
            report.errors.append(f"orphans: {exc}")


def reconcile(
    *, heal: bool = False, host: Host | None = None, run_inline: bool = False, remove_orphans: bool = False
) -> ReconcileReport:
    """Compare the fleet deckies placed on ``host`` (None: the local engine) with the engine's containers.

    Read-only unless ``heal``: then deckies with missing or drifted containers get a deploy request (run here when
    ``run_inline``, else queued; their ids are in ``lifecycle_ids``) and extra containers are removed; orphan
    containers too when ``remove_orphans``.
    Raises nothing for engine trouble: an unreachable engine gives a report with ``engine_error`` set and no
    change at all. Healing failures are collected in ``errors``.
    """
    report = ReconcileReport(host=host.name if host is not None else None, checked_at=timezone.now(), heal=heal)
    observed: list[runtime.ContainerState] | None
    try:
        # Containers first, then open operations, then states: an operation that finishes between two reads has
        # committed its state together with its terminal row, so a fresh container is never taken for extra.
        observed = runtime.fleet_containers(host)
    except EngineError as exc:
        report.engine_error = str(exc)
        observed = None
    rows = Decky.objects.filter(topology__isnull=True)
    rows = rows.filter(host=host) if host is not None else rows.filter(host__isnull=True)
    names = list(rows.values_list("name", flat=True))
    busy = _open_rows(names)
    deckies = {d.name: d for d in rows.select_related("network", "host").prefetch_related("services").order_by("name")}
    if observed is None:
        for decky in deckies.values():
            wanted = decky.state in DEPLOYED_STATES
            slugs = [service.slug for service in decky.services.all()] if wanted else []
            report.deckies.append(
                DeckyReport(
                    name=decky.name,
                    state=decky.state,
                    ip=decky.ip,
                    wanted=wanted,
                    expected=[BASE, *slugs] if wanted else [],
                    busy=busy.get(decky.name),
                )
            )
        logger.warning("reconcile: engine unreachable, nothing changed: %s", report.engine_error)
        return report
    by_decky: dict[str, list[runtime.ContainerState]] = defaultdict(list)
    for container in observed:
        by_decky[container.decky].append(container)
    for name, decky in deckies.items():
        entry = _compare(decky, by_decky.pop(name, []))
        entry.busy = busy.get(name)
        report.deckies.append(entry)
    report.orphans = [_issue(c) for name in sorted(by_decky) for c in by_decky[name]]
    if heal:
        _heal(report, deckies, host, run_inline, remove_orphans)
    return report


__all__ = ["BASE", "ContainerIssue", "DeckyReport", "ReconcileReport", "reconcile"]
