"""Requests for operations on deckies: deploy, mutate, teardown and repair, queued through the job layer.

Each request validates, commits the desired shape and one ``pending`` lifecycle row per decky, and hands the job
to the broker only after the transaction commits (:func:`lifecycle.jobs.submit`); ``run_inline=True`` runs it in
this process after commit instead (``--sync`` commands). The work itself is in :mod:`deckies.handlers`.

Concurrency contract: a request takes the decky's row lock (``SELECT … FOR UPDATE``) while it checks for open rows
and writes its own, so two requests on one decky serialise. One operation runs on a decky at a time: the same
operation already open returns that row (nothing new is queued); a *different* one is refused with
:class:`OperationInProgressError` (409, naming it). An open row whose worker is gone (lease lapsed) is failed on the
spot with the reason and does not block anything. Docker is never called while a database lock is held.

Deploy and teardown act on fleet deckies (a topology is deployed as a whole by the topology app); mutate and
repair work on any decky. Callers that change a topology decky first take the topology's edit lock (topology app).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import uuid
from collections.abc import Sequence
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from deckies.catalogue.mutation import pick_new_services
from deckies.choices import DEPLOYED_STATES
from deckies.models import Decky, DeckyService
from deckies.selectors import DeckyNotFoundError, deckies_due_for_mutation
from deckies.services import validate_decky_services
from deckies.states import state_topic
from decnet_site.exceptions import ConflictError, NotFoundError, UnprocessableError
from lifecycle import jobs
from lifecycle.choices import OPEN_STATUSES, LifecycleOperation, LifecycleStatus
from lifecycle.models import DeckyLifecycle
from lifecycle.services import RowSpec, lifecycle_create

logger = logging.getLogger(__name__)

#: A bulk deploy runs this many deckies of one host per job (one compose call each), so a whole fleet starts in a
#: handful of engine calls while the two workers still share the load.
DEPLOY_BATCH = 25

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


def host_uuid(decky: Decky) -> str | None:
    return None if decky.host_id is None else str(decky.host_id)


def row_spec(decky: Decky, operation: str, actor: str | None, **params: object) -> RowSpec:
    """A new row acting on ``decky``."""
    return RowSpec(
        decky_name=decky.name,
        operation=operation,
        decky_id=decky.pk,
        topology_id=decky.topology_id,
        host_uuid=host_uuid(decky),
        params=dict(params),
        actor=actor or "system",
    )


def _lapsed(row: DeckyLifecycle, now: datetime) -> bool:
    return row.status == LifecycleStatus.RUNNING and row.lease_expires_at is not None and row.lease_expires_at < now


def open_rows(deckies: Sequence[Decky]) -> dict[int, list[DeckyLifecycle]]:
    """Under the deckies' locks: their open rows, newest first. Rows whose worker is gone (lease lapsed) are failed
    here, with the reason, so they never block a new request."""
    found: dict[int, list[DeckyLifecycle]] = {}
    now = timezone.now()
    lapsed = []
    for row in DeckyLifecycle.objects.filter(
        decky_id__in=[d.pk for d in deckies], status__in=sorted(OPEN_STATUSES)
    ).order_by("-started_at"):
        if _lapsed(row, now):
            lapsed.append(row)
            continue
        assert row.decky_id is not None
        found.setdefault(row.decky_id, []).append(row)
    if lapsed:
        from lifecycle.reaper import reap

        reap(now=now)  # records their targets' state through their operations, like any other lapsed row
    return found


def refuse_if_busy(decky: Decky, rows: Sequence[DeckyLifecycle], *, allow: str | None = None) -> DeckyLifecycle | None:
    """The open row of operation ``allow`` if there is one; raise :class:`OperationInProgressError` if another
    operation is open on the decky."""
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


def _lockable() -> QuerySet[Decky]:
    """Deckies to lock, each annotated with ``has_open_rows`` (whether a pending or running row acts on it)."""
    open_subquery = DeckyLifecycle.objects.filter(decky_id=OuterRef("pk"), status__in=sorted(OPEN_STATUSES))
    return Decky.objects.select_for_update(of=("self",)).annotate(has_open_rows=Exists(open_subquery))


def lock(decky: Decky | None = None, *, name: str | None = None) -> Decky:
    """Take the row lock of ``decky`` (or of the fleet decky called ``name``) for the rest of the transaction.

    The locked instance carries ``has_open_rows``, read in the same query, so the common case (nothing open) costs
    no second query; see :func:`busy_rows`. Raises NotFoundError if the decky was deleted, DeckyNotFoundError (404)
    for an unknown name.
    """
    queryset = _lockable()
    if decky is not None:
        locked = queryset.filter(pk=decky.pk).first()
        if locked is None:
            raise NotFoundError(f"decky {decky.name!r} no longer exists")
        return locked
    locked = queryset.filter(name=name, topology__isnull=True).first()
    if locked is None:
        raise DeckyNotFoundError(f"decky {name!r} does not exist in the fleet", decky_name=name)
    return locked


def busy_rows(locked: Decky) -> list[DeckyLifecycle]:
    """The open rows of a decky taken with :func:`lock` (no query when it had none)."""
    if not getattr(locked, "has_open_rows", True):
        return []
    return open_rows([locked]).get(locked.pk, [])


def _single(decky: Decky, operation: str, run_inline: bool, actor: str | None, **params: object) -> DeckyLifecycle:
    """Under the decky's lock: reuse the open row of ``operation`` or create and submit a new one."""
    existing = refuse_if_busy(decky, busy_rows(decky), allow=operation)
    if existing is not None:
        return existing
    (row,) = lifecycle_create([row_spec(decky, operation, actor, **params)])
    jobs.submit([row], run_inline=run_inline)
    return row


