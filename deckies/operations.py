"""Operations on deckies: deploy, mutate, teardown, live service changes and file drops.

Request functions (``*_request``) validate, commit the desired shape and one ``pending`` lifecycle row per decky,
and queue a django-q2 task only after the transaction commits (``transaction.on_commit``). When an open row for
the same decky and operation exists, its id is returned and nothing is queued. ``run_inline=True`` runs the
operation in this process after commit instead (``--sync`` commands, hosts without a worker cluster).

:func:`run_operation` is the task body: it moves the row pending → running → succeeded | failed and updates the
decky's runtime state; it never leaves a row open.

Concurrency contract: every request takes the decky's row lock (``SELECT … FOR UPDATE``) while it checks for open
lifecycle rows and writes its own, so two requests on one decky serialise. One operation runs on a decky at a
time: asking for a *different* operation while one is open is refused with :class:`OperationInProgressError`
(409, naming the open row). Docker is never called while a database lock is held; the engine serialises compose
calls per scope with its own file lock.

Scopes: deploy and teardown act on fleet deckies (a topology is deployed as a whole, see ``topology``); mutate,
live service changes and file drops work on fleet and topology deckies alike. A change to a decky that is not
deployed (fleet: state not running/degraded; topology: status pending) only updates the desired state, and is
still recorded as a succeeded lifecycle row.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.dispatch import Signal
from django.utils import timezone

from deckies import signals
from deckies.catalogue.mutation import pick_new_services
from deckies.choices import DEPLOYED_STATES, DeckyState
from deckies.engine import runtime
from deckies.models import Decky, DeckyService
from deckies.selectors import deckies_due_for_mutation, decky_get_by_lifecycle_key
from deckies.services import service_spec, validate_decky_services
from decnet_site.exceptions import ConflictError, NotFoundError, ServiceUnavailableError, UnprocessableError
from lifecycle import services as lifecycle_services
from lifecycle.choices import OPEN_STATUSES, LifecycleOperation, LifecycleStatus
from lifecycle.exceptions import LifecycleImmutableError
from lifecycle.models import DeckyLifecycle
from topology.exceptions import TopologyNotEditableError
from topology.models import Topology
from topology.status import TopologyStatus

logger = logging.getLogger(__name__)

#: Dotted path of the task every queued operation runs (a thin wrapper over :func:`run_operation`).
OPERATION_TASK = "deckies.tasks.run_operation_task"
OPERATION_GROUP = "decnet-operations"

#: Topology statuses in which a topology decky's containers exist, so changes are applied live.
LIVE_TOPOLOGY_STATUSES: frozenset[str] = frozenset({TopologyStatus.ACTIVE, TopologyStatus.DEGRADED})
#: Topology statuses in which only the desired state changes (nothing is running yet).
DESIRED_ONLY_TOPOLOGY_STATUSES: frozenset[str] = frozenset({TopologyStatus.PENDING})

_rng = random.SystemRandom()


class OperationInProgressError(ConflictError):
    """Another operation is open on the decky (409); the body names it (``lifecycle_id``, ``operation``)."""

    code = "operation_in_progress"


class NoServicesAvailableError(NotFoundError):
    """The decky's mutation pool is empty, so there is nothing to rotate to (404, as in DECNET)."""

    code = "no_services_available"


class WrongScopeError(UnprocessableError):
    """The operation does not apply to this kind of decky, e.g. deploying one decky of a topology (422)."""

    code = "wrong_scope"


class ServiceConflictError(ConflictError):
    """The service is already on the decky (add) or not on it (remove) (409)."""

    code = "service_conflict"


class QueueUnavailableError(ServiceUnavailableError):
    """The task broker refused the task (503); the lifecycle rows it was for are failed, never left pending."""

    code = "queue_unavailable"


# --- helpers ----------------------------------------------------------------------------------------------------------


def _send(signal: Signal, **kwargs: Any) -> None:
    for receiver, result in signal.send_robust(sender=Decky, **kwargs):
        if isinstance(result, Exception):
            logger.warning("signal receiver %r failed: %s", receiver, result)


