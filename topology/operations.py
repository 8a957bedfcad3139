"""Deploying and tearing down whole topologies through the job layer.

A request moves the topology's status synchronously and creates one lifecycle row per decky (one job), which the
job layer hands to a worker once the transaction commits:

- :func:`topology_deploy_request`: pending → deploying. The topology is validated first, under its row lock, so an
  invalid topology is refused with :class:`~topology.exceptions.TopologyValidationError` (400, every error listed)
  and its status does not move (DECNET answered 202 and left the reason in its logs).
- :func:`topology_teardown_request`: active | degraded | failed | deploying → tearing_down.

The work (:class:`DeployTopology`, :class:`TeardownTopology`) reports one outcome per decky; its ``record`` writes
the deckies' states, the addresses the engine allocated, and the topology's final status: deploying → active (every
decky ready) | degraded (some not) | failed (none); tearing_down → torn_down | degraded (retry the teardown). The
reaper ends rows whose worker vanished through the same ``record``, so a lost deploy leaves ``failed`` and a lost
teardown ``degraded`` within seconds, never a topology stuck in a transitional status.

A teardown requested while a deploy runs wins: the deploy, finding its topology no longer deploying when the engine
returns, removes what it created instead of recording it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence

from django.db import transaction

from deckies.choices import DeckyState
from deckies.engine import readiness, runtime
from deckies.engine.errors import ComposeCommandError, EngineError
from deckies.handlers import ready_timeout
from deckies.models import Decky
from deckies.scopes import decky_plan, ready_checks
from deckies.states import can_move, decky_state_set
from lifecycle import jobs
from lifecycle.choices import LifecycleOperation
from lifecycle.jobs import Outcome
from lifecycle.models import DeckyLifecycle
from lifecycle.services import RowSpec, lifecycle_create, truncate_error
from topology import services, validation
from topology.exceptions import TopologyNotFoundError, VersionConflict
from topology.models import LAN, Edge, Topology
from topology.plans import render_topology, topology_scope
from topology.status import TopologyStatus, assert_transition

logger = logging.getLogger(__name__)

#: At most this many container names are spelled out in a degraded reason.
MAX_NAMED = 8


def failure_reason(exc: BaseException) -> str:
    """``'<Type>: <message>'`` plus the tail of compose's stderr when there is one, bounded for storage."""
    text = f"{type(exc).__name__}: {exc}"
    tail = exc.stderr_tail if isinstance(exc, ComposeCommandError) else ""
    if tail and tail not in text:
        text = f"{text}; stderr: {tail}"
    return truncate_error(text) or ""


def _lock(topology_id: uuid.UUID | str) -> Topology:
    topology = Topology.objects.select_for_update().filter(pk=topology_id).first()
    if topology is None:
        raise TopologyNotFoundError(f"topology {topology_id} does not exist")
    return topology


def _rows_for(topology: Topology, operation: str, actor: str | None) -> list[DeckyLifecycle]:
    """One row per decky of the topology (one naming the topology itself when it has none), as one job."""
    deckies = list(Decky.objects.filter(topology=topology).order_by("name"))
    specs = [
        RowSpec(
            decky_name=d.name,
            operation=operation,
            decky_id=d.pk,
            topology_id=topology.pk,
            host_uuid=None if d.host_id is None else str(d.host_id),
            actor=actor or "system",
        )
        for d in deckies
    ] or [RowSpec(decky_name=topology.name, operation=operation, topology_id=topology.pk, actor=actor or "system")]
    return lifecycle_create(specs)