# --- deploy -----------------------------------------------------------------------------------------------------------


def deploy_request(
    *,
    deckies: Sequence[Decky] | None = None,
    names: Sequence[str] | None = None,
    run_inline: bool = False,
    actor: str | None = None,
) -> list[DeckyLifecycle]:
    """Queue a deploy of fleet deckies, given as instances or by ``names`` (both None: the whole fleet); returns
    one lifecycle row per decky, in the order given (by name for the whole fleet).

    Only these deckies are brought up (``up --no-deps`` of their containers); no other decky restarts. The deckies
    of one host are deployed in jobs of up to :data:`DEPLOY_BATCH`. A decky with an open deploy row reuses it.
    Raises :class:`DeckyNotFoundError` (404) for unknown names or an empty fleet, :class:`WrongScopeError` (422)
    for a topology decky, :class:`OperationInProgressError` (409) if another operation is open on any of them (then
    no row is created at all), QueueUnavailableError (503) when the broker refuses the jobs (their rows are failed).
    """
    if deckies is not None:
        in_topology = sorted(decky.name for decky in deckies if decky.topology_id is not None)
        if in_topology:
            raise WrongScopeError(
                f"decky(s) {', '.join(in_topology)} belong to a topology; deploy the topology instead",
                deckies=in_topology,
            )
    rows: dict[int, DeckyLifecycle] = {}
    with transaction.atomic():
        # One query finds and locks them, in primary-key order (concurrent bulk requests never deadlock), and tells
        # which have open rows (read only for those): a deploy costs this plus the INSERTs of its rows and events.
        locked = _lock_fleet(deckies, names)
        with_open = [decky for decky in locked if getattr(decky, "has_open_rows", True)]
        busy = open_rows(with_open) if with_open else {}
        specs: list[RowSpec] = []
        for decky in sorted(locked, key=lambda d: d.name):
            existing = refuse_if_busy(decky, busy.get(decky.pk, []), allow=LifecycleOperation.DEPLOY)
            if existing is not None:
                rows[decky.pk] = existing
                continue
            specs.append(row_spec(decky, LifecycleOperation.DEPLOY, actor))
        created = _create_in_jobs(specs, locked)
        for row in created:
            assert row.decky_id is not None
            rows[row.decky_id] = row
        jobs.submit(created, run_inline=run_inline)
    logger.info("deploy of %d decky(s) requested by %s (%d queued)", len(rows), actor or "system", len(created))
    by_name = {decky.name: decky.pk for decky in locked}
    order = [d.name for d in deckies] if deckies is not None else list(names or sorted(by_name))
    return [rows[by_name[name]] for name in dict.fromkeys(order)]


def _lock_fleet(deckies: Sequence[Decky] | None, names: Sequence[str] | None) -> list[Decky]:
    """Lock the fleet deckies given (by instance, by name, or all of them) with one query, in primary-key order."""
    queryset = _lockable().filter(topology__isnull=True).order_by("pk")
    if deckies is not None:
        wanted = sorted({decky.pk for decky in deckies})
        locked = list(queryset.filter(pk__in=wanted))
        if len(locked) != len(wanted):
            present = {d.pk for d in locked}
            gone = sorted({d.name for d in deckies if d.pk not in present})
            raise NotFoundError(f"decky(s) {', '.join(gone)} no longer exist", deckies=gone)
        return locked
    if names is None:
        locked = list(queryset)
        if not locked:
            raise DeckyNotFoundError("the fleet has no deckies")
        return locked
    locked = list(queryset.filter(name__in=list(names)))
    unknown = sorted(set(names) - {decky.name for decky in locked})
    if unknown:
        raise DeckyNotFoundError(f"unknown decky name(s): {', '.join(unknown)}", unknown=unknown)
    return locked