def _emit(decky: Decky, suffix: str, type_: str, payload: dict[str, Any], signal: Signal, **kwargs: Any) -> None:
    """Append ``decky.<key>.<suffix>`` to the event log and send ``signal`` once the transaction commits."""
    lifecycle_services.event_emit(topic=f"decky.{decky.lifecycle_key}.{suffix}", type=type_, payload=payload)
    transaction.on_commit(functools.partial(_send, signal, decky=decky, **kwargs))


def _topology_id(decky: Decky) -> str | None:
    return None if decky.topology_id is None else str(decky.topology_id)


def _host_uuid(decky: Decky) -> str | None:
    return None if decky.host_id is None else str(decky.host_id)


def _load(pk: int) -> Decky:
    """A decky as the engine needs it: network, host and topology joined, services prefetched."""
    return Decky.objects.select_related("network", "host", "topology").prefetch_related("services").get(pk=pk)


def _lock(decky: Decky) -> Decky:
    """Take the decky's row lock for the rest of the transaction; raises NotFoundError if it was deleted."""
    locked = Decky.objects.select_for_update().filter(pk=decky.pk).first()
    if locked is None:
        raise NotFoundError(f"decky {decky.name!r} no longer exists")
    return locked


def _slugs(decky: Decky) -> list[str]:
    return list(DeckyService.objects.filter(decky=decky).order_by("position", "slug").values_list("slug", flat=True))


def _open_rows(decky: Decky) -> list[DeckyLifecycle]:
    return list(
        DeckyLifecycle.objects.filter(decky_name=decky.lifecycle_key, status__in=sorted(OPEN_STATUSES)).order_by(
            "-started_at"
        )
    )


def _refuse_if_busy(
    decky: Decky, *, allow: str | None = None, rows: list[DeckyLifecycle] | None = None
) -> DeckyLifecycle | None:
    """Under the decky's lock: the open row of operation ``allow`` if there is one; raise if any other is open.

    ``rows`` are the decky's open rows, newest first, when the caller already loaded them.
    """
    rows = _open_rows(decky) if rows is None else rows
    same = next((row for row in rows if row.operation == allow), None)
    if same is not None:
        return same
    if rows:
        busy = rows[0]
        raise OperationInProgressError(
            f"decky {decky.name!r} has a {busy.operation} operation in progress ({busy.status}); wait for it to finish",
            lifecycle_id=str(busy.pk),
            operation=busy.operation,
        )
    return None


def _claim(decky: Decky, operation: str, *, rows: list[DeckyLifecycle] | None = None) -> tuple[DeckyLifecycle, bool]:
    """Under the decky's lock: the open row of ``operation`` (``False``) or a new pending one (``True``)."""
    existing = _refuse_if_busy(decky, allow=operation, rows=rows)
    if existing is not None:
        return existing, False
    row = lifecycle_services.lifecycle_create(
        decky_name=decky.lifecycle_key, operation=operation, host_uuid=_host_uuid(decky)
    )
    return row, True


def _dispatch(rows: Sequence[DeckyLifecycle], run_inline: bool) -> None:
    """After commit: run the rows here (``run_inline``) or queue one task per row."""
    ids = [str(row.pk) for row in rows]
    if ids:
        transaction.on_commit(functools.partial(_run_or_enqueue, ids, run_inline))


def _run_or_enqueue(ids: list[str], run_inline: bool) -> None:
    if run_inline:
        for lifecycle_id in ids:
            run_operation(lifecycle_id)
        return
    from django_q.tasks import async_task

    for index, lifecycle_id in enumerate(ids):
        try:
            async_task(
                OPERATION_TASK,
                lifecycle_id,
                task_name=f"lifecycle-{lifecycle_id}",
                group=OPERATION_GROUP,
                timeout=settings.DECNET_TASK_TIMEOUT,
            )
        except Exception as exc:
            # Nothing will ever pick these rows up: fail them now instead of leaving them for the sweep.
            for unqueued in ids[index:]:
                with contextlib.suppress(LifecycleImmutableError):
                    lifecycle_services.lifecycle_fail(unqueued, f"QueueUnavailableError: {exc}")
            raise QueueUnavailableError(
                f"the task queue refused the operation: {exc}", lifecycle_ids=ids[index:]
            ) from exc