def topology_deploy_request(
    *,
    topology: Topology | uuid.UUID | str,
    run_inline: bool = False,
    actor: str | None = None,
    expected_version: int | None = None,
) -> tuple[Topology, list[DeckyLifecycle]]:
    """Validate the topology, move it pending → deploying and queue its deploy; returns it and the rows.

    Contract: under the topology's row lock (so no edit can slip in between), the status must allow the move
    (else :class:`~topology.status.TopologyStatusError`, 409 with ``legal_next``), the version must equal
    ``expected_version`` when given (else :class:`VersionConflict`) and validation must find no error (else
    :class:`~topology.exceptions.TopologyValidationError`, 400); nothing changes on any refusal. Warnings are
    named in the status event's reason. Raises QueueUnavailableError (503) when the broker refuses the job; its rows
    are then failed and the topology with them.
    """
    pk = topology.pk if isinstance(topology, Topology) else topology
    with transaction.atomic():
        locked = _lock(pk)
        assert_transition(locked.status, TopologyStatus.DEPLOYING)
        if expected_version is not None and locked.version != expected_version:
            raise VersionConflict(current=locked.version, expected=expected_version)
        warnings = validation.assert_deployable(locked)
        reason = f"deploy requested by {actor or 'system'}"
        if warnings:
            reason += f"; {len(warnings)} warning(s): {', '.join(sorted({w.code for w in warnings}))}"
        moved = services.topology_transition(topology_id=locked.pk, to=TopologyStatus.DEPLOYING, reason=reason)
        rows = _rows_for(locked, LifecycleOperation.DEPLOY, actor)
        jobs.submit(rows, run_inline=run_inline)
    return moved, rows


def topology_teardown_request(
    *, topology: Topology | uuid.UUID | str, run_inline: bool = False, actor: str | None = None
) -> tuple[Topology, list[DeckyLifecycle]]:
    """Move the topology to tearing_down (from active, degraded, failed or deploying) and queue its teardown;
    returns it and the rows.

    Raises :class:`~topology.status.TopologyStatusError` (409, ``legal_next``) from any other status: a pending
    topology has nothing to tear down (delete it), and a second teardown is refused while one is under way.
    """
    pk = topology.pk if isinstance(topology, Topology) else topology
    with transaction.atomic():
        locked = _lock(pk)
        assert_transition(locked.status, TopologyStatus.TEARING_DOWN)
        moved = services.topology_transition(
            topology_id=locked.pk, to=TopologyStatus.TEARING_DOWN, reason=f"teardown requested by {actor or 'system'}"
        )
        rows = _rows_for(locked, LifecycleOperation.TEARDOWN, actor)
        jobs.submit(rows, run_inline=run_inline)
    return moved, rows


# --- the work ---------------------------------------------------------------------------------------------------------


def _topology_of(rows: Sequence[DeckyLifecycle]) -> Topology | None:
    return Topology.objects.filter(pk=rows[0].topology_id).first() if rows and rows[0].topology_id else None


def _all(rows: Sequence[DeckyLifecycle], outcome: Outcome) -> dict[uuid.UUID, Outcome]:
    return {row.pk: outcome for row in rows}


def _set(decky_id: int | None, state: str, error: str = "", *, seen: bool = False) -> None:
    if decky_id is None:
        return
    current = Decky.objects.filter(pk=decky_id).values_list("state", flat=True).first()
    if current is not None and can_move(current, state):
        decky_state_set(decky_id, state, error=error, seen=seen)


def _named(names: Sequence[str]) -> str:
    more = len(names) - MAX_NAMED
    return ", ".join(names[:MAX_NAMED]) + (f" and {more} more" if more > 0 else "")


