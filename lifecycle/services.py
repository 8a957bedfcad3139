"""Writes to lifecycle rows and the event log.

Lifecycle rows follow the machine in :data:`lifecycle.choices.LEGAL_LIFECYCLE_MOVES` (``pending → running →
succeeded | failed``) and never change after a terminal status. Every status write goes through
:func:`lifecycle_move`, a conditional ``UPDATE … WHERE status IN (<legal sources>)``, so two writers racing on a row
cannot both win and a terminal row cannot be reopened. Each move appends a ``…lifecycle`` event in the same
transaction and sends :data:`~lifecycle.signals.lifecycle_changed` after commit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from lifecycle.choices import (
    ERROR_MAX_LENGTH,
    LEGAL_LIFECYCLE_MOVES,
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    LifecycleOperation,
    LifecycleStatus,
)
from lifecycle.exceptions import LifecycleImmutableError, LifecycleNotFoundError
from lifecycle.models import DeckyLifecycle, Event
from lifecycle.signals import lifecycle_changed

logger = logging.getLogger(__name__)

#: Called with every event inside the transaction that appends it (e.g. an outbox writing webhook deliveries).
#: A sink that raises aborts the transaction: it must only write rows of its own.
EventSink = Callable[[Sequence[Event]], None]
_event_sinks: list[EventSink] = []


def register_event_sink(sink: EventSink) -> None:
    """Add ``sink`` to the in-transaction consumers of appended events (idempotent; call from ``AppConfig.ready``)."""
    if sink not in _event_sinks:
        _event_sinks.append(sink)


def event_emit(*, topic: str, type: str, payload: dict[str, Any] | None = None) -> Event:
    """Append one event; registered sinks see it in this transaction."""
    return events_emit([(topic, type, payload or {})])[0]


def events_emit(items: Iterable[tuple[str, str, dict[str, Any]]]) -> list[Event]:
    """Append several events with one INSERT (same contract as :func:`event_emit`)."""
    now = timezone.now()
    events = Event.objects.bulk_create([Event(topic=t, type=ty, payload=p, at=now) for t, ty, p in items])
    for sink in _event_sinks:
        sink(events)
    return events


def _send_safely(signal: Any, **kwargs: Any) -> None:
    # Receivers are side channels (logs, notifications): one failing must never undo or block the state change.
    for receiver, result in signal.send_robust(sender=None, **kwargs):
        if isinstance(result, Exception):
            logger.warning("signal receiver %r failed: %s", receiver, result)


def truncate_error(error: str | BaseException | None) -> str | None:
    """``'<Type>: <message>'`` for an exception (or the text as given), cut to the column's bound."""
    if error is None:
        return None
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return text if len(text) <= ERROR_MAX_LENGTH else text[: ERROR_MAX_LENGTH - 3] + "..."


def lifecycle_topic(row: DeckyLifecycle) -> str:
    """``decky.<name>.lifecycle`` for a fleet decky, ``topology.<id>.decky.<name>.lifecycle`` in a topology."""
    if row.topology_id is None:
        return f"decky.{row.decky_name}.lifecycle"
    return f"topology.{row.topology_id}.decky.{row.decky_name}.lifecycle"


def _event_of(row: DeckyLifecycle) -> tuple[str, str, dict[str, Any]]:
    return (
        lifecycle_topic(row),
        "lifecycle",
        {
            "lifecycle_id": str(row.pk),
            "decky_name": row.decky_name,
            "topology_id": None if row.topology_id is None else str(row.topology_id),
            "operation": row.operation,
            "status": row.status,
            "error": row.error,
            "message": row.message,
        },
    )


def _record(rows: Sequence[DeckyLifecycle], extra: Iterable[tuple[str, str, dict[str, Any]]] = ()) -> None:
    if not rows:
        return
    events_emit([*(_event_of(row) for row in rows), *extra])

    def announce() -> None:
        for row in rows:
            _send_safely(lifecycle_changed, row=row)

    transaction.on_commit(announce)


# --- creation ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowSpec:
    """What one new row acts on and why: the decky (by name, and by id while it exists), its topology, its host."""

    decky_name: str
    operation: str
    decky_id: int | None = None
    topology_id: uuid.UUID | None = None
    host_uuid: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    actor: str = ""
    job: uuid.UUID | None = None
    #: The row's id, when the caller must name it before it exists (an event written with it).
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def lifecycle_create(
    specs: Sequence[RowSpec],
    *,
    job: uuid.UUID | None = None,
    status: str = LifecycleStatus.PENDING,
    events: Iterable[tuple[str, str, dict[str, Any]]] = (),
) -> list[DeckyLifecycle]:
    """Create one row per spec with one INSERT (and one for their events), in the spec's own ``job`` when it names
    one, else all in ``job`` (a new one if None).

    Rows start ``pending`` unless ``status`` says ``running`` (a change made in this very request); a pending row is
    stamped ``queued_at`` now (it is handed to the broker when this transaction commits). ``events`` are appended
    with the rows' own, in the same INSERT. Raises ``ValueError`` for an unknown operation or a terminal starting
    status.
    """
    if status not in OPEN_STATUSES:
        raise ValueError(f"a lifecycle row starts pending or running, not {status!r}")
    job = job or uuid.uuid4()
    now = timezone.now()
    rows = []
    for spec in specs:
        if spec.operation not in LifecycleOperation.values:
            raise ValueError(f"unknown lifecycle operation {spec.operation!r}")
        rows.append(
            DeckyLifecycle(
                id=spec.id,
                decky_name=spec.decky_name,
                decky_id=spec.decky_id,
                topology_id=spec.topology_id,
                host_uuid=spec.host_uuid,
                operation=spec.operation,
                status=status,
                params=spec.params,
                actor=spec.actor[:150],
                job=spec.job or job,
                queued_at=now if status == LifecycleStatus.PENDING else None,
                started_at=now,
                updated_at=now,
            )
        )
    created = DeckyLifecycle.objects.bulk_create(rows)
    _record(created, extra=events)
    return created