def _is_live(decky: Decky) -> bool:
    """Whether the decky's containers exist, so a change must be applied to Docker.

    Fleet: its state is running or degraded. Topology: its topology is active or degraded; a pending topology
    takes desired-state changes only, and any other status (deploying, tearing down, failed, torn down) is refused
    with :class:`TopologyNotEditableError` (409), because the change could neither apply nor ever be deployed.
    """
    if decky.topology_id is None:
        return decky.state in DEPLOYED_STATES
    status = Topology.objects.filter(pk=decky.topology_id).values_list("status", flat=True).first()
    if status in LIVE_TOPOLOGY_STATUSES:
        return True
    if status in DESIRED_ONLY_TOPOLOGY_STATUSES:
        return False
    raise TopologyNotEditableError(
        f"topology {decky.topology_id} is {status}; its deckies change only while it is pending, active or degraded",
        status=status,
    )


def _bump_topology(decky: Decky) -> None:
    # A service change of a topology decky is a change of the topology's shape: concurrent editors holding the old
    # version must see a conflict (DECNET's live ops never bumped the version).
    if decky.topology_id is not None:
        Topology.objects.filter(pk=decky.topology_id).update(version=F("version") + 1, updated_at=timezone.now())


def _write_desired(decky: Decky) -> None:
    """Re-render the compose file of an undeployed decky's scope; nothing is started.

    The file is a rendering of the database, rewritten by every later operation, so a failure here is logged and
    does not undo the desired-state change. Topology files are rendered when the topology deploys.
    """
    if decky.topology_id is not None:
        return
    try:
        runtime.write_fleet_compose(decky.host if decky.host_id is not None else None)
    except Exception as exc:
        logger.warning("could not re-render the fleet compose file after changing %s: %s", decky.name, exc)


def _set_state(decky: Decky, state: str, error: str = "") -> None:
    """Write the decky's runtime state and last error; a change of state is logged as ``decky.<key>.state``."""
    with transaction.atomic():
        previous = Decky.objects.select_for_update().filter(pk=decky.pk).values_list("state", flat=True).first()
        if previous is None:
            return
        Decky.objects.filter(pk=decky.pk).update(state=state, last_error=error, updated_at=timezone.now())
        decky.state, decky.last_error = state, error
        if previous != state:
            _emit(
                decky,
                "state",
                "state",
                {
                    "decky_name": decky.name,
                    "topology_id": _topology_id(decky),
                    "previous_state": previous,
                    "state": state,
                    "error": error or None,
                },
                signals.decky_state_changed,
                previous=previous,
                state=state,
                error=error,
            )


# --- deploy, mutate, teardown (queued) --------------------------------------------------------------------------------


def deploy_request(
    *, deckies: Sequence[Decky], run_inline: bool = False, actor: str | None = None
) -> list[DeckyLifecycle]:
    """Queue a deploy of each fleet decky; returns one lifecycle row per decky, in the order given.

    Only the given deckies are brought up (``up --no-deps`` of their containers); no other decky restarts.
    A decky with an open deploy row reuses it (nothing queued for it). Raises :class:`WrongScopeError` (422) for a
    topology decky, :class:`OperationInProgressError` (409) if another operation is open on any of them (then no
    row is created at all), :class:`QueueUnavailableError` (503) when the broker refuses the tasks.
    """
    in_topology = sorted(decky.name for decky in deckies if decky.topology_id is not None)
    if in_topology:
        raise WrongScopeError(
            f"decky(s) {', '.join(in_topology)} belong to a topology; deploy the topology instead", deckies=in_topology
        )
    rows: dict[int, DeckyLifecycle] = {}
    new: list[DeckyLifecycle] = []
    with transaction.atomic():
        # One lock query in primary-key order (concurrent bulk requests never deadlock) and one query for the open
        # rows of all of them, so a whole-fleet deploy costs two queries plus the rows it writes.
        wanted = sorted({decky.pk for decky in deckies})
        locked = list(Decky.objects.select_for_update().filter(pk__in=wanted).order_by("pk"))
        if len(locked) != len(wanted):
            gone = sorted({d.name for d in deckies if d.pk not in {x.pk for x in locked}})
            raise NotFoundError(f"decky(s) {', '.join(gone)} no longer exist", deckies=gone)
        open_rows: dict[str, list[DeckyLifecycle]] = {}
        for open_row in DeckyLifecycle.objects.filter(
            decky_name__in=[decky.lifecycle_key for decky in locked], status__in=sorted(OPEN_STATUSES)
        ).order_by("-started_at"):
            open_rows.setdefault(open_row.decky_name, []).append(open_row)
        for decky in locked:
            row, created = _claim(decky, LifecycleOperation.DEPLOY, rows=open_rows.get(decky.lifecycle_key, []))
            rows[decky.pk] = row
            if created:
                new.append(row)
        _dispatch(new, run_inline)
    logger.info("deploy of %d decky(s) requested by %s (%d queued)", len(rows), actor or "system", len(new))
    return [rows[decky.pk] for decky in deckies]


