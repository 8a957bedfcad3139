"""Deploying and tearing down whole topologies, and the sweep of topologies whose worker was lost.

Request functions validate and move the status synchronously, then queue the work:

- :func:`topology_deploy_request`: pending → deploying. The topology is validated first, under its row lock, so
  an invalid topology is refused with :class:`~topology.exceptions.TopologyValidationError` (400, every error
  listed) and its status does not move. DECNET answered 202 and left the topology pending with the reason only in
  its logs.
- :func:`topology_teardown_request`: active | degraded | failed | deploying → tearing_down.

Either queues a django-q2 task (``topology.tasks``) once the transaction commits, or with ``run_inline=True``
runs the work in this process after commit. Illegal moves raise :class:`~topology.status.TopologyStatusError`
(409, with ``legal_next``).

Run functions (the task bodies) never raise and never leave a topology in a transitional status:

- :func:`run_deploy`: deploying → active (every container running) | degraded (some not running; the reason names
  them) | failed (the engine raised; the reason carries the error and compose's stderr). Each decky's ``state``
  becomes running/failed from the engine's report, and addresses the engine allocated for edges without one are
  saved on the edges.
- :func:`run_teardown`: tearing_down → torn_down, or degraded when the engine raised (teardown can be retried).

A teardown requested while a deploy is running wins: the deploy, finding its topology no longer deploying when the
engine returns, removes what it created instead of recording it. :func:`sweep_stuck` moves topologies left in
deploying (→ failed) or tearing_down (→ degraded) by a lost worker. Docker is never called under a database lock;
the engine serialises compose calls on one topology with its own file lock.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deckies import signals
from deckies.choices import DeckyState
from deckies.engine import naming, runtime
from deckies.engine.errors import ComposeCommandError
from deckies.models import Decky
from deckies.operations import QueueUnavailableError
from lifecycle.services import event_emit, truncate_error
from topology import services, validation
from topology.exceptions import TopologyNotFoundError, VersionConflict
from topology.models import LAN, Edge, Topology
from topology.status import TopologyStatus, TopologyStatusError, assert_transition

logger = logging.getLogger(__name__)

DEPLOY_TASK = "topology.tasks.topology_deploy_task"
TEARDOWN_TASK = "topology.tasks.topology_teardown_task"
TASK_GROUP = "decnet-topologies"
#: Reason prefix of every move made by :func:`sweep_stuck`.
STUCK_REASON = "worker lost during operation"
#: At most this many container names are spelled out in a degraded reason.
MAX_NAMED_CONTAINERS = 8


# --- helpers ----------------------------------------------------------------------------------------------------------


def _lock(topology_id: uuid.UUID | str) -> Topology:
    """Take the topology's row lock for the rest of the transaction; raises TopologyNotFoundError."""
    topology = Topology.objects.select_for_update().filter(pk=topology_id).first()
    if topology is None:
        raise TopologyNotFoundError(f"topology {topology_id} does not exist")
    return topology


def _pk(topology: Topology | uuid.UUID | str) -> uuid.UUID | str:
    return topology.pk if isinstance(topology, Topology) else topology


def _by(actor: str | None) -> str:
    return actor or "system"


def failure_reason(exc: BaseException) -> str:
    """``'<Type>: <message>'`` plus the tail of compose's stderr when there is one, bounded for storage."""
    text = f"{type(exc).__name__}: {exc}"
    tail = getattr(exc, "stderr_tail", "") if isinstance(exc, ComposeCommandError) else ""
    if tail and tail not in text:
        text = f"{text}; stderr: {tail}"
    return truncate_error(text) or ""


def _not_running_reason(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED_CONTAINERS])
    more = len(names) - MAX_NAMED_CONTAINERS
    suffix = f" and {more} more" if more > 0 else ""
    return f"post-deploy check: {len(names)} container(s) not running: {shown}{suffix}"


def _set_decky_states(topology: Topology, states: Mapping[str, tuple[str, str]]) -> None:
    """Write ``{decky name: (state, last error)}`` for the topology's deckies; each change is recorded as a
    ``decky.<key>.state`` event and a :data:`~deckies.signals.decky_state_changed` signal after commit.

    Call under the topology's row lock while it is deploying or tearing down: live service changes (which lock a
    decky before its topology) are refused in those statuses, so the two lock orders never meet.
    """
    now = timezone.now()
    for decky in Decky.objects.select_for_update().filter(topology=topology, name__in=list(states)):
        state, error = states[decky.name]
        previous = decky.state
        seen = {"last_seen": now} if state == DeckyState.RUNNING else {}
        Decky.objects.filter(pk=decky.pk).update(state=state, last_error=error, updated_at=now, **seen)
        if previous == state:
            continue
        decky.state, decky.last_error = state, error
        event_emit(
            topic=f"decky.{decky.lifecycle_key}.state",
            type="state",
            payload={
                "decky_name": decky.name,
                "topology_id": str(topology.pk),
                "previous_state": previous,
                "state": state,
                "error": error or None,
            },
        )
        transaction.on_commit(functools.partial(_send_state, decky=decky, previous=previous, state=state, error=error))