def _create_in_jobs(specs: Sequence[RowSpec], deckies: Sequence[Decky]) -> list[DeckyLifecycle]:
    """Create the rows with one INSERT, in jobs of :data:`DEPLOY_BATCH` deckies of the same host."""
    host_of = {decky.pk: decky.host_id for decky in deckies}
    counts: dict[object, int] = {}
    current: dict[object, uuid.UUID] = {}
    with_jobs = []
    for spec in specs:
        host = host_of.get(spec.decky_id or 0)
        if counts.get(host, 0) % DEPLOY_BATCH == 0:
            current[host] = uuid.uuid4()
        counts[host] = counts.get(host, 0) + 1
        with_jobs.append(dataclasses.replace(spec, job=current[host]))
    return lifecycle_create(with_jobs) if with_jobs else []


# --- mutate, teardown, repair -----------------------------------------------------------------------------------------


def is_live(decky: Decky) -> bool:
    """Whether a fleet decky's containers exist (its state is running or degraded), so a change applies to Docker."""
    return decky.state in DEPLOYED_STATES


def mutate_request(
    *,
    decky: Decky | None = None,
    name: str | None = None,
    live: bool | None = None,
    run_inline: bool = False,
    trigger: str = "operator",
    actor: str | None = None,
    rng: random.Random | None = None,
) -> DeckyLifecycle:
    """Rotate the decky's services now: pick a new set, commit it (and ``last_mutated``), then queue the apply.

    The new services are committed before the job runs, so observers never see a half-applied mutation; kept
    services keep their config, new ones start from their defaults. An open mutate row is returned as is (no new
    pick). ``live`` says whether the decky's containers exist (default for a fleet decky: its state; a topology
    decky's caller decides from the topology's status, under its lock); when they do not, only the desired state
    changes. The decky is given as an instance or, for a fleet decky, by ``name``. Emits ``…mutation``. Raises
    :class:`DeckyNotFoundError` / :class:`NoServicesAvailableError` (404) and :class:`OperationInProgressError` (409).
    """
    with transaction.atomic():
        locked = lock(decky, name=name)
        live = is_live(locked) if live is None else live
        existing = refuse_if_busy(locked, busy_rows(locked), allow=LifecycleOperation.MUTATE)
        if existing is not None:
            return existing
        stored = list(DeckyService.objects.filter(decky=locked).order_by("position", "slug"))
        current = {row.slug: row.config for row in stored}
        old_services = [row.slug for row in stored]
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
        spec = row_spec(locked, LifecycleOperation.MUTATE, actor, live=live, trigger=trigger)
        mutation = {
            "decky": locked.name,
            "topology_id": None if locked.topology_id is None else str(locked.topology_id),
            "old_services": old_services,
            "new_services": list(validated),
            "trigger": trigger,
            "actor": actor,
            "lifecycle_id": str(spec.id),
        }
        (row,) = lifecycle_create([spec], events=[(state_topic(locked, "mutation"), "mutation", mutation)])
        jobs.submit([row], run_inline=run_inline)
    if decky is not None:
        decky.last_mutated = now
    return row


def teardown_request(
    *, decky: Decky | None = None, name: str | None = None, run_inline: bool = False, actor: str | None = None
) -> DeckyLifecycle:
    """Queue the removal of every container of a fleet decky (an instance, or by ``name``), its base included.

    The decky's record stays (state ``torn_down``) so it can be deployed again or deleted. An open teardown row
    is reused. Raises :class:`WrongScopeError` (422) for a topology decky, :class:`DeckyNotFoundError` (404) for
    an unknown name and :class:`OperationInProgressError` (409).
    """
    if decky is not None and decky.topology_id is not None:
        raise WrongScopeError(f"decky {decky.name!r} belongs to a topology; tear the topology down instead")
    with transaction.atomic():
        locked = lock(decky, name=name)
        row = _single(locked, LifecycleOperation.TEARDOWN, run_inline, actor)
    logger.info("teardown of %s requested by %s", locked.name, actor or "system")
    return row


def repair_request(
    *, decky: Decky, reason: str, run_inline: bool = False, actor: str | None = "reconciler"
) -> DeckyLifecycle:
    """Queue the repair of a deployed decky whose containers drifted (missing or stopped): the engine recreates
    exactly what is wrong, and the row says what was repaired. Works for fleet and topology deckies. An open
    repair row is reused; any other open operation refuses it (409)."""
    with transaction.atomic():
        row = _single(lock(decky), LifecycleOperation.REPAIR, run_inline, actor, reason=reason[:500])
    logger.info("repair of %s requested by %s: %s", decky.name, actor or "system", reason)
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


__all__ = [
    "DEPLOY_BATCH",
    "NoServicesAvailableError",
    "OperationInProgressError",
    "WrongScopeError",
    "auto_mutate_due",
    "deploy_request",
    "is_live",
    "lock",
    "mutate_request",
    "open_rows",
    "refuse_if_busy",
    "repair_request",
    "row_spec",
    "teardown_request",
]