def mutate_request(
    *,
    decky: Decky,
    run_inline: bool = False,
    trigger: str = "operator",
    actor: str | None = None,
    rng: random.Random | None = None,
) -> DeckyLifecycle:
    """Rotate the decky's services now: pick a new set, commit it (and ``last_mutated``), then queue the apply.

    The new services are committed before the task runs, so observers never see a half-applied mutation; kept
    services keep their config, new ones start from their defaults. An open mutate row is returned as is (no new
    pick). On a decky that is not deployed the task only re-renders the desired state. Emits
    ``decky.<key>.mutation``. Raises :class:`NoServicesAvailableError` (404) when the pool is empty,
    :class:`OperationInProgressError` (409), :class:`TopologyNotEditableError` (409) for a topology that is neither
    pending, active nor degraded.
    """
    with transaction.atomic():
        locked = _lock(decky)
        _is_live(locked)
        existing = _refuse_if_busy(locked, allow=LifecycleOperation.MUTATE)
        if existing is not None:
            return existing
        current = {row.slug: row.config for row in DeckyService.objects.filter(decky=locked)}
        old_services = _slugs(locked)
        picked = pick_new_services(old_services, locked.archetype or None, rng or _rng)
        if picked is None:
            raise NoServicesAvailableError(f"no services are available to mutate decky {locked.name!r}")
        validated = validate_decky_services(picked, {slug: current[slug] for slug in picked if slug in current})
        DeckyService.objects.filter(decky=locked).delete()
        DeckyService.objects.bulk_create(
            DeckyService(decky=locked, slug=slug, config=config, position=position)
            for position, (slug, config) in enumerate(validated.items())
        )
        now = timezone.now()
        Decky.objects.filter(pk=locked.pk).update(last_mutated=now, updated_at=now)
        _bump_topology(locked)
        row = lifecycle_services.lifecycle_create(
            decky_name=locked.lifecycle_key, operation=LifecycleOperation.MUTATE, host_uuid=_host_uuid(locked)
        )
        _emit(
            locked,
            "mutation",
            "mutation",
            {
                "decky": locked.name,
                "topology_id": _topology_id(locked),
                "old_services": old_services,
                "new_services": list(validated),
                "trigger": trigger,
                "actor": actor,
                "lifecycle_id": str(row.pk),
            },
            signals.decky_mutated,
            old_services=old_services,
            new_services=list(validated),
            trigger=trigger,
        )
        _dispatch([row], run_inline)
    decky.last_mutated = now
    return row


def teardown_request(*, decky: Decky, run_inline: bool = False, actor: str | None = None) -> DeckyLifecycle:
    """Queue the removal of every container of a fleet decky, its base (IP holder) included.

    The decky's record stays (state ``torn_down``) so it can be deployed again or deleted. An open teardown row
    is reused. Raises :class:`WrongScopeError` (422) for a topology decky and :class:`OperationInProgressError`.
    """
    if decky.topology_id is not None:
        raise WrongScopeError(f"decky {decky.name!r} belongs to a topology; tear the topology down instead")
    with transaction.atomic():
        row, created = _claim(_lock(decky), LifecycleOperation.TEARDOWN)
        if created:
            _dispatch([row], run_inline)
    logger.info("teardown of %s requested by %s", decky.name, actor or "system")
    return row


def auto_mutate_due(*, now: datetime | None = None) -> list[DeckyLifecycle]:
    """Request a scheduled mutation of every deployed fleet decky whose ``mutate_interval`` has elapsed.

    A decky that is busy with another operation, or has nothing to rotate to, is skipped until the next tick.
    Returns the rows requested (an already open mutate row counts).
    """
    rows = []
    for decky in deckies_due_for_mutation(now=now):
        try:
            rows.append(mutate_request(decky=decky, trigger="scheduled"))
        except (ConflictError, NotFoundError) as exc:
            logger.info("scheduled mutation of %s skipped: %s", decky.name, exc)
    return rows