def _send_state(**kwargs: Any) -> None:
    for receiver, result in signals.decky_state_changed.send_robust(sender=Decky, **kwargs):
        if isinstance(result, Exception):
            logger.warning("signal receiver %r failed: %s", receiver, result)


def _all_deckies(topology: Topology, state: str, error: str = "") -> dict[str, tuple[str, str]]:
    return dict.fromkeys(Decky.objects.filter(topology=topology).values_list("name", flat=True), (state, error))


def _dispatch(task: str, run: Callable[[str], None], topology_id: str, run_inline: bool, on_refused: str) -> None:
    """After commit: run here (``run_inline``) or queue ``task``; a refused enqueue moves the topology to
    ``on_refused`` at once (nothing would ever run it) and raises QueueUnavailableError (503)."""
    transaction.on_commit(functools.partial(_run_or_enqueue, task, run, topology_id, run_inline, on_refused))


def _run_or_enqueue(task: str, run: Callable[[str], None], topology_id: str, run_inline: bool, on_refused: str) -> None:
    if run_inline:
        run(topology_id)
        return
    from django_q.tasks import async_task

    try:
        async_task(
            task,
            topology_id,
            task_name=f"{task.rsplit('.', 1)[-1]}-{topology_id}",
            group=TASK_GROUP,
            timeout=settings.DECNET_TASK_TIMEOUT,
        )
    except Exception as exc:
        reason = f"QueueUnavailableError: the task queue refused the operation: {exc}"
        try:
            services.topology_transition(topology_id=topology_id, to=on_refused, reason=truncate_error(reason) or "")
        except TopologyStatusError:
            logger.warning("topology %s moved on before its refused task could be recorded", topology_id)
        raise QueueUnavailableError(f"the task queue refused the operation: {exc}", topology_id=topology_id) from exc


# --- requests ---------------------------------------------------------------------------------------------------------


def topology_deploy_request(
    *,
    topology: Topology | uuid.UUID | str,
    run_inline: bool = False,
    actor: str | None = None,
    expected_version: int | None = None,
) -> Topology:
    """Validate the topology and move it pending → deploying, then queue (or, ``run_inline``, run) the deploy.

    Contract: under the topology's row lock (so no edit can slip in between), the status must allow the move
    (else :class:`TopologyStatusError`, 409 with ``legal_next``), the version must equal ``expected_version`` when
    given (else :class:`VersionConflict`) and validation must find no error (else
    :class:`~topology.exceptions.TopologyValidationError`, 400); nothing changes on any refusal. Warnings are
    logged and named in the status event's reason. Returns the topology as committed (``deploying``).
    Raises QueueUnavailableError (503) when the broker refuses the task; the topology is then ``failed``.
    """
    with transaction.atomic():
        locked = _lock(_pk(topology))
        assert_transition(locked.status, TopologyStatus.DEPLOYING)
        if expected_version is not None and locked.version != expected_version:
            raise VersionConflict(current=locked.version, expected=expected_version)
        warnings = validation.assert_deployable(locked)
        reason = f"deploy requested by {_by(actor)}"
        if warnings:
            codes = sorted({issue.code for issue in warnings})
            reason += f"; {len(warnings)} warning(s): {', '.join(codes)}"
            logger.warning("deploying topology %s with warnings: %s", locked.name, [w.message for w in warnings])
        moved = services.topology_transition(topology_id=locked.pk, to=TopologyStatus.DEPLOYING, reason=reason)
        _dispatch(DEPLOY_TASK, run_deploy, str(locked.pk), run_inline, TopologyStatus.FAILED)
    return moved


def topology_teardown_request(
    *, topology: Topology | uuid.UUID | str, run_inline: bool = False, actor: str | None = None
) -> Topology:
    """Move the topology to tearing_down (from active, degraded, failed or deploying) and queue (or,
    ``run_inline``, run) the teardown. Decky states are left to the run: writing them here would lock decky rows
    after the topology row, the reverse of a live service change's order, and the two could deadlock.

    Raises :class:`TopologyStatusError` (409, ``legal_next``) from any other status: a pending topology has nothing
    to tear down (delete it), and a second teardown is refused while one is under way (a lost one is swept to
    degraded by :func:`sweep_stuck`, and can then be retried). Raises QueueUnavailableError (503) when the broker
    refuses the task; the topology is then ``degraded``.
    """
    with transaction.atomic():
        locked = _lock(_pk(topology))
        assert_transition(locked.status, TopologyStatus.TEARING_DOWN)
        moved = services.topology_transition(
            topology_id=locked.pk, to=TopologyStatus.TEARING_DOWN, reason=f"teardown requested by {_by(actor)}"
        )
        _dispatch(TEARDOWN_TASK, run_teardown, str(locked.pk), run_inline, TopologyStatus.DEGRADED)
    return moved