# --- moves ------------------------------------------------------------------------------------------------------------


def lifecycle_move(
    ids: Sequence[uuid.UUID | str],
    *,
    to: str,
    message: str | None = None,
    error: str | BaseException | None = None,
    worker: str | None = None,
    only_worker: str | None = None,
    lease_until: datetime | None = None,
) -> list[DeckyLifecycle]:
    """Move the rows ``ids`` to status ``to`` where the machine allows it from their current status.

    A row moves only if its status is a legal source of ``to`` (and, with ``only_worker``, if that worker holds
    it); the others are left as they are. Terminal moves stamp ``completed_at`` and clear the lease. Returns the
    rows that moved, as stored, with their events appended. Raises ``ValueError`` for an unknown status.
    """
    if to not in LifecycleStatus.values:
        raise ValueError(f"unknown lifecycle status {to!r}")
    sources = [source for source, targets in LEGAL_LIFECYCLE_MOVES.items() if to in targets]
    now = timezone.now()
    changes: dict[str, Any] = {"status": to, "updated_at": now}
    if to in TERMINAL_STATUSES:
        changes.update(completed_at=now, lease_expires_at=None)
    if message is not None:
        changes["message"] = message[:ERROR_MAX_LENGTH]
    if error is not None:
        changes["error"] = truncate_error(error)
    if worker is not None:
        changes["worker"] = worker[:200]
    if lease_until is not None:
        changes["lease_expires_at"] = lease_until
    with transaction.atomic():
        queryset = DeckyLifecycle.objects.filter(pk__in=list(ids), status__in=sources)
        if only_worker is not None:
            queryset = queryset.filter(worker=only_worker)
        # Lock in a fixed order, then update what is locked: the rows returned are exactly the ones moved.
        moving = list(queryset.select_for_update().order_by("pk").values_list("pk", flat=True))
        if not moving:
            return []
        DeckyLifecycle.objects.filter(pk__in=moving).update(**changes)
        moved = list(DeckyLifecycle.objects.filter(pk__in=moving).order_by("started_at", "pk"))
        _record(moved)
    return moved


def lifecycle_update(
    lifecycle_id: uuid.UUID | str,
    *,
    status: str,
    error: str | BaseException | None = None,
    message: str | None = None,
) -> DeckyLifecycle:
    """Move one row to ``status``; raises :class:`LifecycleNotFoundError` for an unknown id and
    :class:`LifecycleImmutableError` (409) when the move is not legal from the row's status."""
    moved = lifecycle_move([lifecycle_id], to=status, error=error, message=message)
    if moved:
        return moved[0]
    row = DeckyLifecycle.objects.filter(pk=lifecycle_id).first()
    if row is None:
        raise LifecycleNotFoundError(f"lifecycle row {lifecycle_id} does not exist")
    raise LifecycleImmutableError(
        f"lifecycle row {lifecycle_id} is {row.status}; it cannot move to {status}", status=row.status
    )


def lifecycle_start(lifecycle_id: uuid.UUID | str) -> DeckyLifecycle:
    """Move a pending row to ``running``."""
    return lifecycle_update(lifecycle_id, status=LifecycleStatus.RUNNING)


def lifecycle_succeed(lifecycle_id: uuid.UUID | str, message: str = "") -> DeckyLifecycle:
    """Move an open row to ``succeeded``."""
    return lifecycle_update(lifecycle_id, status=LifecycleStatus.SUCCEEDED, message=message)


def lifecycle_fail(lifecycle_id: uuid.UUID | str, error: str | BaseException, message: str = "") -> DeckyLifecycle:
    """Move an open row to ``failed`` with ``error`` (and ``message``, the explanation in words)."""
    return lifecycle_update(lifecycle_id, status=LifecycleStatus.FAILED, error=error, message=message or None)


def lifecycle_renew(ids: Sequence[uuid.UUID], *, worker: str, until: datetime) -> int:
    """Extend the lease of the running rows ``ids`` that ``worker`` holds; returns how many it still holds."""
    if not ids:
        return 0
    return DeckyLifecycle.objects.filter(pk__in=list(ids), status=LifecycleStatus.RUNNING, worker=worker).update(
        lease_expires_at=until
    )


def lifecycle_mark_queued(ids: Sequence[uuid.UUID], *, not_since: datetime | None = None) -> list[uuid.UUID]:
    """Stamp ``queued_at`` on the pending rows ``ids`` (only those last queued before ``not_since``, when given, so
    two processes re-queueing at once hand each row over once); returns the ids stamped."""
    now = timezone.now()
    with transaction.atomic():
        queryset = DeckyLifecycle.objects.filter(pk__in=list(ids), status=LifecycleStatus.PENDING)
        if not_since is not None:
            queryset = queryset.exclude(queued_at__gte=not_since)
        stamped = list(queryset.select_for_update().order_by("pk").values_list("pk", flat=True))
        DeckyLifecycle.objects.filter(pk__in=stamped).update(queued_at=now, queue_count=F("queue_count") + 1)
    return stamped