# --- the task body ----------------------------------------------------------------------------------------------------


def _deploy(decky: Decky) -> str | None:
    if decky.topology_id is not None:
        raise WrongScopeError(f"decky {decky.name!r} belongs to a topology; deploy the topology instead")
    runtime.deploy_deckies([decky])
    # A first deploy is the decky's "creation" mutation: the rotation interval counts from here.
    Decky.objects.filter(pk=decky.pk, last_mutated__isnull=True).update(last_mutated=timezone.now())
    return DeckyState.RUNNING


def _apply_topology_services(decky: Decky) -> None:
    """Bring a live topology decky's service containers in line with its desired services, one at a time."""
    desired = set(_slugs(decky))
    present = {c.service for c in runtime.decky_containers(decky) if c.service}
    for slug in sorted(present - desired):
        runtime.remove_service(decky, slug)
    for slug in sorted(desired - present):
        runtime.add_service(decky, slug)


def _mutate(decky: Decky) -> str | None:
    if decky.topology_id is not None:
        if _is_live(decky):
            _apply_topology_services(decky)
        return None
    if decky.state not in DEPLOYED_STATES:
        _write_desired(decky)
        return None
    runtime.deploy_deckies([decky])
    return DeckyState.RUNNING


def _teardown(decky: Decky) -> str | None:
    if decky.topology_id is not None:
        raise WrongScopeError(f"decky {decky.name!r} belongs to a topology; tear the topology down instead")
    _set_state(decky, DeckyState.TEARING_DOWN)
    runtime.teardown_decky(decky)
    return DeckyState.TORN_DOWN


_HANDLERS: dict[str, Callable[[Decky], str | None]] = {
    LifecycleOperation.DEPLOY: _deploy,
    LifecycleOperation.MUTATE: _mutate,
    LifecycleOperation.TEARDOWN: _teardown,
}


def run_operation(lifecycle_id: uuid.UUID | str) -> None:
    """Run the operation of one pending lifecycle row to a terminal status.

    Contract: the row is moved to ``running`` with a conditional update, so a duplicate delivery (or a row the
    sweep already failed) is ignored. Whatever happens next, the row ends ``succeeded`` or ``failed`` with
    ``'<ErrorType>: <message>'`` (bounded), in a ``finally``; the decky's state is written in the same transaction
    (``running`` after deploy or mutate, ``torn_down`` after teardown, ``failed`` with ``last_error`` on error).
    Exceptions are recorded, not raised, except ``BaseException``s such as ``SystemExit`` (re-raised after the
    row is failed).
    """
    row = DeckyLifecycle.objects.filter(pk=lifecycle_id).first()
    if row is None:
        logger.warning("lifecycle row %s does not exist; nothing to run", lifecycle_id)
        return
    try:
        lifecycle_services.lifecycle_start(row.pk)
    except LifecycleImmutableError:
        logger.info("lifecycle row %s is already %s; not running it again", row.pk, row.status)
        return
    decky: Decky | None = None
    new_state: str | None = None
    outcome: BaseException | None = None
    try:
        handler = _HANDLERS.get(row.operation)
        if handler is None:
            raise WrongScopeError(f"operation {row.operation!r} is not run by a task")
        decky = _load(decky_get_by_lifecycle_key(row.decky_name).pk)
        new_state = handler(decky)
    except BaseException as exc:
        outcome = exc
        if not isinstance(exc, Exception):
            raise
    finally:
        _finish(row, decky, new_state, outcome)


def _finish(row: DeckyLifecycle, decky: Decky | None, new_state: str | None, outcome: BaseException | None) -> None:
    """Record the outcome: decky state first, then the terminal row, atomically (pollers see both or neither)."""
    try:
        with transaction.atomic():
            if outcome is None:
                if decky is not None and new_state is not None:
                    _set_state(decky, new_state)
                lifecycle_services.lifecycle_succeed(row.pk)
            else:
                logger.warning("%s of %s failed: %s", row.operation, row.decky_name, outcome)
                error = lifecycle_services.truncate_error(outcome) or ""
                if decky is not None and decky.topology_id is None:
                    _set_state(decky, DeckyState.FAILED, error)
                lifecycle_services.lifecycle_fail(row.pk, outcome)
    except LifecycleImmutableError as exc:
        # The sweep failed the row while the operation ran (it outlived the stale cutoff): keep its verdict.
        logger.warning("outcome of lifecycle row %s not recorded: %s", row.pk, exc)