# --- runs (task bodies) -----------------------------------------------------------------------------------------------


def _load_in(topology_id: uuid.UUID | str, status: str, what: str) -> Topology | None:
    topology = Topology.objects.filter(pk=topology_id).first()
    if topology is None:
        logger.warning("%s of topology %s skipped: it no longer exists", what, topology_id)
        return None
    if topology.status != status:
        logger.warning("%s of topology %s skipped: it is %s, not %s", what, topology.name, topology.status, status)
        return None
    return topology


def run_deploy(topology_id: uuid.UUID | str) -> None:
    """Deploy a ``deploying`` topology through the engine and record the outcome; never raises an Exception.

    A topology that is not ``deploying`` any more (torn down or swept meanwhile) is left alone. Exceptions of the
    engine, or of recording its report, move the topology to ``failed`` with the reason and its deckies to
    ``failed``; anything else (the worker being stopped) does the same and is re-raised.
    """
    topology = _load_in(topology_id, TopologyStatus.DEPLOYING, "deploy")
    if topology is None:
        return
    try:
        report = runtime.deploy_topology(topology)
        recorded = _record_deploy(topology, report)
    except Exception as exc:
        logger.exception("deploy of topology %s failed", topology.name)
        _record_deploy_failure(topology, exc)
        return
    except BaseException as exc:
        _record_deploy_failure(topology, exc)
        raise
    if not recorded:
        _undo_deploy(topology)


def _home_address(addresses: Mapping[str, str], dmz: str | None) -> str | None:
    """The decky's primary address: on the DMZ if it is there, else on the first of its LANs by name."""
    if not addresses:
        return None
    if dmz is not None and dmz in addresses:
        return addresses[dmz]
    return addresses[min(addresses)]


def _record_deploy(topology: Topology, report: runtime.TopologyDeployReport) -> bool:
    """Save addresses, decky states and the final status; False (nothing written) when the topology is no longer
    deploying, i.e. a teardown or the sweep moved it while the engine was working."""
    with transaction.atomic():
        locked = _lock(topology.pk)
        if locked.status != TopologyStatus.DEPLOYING:
            return False
        lans = {lan.pk: lan.name for lan in LAN.objects.filter(topology=locked)}
        dmz = LAN.objects.filter(topology=locked, is_dmz=True).values_list("name", flat=True).first()
        for edge in Edge.objects.filter(topology=locked, ip__isnull=True).select_related("decky"):
            ip = report.addresses.get(edge.decky.name, {}).get(lans.get(edge.lan_id, ""))
            if ip:
                Edge.objects.filter(pk=edge.pk).update(ip=ip)
        for decky in Decky.objects.filter(topology=locked):
            home = _home_address(report.addresses.get(decky.name, {}), dmz)
            if home and home != decky.ip:
                Decky.objects.filter(pk=decky.pk).update(ip=home)
        not_running = list(report.not_running)
        project = naming.topology_project(locked.pk)
        states: dict[str, tuple[str, str]] = {}
        for decky in Decky.objects.filter(topology=locked).prefetch_related("services"):
            running = report.decky_running.get(decky.name, False)
            keys = {naming.base_key(decky.name)} | {
                naming.service_key(decky.name, s.slug) for s in decky.services.all()
            }
            own = {naming.container_name(project, key) for key in keys}
            down = [name for name in not_running if name in own]
            error = "" if running else f"not running after deploy: {', '.join(down) or 'no container reported'}"
            states[decky.name] = (DeckyState.RUNNING if running else DeckyState.FAILED, error)
        _set_decky_states(locked, states)
        if not_running or not all(state == DeckyState.RUNNING for state, _ in states.values()):
            names = not_running or sorted(name for name, (state, _) in states.items() if state != DeckyState.RUNNING)
            services.topology_transition(
                topology_id=locked.pk, to=TopologyStatus.DEGRADED, reason=_not_running_reason(names)
            )
        else:
            services.topology_transition(
                topology_id=locked.pk, to=TopologyStatus.ACTIVE, reason=f"all {len(states)} decky(s) running"
            )
    return True