class DeployTopology:
    """Create the topology's networks and containers as one compose project, then wait for each decky."""

    def run(self, rows: Sequence[DeckyLifecycle]) -> Mapping[uuid.UUID, Outcome]:
        topology = _topology_of(rows)
        if topology is None or topology.status != TopologyStatus.DEPLOYING:
            status = "deleted" if topology is None else topology.status
            return _all(rows, Outcome.failure(EngineError(f"the topology is {status}, no longer deploying")))
        scope = topology_scope(topology)
        try:
            report = runtime.deploy_project(scope, lambda: render_topology(topology))
        except EngineError as exc:
            return _all(rows, Outcome.failure(exc, failure_reason(exc)))
        deckies = {d.name: d for d in Decky.objects.filter(topology=topology).prefetch_related("services")}
        checks = {name: ready_checks(scope, decky_plan(d)) for name, d in deckies.items()}
        verdicts = readiness.wait_ready(scope, checks, ready_timeout())
        topology.refresh_from_db(fields=["status"])
        if topology.status != TopologyStatus.DEPLOYING:
            # A teardown was requested meanwhile and wins: nothing may keep running for this topology.
            logger.warning("topology %s left deploying during its deploy; removing what it created", topology.name)
            try:
                runtime.remove_project(scope)
            except EngineError:
                logger.exception("could not remove topology %s after an interrupted deploy", topology.name)
            return _all(rows, Outcome.failure(EngineError(f"teardown requested during the deploy ({topology.status})")))
        outcomes = {}
        for row in rows:
            verdict = verdicts.get(row.decky_name)
            addresses = report.addresses.get(row.decky_name, {})
            if verdict is not None and verdict.ready:
                where = ", ".join(f"{ip} on {lan}" for lan, ip in sorted(addresses.items()))
                outcomes[row.pk] = Outcome.success(f"{row.decky_name} is up ({where})", addresses=addresses)
            else:
                problems = "; ".join(verdict.problems) if verdict else "no container reported"
                outcomes[row.pk] = Outcome(
                    ok=False,
                    message=f"{row.decky_name}: {problems}",
                    error=EngineError(problems),
                    data={"addresses": addresses},
                )
        return outcomes

    def record(self, finished: Sequence[tuple[DeckyLifecycle, Outcome]]) -> None:
        topology = _lock(finished[0][0].topology_id) if finished[0][0].topology_id else None
        if topology is None or topology.status != TopologyStatus.DEPLOYING:
            return
        lans = {str(lan.pk): lan.name for lan in LAN.objects.filter(topology=topology)}
        dmz = next((lan.name for lan in LAN.objects.filter(topology=topology, is_dmz=True)), None)
        for row, outcome in finished:
            addresses = dict(outcome.data.get("addresses") or {})
            if addresses and row.decky_id is not None:
                for edge in Edge.objects.filter(decky_id=row.decky_id, ip__isnull=True):
                    ip = addresses.get(lans.get(str(edge.lan_id), ""))
                    if ip:
                        Edge.objects.filter(pk=edge.pk).update(ip=ip)
                home = addresses[dmz] if dmz in addresses else addresses[min(addresses)]
                Decky.objects.filter(pk=row.decky_id).update(ip=home)
            if outcome.ok:
                _set(row.decky_id, DeckyState.RUNNING, seen=True)
            else:
                _set(row.decky_id, DeckyState.FAILED, outcome.message)
        failed = [row.decky_name for row, outcome in finished if not outcome.ok]
        if not failed:
            target, reason = TopologyStatus.ACTIVE, f"all {len(finished)} decky(s) running"
        elif len(failed) == len(finished) and not any(o.data.get("addresses") for _, o in finished):
            # Nothing was created (the engine refused, or the worker was lost before it got that far).
            target, reason = TopologyStatus.FAILED, finished[0][1].message
        else:
            target, reason = (
                TopologyStatus.DEGRADED,
                f"post-deploy check: {len(failed)} decky(s) not ready: {_named(failed)}",
            )
        services.topology_transition(topology_id=topology.pk, to=target, reason=reason)


class TeardownTopology:
    """Remove every container, network and the compose file of the topology."""

    def run(self, rows: Sequence[DeckyLifecycle]) -> Mapping[uuid.UUID, Outcome]:
        topology = _topology_of(rows)
        if topology is None or topology.status != TopologyStatus.TEARING_DOWN:
            status = "deleted" if topology is None else topology.status
            return _all(rows, Outcome.failure(EngineError(f"the topology is {status}, no longer tearing down")))
        for row in rows:
            _set(row.decky_id, DeckyState.TEARING_DOWN)
        try:
            runtime.remove_project(topology_scope(topology), lambda: render_topology(topology))
        except EngineError as exc:
            return _all(rows, Outcome.failure(exc, failure_reason(exc)))
        return _all(rows, Outcome.success(f"topology {topology.name}: every container and network removed"))

    def record(self, finished: Sequence[tuple[DeckyLifecycle, Outcome]]) -> None:
        topology = _lock(finished[0][0].topology_id) if finished[0][0].topology_id else None
        if topology is None or topology.status != TopologyStatus.TEARING_DOWN:
            return
        ok = all(outcome.ok for _, outcome in finished)
        for row, outcome in finished:
            if ok:
                _set(row.decky_id, DeckyState.TORN_DOWN)
            else:
                _set(row.decky_id, DeckyState.TEARDOWN_FAILED, outcome.message)
        if ok:
            services.topology_transition(
                topology_id=topology.pk, to=TopologyStatus.TORN_DOWN, reason="teardown complete"
            )
        else:
            reason = next(o.message for _, o in finished if not o.ok)
            services.topology_transition(topology_id=topology.pk, to=TopologyStatus.DEGRADED, reason=reason)