# --- live service changes (synchronous) -------------------------------------------------------------------------------


def _services_changed(decky: Decky, suffix: str, signal: Signal, slug: str, row: DeckyLifecycle, live: bool) -> None:
    services = _slugs(decky)
    _emit(
        decky,
        f"service.{suffix}",
        f"service_{suffix}",
        {
            "decky_name": decky.name,
            "topology_id": _topology_id(decky),
            "service_name": slug,
            "services": services,
            "live": live,
            "lifecycle_id": str(row.pk),
        },
        signal,
        service=slug,
        services=services,
        live=live,
    )


def _fail_sync(row: DeckyLifecycle, decky: Decky, exc: BaseException) -> None:
    with contextlib.suppress(LifecycleImmutableError):
        lifecycle_services.lifecycle_fail(row.pk, exc)
    Decky.objects.filter(pk=decky.pk).update(last_error=lifecycle_services.truncate_error(exc) or "")


def service_add(
    *, decky: Decky, slug: str, config: dict[str, Any] | None = None, actor: str | None = None
) -> list[str]:
    """Add one service to a decky and, when it is deployed, start only that container; returns the services.

    Order: validate (unknown or fleet-singleton service → 422, bad config → 400), then under the decky's lock
    check it is not already there (409) and no operation is open (409), persist the service and a ``running``
    ``service_add`` row, commit; then start the container (fleet or live topology decky) or re-render the desired
    state (undeployed decky). If Docker fails the service row is removed again, the lifecycle row is failed and
    the engine error propagates. Emits ``decky.<key>.service.added``.
    """
    validated = validate_decky_services([slug], {slug: config or {}})[slug]
    with transaction.atomic():
        locked = _lock(decky)
        live = _is_live(locked)
        if DeckyService.objects.filter(decky=locked, slug=slug).exists():
            raise ServiceConflictError(f"service {slug!r} is already on decky {locked.name!r}")
        _refuse_if_busy(locked)
        position = DeckyService.objects.filter(decky=locked).aggregate(top=Max("position"))["top"]
        DeckyService.objects.create(
            decky=locked, slug=slug, config=validated, position=0 if position is None else position + 1
        )
        _bump_topology(locked)
        row = _running_row(locked, LifecycleOperation.SERVICE_ADD)
    return _apply_service_change(
        decky_pk=locked.pk,
        slug=slug,
        row=row,
        live=live,
        verb="added",
        signal=signals.decky_service_added,
        apply=lambda fresh: runtime.add_service(fresh, slug),
        undo=lambda fresh: DeckyService.objects.filter(decky=fresh, slug=slug).delete(),
        actor=actor,
    )


def service_remove(*, decky: Decky, slug: str, actor: str | None = None) -> list[str]:
    """Remove one service from a decky and, when it is deployed, stop and remove only that container.

    Raises 422 for a slug no catalogue knows (and the decky does not have), 409 when the decky does not have the
    service, when it is its last service, or when an operation is open. If Docker fails the service row is put
    back, the lifecycle row is failed and the engine error propagates. Emits ``decky.<key>.service.removed``.
    """
    with transaction.atomic():
        locked = _lock(decky)
        live = _is_live(locked)
        service = DeckyService.objects.filter(decky=locked, slug=slug).first()
        if service is None:
            service_spec(slug)  # UnknownServiceError (422) for a name no catalogue knows
            raise ServiceConflictError(f"service {slug!r} is not on decky {locked.name!r}")
        if DeckyService.objects.filter(decky=locked).count() == 1:
            raise ServiceConflictError(f"{slug!r} is the last service of decky {locked.name!r}; a decky needs one")
        _refuse_if_busy(locked)
        saved = {"slug": service.slug, "config": service.config, "position": service.position}
        service.delete()
        _bump_topology(locked)
        row = _running_row(locked, LifecycleOperation.SERVICE_REMOVE)
    return _apply_service_change(
        decky_pk=locked.pk,
        slug=slug,
        row=row,
        live=live,
        verb="removed",
        signal=signals.decky_service_removed,
        apply=lambda fresh: runtime.remove_service(fresh, slug),
        undo=lambda fresh: DeckyService.objects.get_or_create(decky=fresh, slug=saved["slug"], defaults=saved),
        actor=actor,
    )