def _record_deploy_failure(topology: Topology, exc: BaseException) -> None:
    reason = failure_reason(exc)
    try:
        with transaction.atomic():
            locked = _lock(topology.pk)
            if locked.status != TopologyStatus.DEPLOYING:
                logger.warning("deploy of %s failed after it moved to %s: %s", locked.name, locked.status, reason)
                return
            _set_decky_states(locked, _all_deckies(locked, DeckyState.FAILED, reason))
            services.topology_transition(topology_id=locked.pk, to=TopologyStatus.FAILED, reason=reason)
    except Exception:
        # The database itself failed: the sweep will move the topology once it is stale.
        logger.exception("could not record the failed deploy of topology %s", topology.pk)


def _undo_deploy(topology: Topology) -> None:
    """The topology moved on (teardown requested or swept) while the engine deployed it: remove what was created
    so nothing runs for a topology whose status says it should not. Idempotent with a concurrent teardown."""
    logger.warning("topology %s left deploying during its deploy; removing what the deploy created", topology.name)
    try:
        runtime.teardown_topology(topology)
    except Exception:
        logger.exception("could not remove the containers of topology %s after an interrupted deploy", topology.name)


def run_teardown(topology_id: uuid.UUID | str) -> None:
    """Tear a ``tearing_down`` topology down through the engine and record the outcome; never raises an Exception.

    Success: deckies ``torn_down``, topology ``torn_down``. Any exception: deckies ``teardown_failed`` and the
    topology ``degraded`` with the reason, from where a teardown can be requested again.
    """
    topology = _load_in(topology_id, TopologyStatus.TEARING_DOWN, "teardown")
    if topology is None:
        return
    try:
        runtime.teardown_topology(topology)
    except Exception as exc:
        logger.exception("teardown of topology %s failed", topology.name)
        _record_teardown(topology, exc)
        return
    except BaseException as exc:
        _record_teardown(topology, exc)
        raise
    _record_teardown(topology, None)


def _record_teardown(topology: Topology, exc: BaseException | None) -> None:
    reason = "teardown complete" if exc is None else failure_reason(exc)
    target = TopologyStatus.TORN_DOWN if exc is None else TopologyStatus.DEGRADED
    state = DeckyState.TORN_DOWN if exc is None else DeckyState.TEARDOWN_FAILED
    try:
        with transaction.atomic():
            locked = _lock(topology.pk)
            if locked.status != TopologyStatus.TEARING_DOWN:
                logger.warning("teardown of %s finished after it moved to %s", locked.name, locked.status)
                return
            _set_decky_states(locked, _all_deckies(locked, state, "" if exc is None else reason))
            services.topology_transition(topology_id=locked.pk, to=target, reason=reason)
    except Exception:
        logger.exception("could not record the teardown of topology %s", topology.pk)


# --- sweep ------------------------------------------------------------------------------------------------------------


def stuck_after() -> timedelta:
    """How long a topology may stay deploying or tearing down before the sweep calls its worker lost: the
    lifecycle sweep's age, which is well past the task timeout that bounds every run."""
    return timedelta(seconds=int(settings.DECNET_LIFECYCLE_STALE_AFTER))


def sweep_stuck(older_than: timedelta) -> int:
    """Move every topology that entered deploying / tearing_down more than ``older_than`` ago to failed / degraded
    (reason ``"worker lost during operation: …"``); returns how many moved.

    Contract: each move re-checks, under the topology's row lock, that the status and its timestamp are still the
    stale ones, so a topology that moved meanwhile (its worker finished, or a new operation started) is left
    alone and two sweeps never both move one. Deckies of a failed deploy become ``failed``, those of a lost
    teardown ``teardown_failed``. Docker is not touched: a failed or degraded topology can be torn down again.
    """
    cutoff = timezone.now() - older_than
    reason = f"{STUCK_REASON}: no outcome recorded within {int(older_than.total_seconds())} s"
    targets: dict[str, tuple[str, str]] = {
        TopologyStatus.DEPLOYING: (TopologyStatus.FAILED, DeckyState.FAILED),
        TopologyStatus.TEARING_DOWN: (TopologyStatus.DEGRADED, DeckyState.TEARDOWN_FAILED),
    }
    candidates = Topology.objects.filter(status__in=list(targets), status_changed_at__lt=cutoff).values_list(
        "pk", "status"
    )
    moved = 0
    for pk, status in list(candidates):
        target, decky_state = targets[status]
        with transaction.atomic():
            locked = (
                Topology.objects.select_for_update().filter(pk=pk, status=status, status_changed_at__lt=cutoff).first()
            )
            if locked is None:
                continue
            _set_decky_states(locked, _all_deckies(locked, decky_state, reason))
            services.topology_transition(topology_id=pk, to=target, reason=reason)
        moved += 1
    if moved:
        logger.warning("swept %d topology(s) stuck deploying or tearing down for over %s", moved, older_than)
    return moved