def _running_row(decky: Decky, operation: str) -> DeckyLifecycle:
    """A lifecycle row born ``running`` for a change made in this request (there is no queued phase)."""
    return lifecycle_services.lifecycle_create(
        decky_name=decky.lifecycle_key, operation=operation, host_uuid=_host_uuid(decky), status=LifecycleStatus.RUNNING
    )


def _apply_service_change(
    *,
    decky_pk: int,
    slug: str,
    row: DeckyLifecycle,
    live: bool,
    verb: str,
    signal: Signal,
    apply: Callable[[Decky], object],
    undo: Callable[[Decky], object],
    actor: str | None,
) -> list[str]:
    """Second half of a live service change, after its rows are committed: run it against Docker (or, when the
    decky is not deployed, only re-render its desired compose file), then finish the lifecycle row.

    On any failure ``undo`` restores the service rows and the row is failed in one transaction, and the error
    propagates, so the database never claims a change Docker did not make.
    """
    fresh = _load(decky_pk)
    try:
        if live:
            apply(fresh)
        else:
            _write_desired(fresh)
    except BaseException as exc:
        with transaction.atomic():
            undo(fresh)
            _fail_sync(row, fresh, exc)
        raise
    with transaction.atomic():
        lifecycle_services.lifecycle_succeed(row.pk)
        _services_changed(fresh, verb, signal, slug, row, live)
    logger.info("service %s %s on %s by %s (live=%s)", slug, verb, fresh.lifecycle_key, actor or "system", live)
    return _slugs(fresh)


# --- files ------------------------------------------------------------------------------------------------------------


def _file_event(decky: Decky, action: str, path: str, container: str, actor: str | None, **extra: Any) -> None:
    with transaction.atomic():
        _emit(
            decky,
            f"file.{action}",
            f"file_{action}",
            {
                "decky_name": decky.name,
                "topology_id": _topology_id(decky),
                "path": path,
                "container": container,
                "actor": actor,
                **extra,
            },
            signals.decky_file_changed,
            path=path,
            container=container,
            action=action,
        )


def file_drop(
    *,
    decky: Decky,
    path: str,
    content: bytes,
    mode: int = 0o644,
    mtime_offset: int = 0,
    actor: str | None = None,
) -> str:
    """Write ``content`` at absolute ``path`` in the decky's file target container; returns the container name.

    The target is the decky's ``ssh`` container when it has that service, else its base. ``mtime_offset`` seconds
    (negative: in the past) are added to now for the file's mtime. Raises ``InvalidPathError`` (400) and
    ``ContainerRefusedError`` (409, e.g. the decky is not running). The drop is audited as ``decky.<key>.file.dropped``
    (path, size, container, actor; never the content).
    """
    mtime = timezone.now() + timedelta(seconds=mtime_offset) if mtime_offset else None
    fresh = _load(decky.pk)
    container = runtime.drop_file(fresh, path, content, mode=mode, mtime=mtime)
    _file_event(fresh, "dropped", path, container, actor, bytes=len(content), mode=oct(mode))
    return container


def file_delete(*, decky: Decky, path: str, actor: str | None = None) -> str:
    """``rm -f`` of absolute ``path`` in the decky's file target container; returns the container name.

    Raises ``InvalidPathError`` (400) and ``ContainerRefusedError`` (409). Audited as ``decky.<key>.file.deleted``.
    """
    fresh = _load(decky.pk)
    container = runtime.delete_file(fresh, path)
    _file_event(fresh, "deleted", path, container, actor)
    return container


__all__ = [
    "NoServicesAvailableError",
    "OperationInProgressError",
    "QueueUnavailableError",
    "ServiceConflictError",
    "WrongScopeError",
    "auto_mutate_due",
    "deploy_request",
    "file_delete",
    "file_drop",
    "mutate_request",
    "run_operation",
    "service_add",
    "service_remove",
    "teardown_request",
]
