"""Writes to lifecycle rows and the event log.

Lifecycle rows follow ``pending → running → succeeded | failed`` and never change after a terminal status.
Every status write is a conditional ``UPDATE … WHERE status IN (<legal sources>)``, so two writers racing on
the same row cannot both win, and a terminal row cannot be reopened.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
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
from lifecycle.signals import event_recorded, lifecycle_changed

logger = logging.getLogger(__name__)


def event_emit(*, topic: str, type: str, payload: dict[str, Any] | None = None) -> Event:
    """Append one event and send :data:`event_recorded` once the surrounding transaction commits."""
    event = Event.objects.create(topic=topic, type=type, payload=payload or {})
    transaction.on_commit(lambda: _send_safely(event_recorded, event=event))
    return event


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


def lifecycle_create(
    *, decky_name: str, operation: str, host_uuid: str | None = None, status: str = LifecycleStatus.PENDING
) -> DeckyLifecycle:
    """Create one ``pending`` row for an attempt of ``operation`` on ``decky_name`` and record the event."""
    if operation not in LifecycleOperation.values:
        raise ValueError(f"unknown lifecycle operation {operation!r}")
    now = timezone.now()
    row = DeckyLifecycle.objects.create(
        decky_name=decky_name, host_uuid=host_uuid, operation=operation, status=status, started_at=now, updated_at=now
    )
    _record(row)
    return row


def lifecycle_update(
    lifecycle_id: uuid.UUID | str,
    *,
    status: str | None = None,
    error: str | BaseException | None = None,
    started_at: datetime | None = None,
    completed_at: datetime | None = None,
) -> DeckyLifecycle:
    """Update an open row; stamps ``updated_at`` and, on a terminal status, ``completed_at``.

    Raises :class:`LifecycleNotFoundError` for an unknown id and :class:`LifecycleImmutableError` when the row is
    already terminal or ``status`` is not a legal next status.
    """
    now = timezone.now()
    changes: dict[str, Any] = {"updated_at": now}
    sources: Iterable[str] = OPEN_STATUSES
    if status is not None:
        if status not in LifecycleStatus.values:
            raise ValueError(f"unknown lifecycle status {status!r}")
        sources = [src for src, targets in LEGAL_LIFECYCLE_MOVES.items() if status in targets]
        changes["status"] = status
        if status in TERMINAL_STATUSES:
            changes["completed_at"] = completed_at or now
    if error is not None:
        changes["error"] = truncate_error(error)
    if started_at is not None:
        changes["started_at"] = started_at
    with transaction.atomic():
        updated = DeckyLifecycle.objects.filter(pk=lifecycle_id, status__in=list(sources)).update(**changes)
        row = DeckyLifecycle.objects.filter(pk=lifecycle_id).first()
        if row is None:
            raise LifecycleNotFoundError(f"lifecycle row {lifecycle_id} does not exist")
        if not updated:
            raise LifecycleImmutableError(
                f"lifecycle row {lifecycle_id} is {row.status}; it cannot move to {status or row.status}",
                status=row.status,
            )
        if status is not None:
            _record(row)
    return row


def lifecycle_start(lifecycle_id: uuid.UUID | str) -> DeckyLifecycle:
    """Move a pending row to ``running``."""
    return lifecycle_update(lifecycle_id, status=LifecycleStatus.RUNNING)


def lifecycle_succeed(lifecycle_id: uuid.UUID | str) -> DeckyLifecycle:
    return lifecycle_update(lifecycle_id, status=LifecycleStatus.SUCCEEDED)


def lifecycle_fail(lifecycle_id: uuid.UUID | str, error: str | BaseException) -> DeckyLifecycle:
    return lifecycle_update(lifecycle_id, status=LifecycleStatus.FAILED, error=error)


def lifecycle_sweep_stale(cutoff: datetime, reason: str) -> int:
    """Fail every open row started before ``cutoff`` with ``reason``, in one UPDATE; returns the row count."""
    now = timezone.now()
    swept = DeckyLifecycle.objects.filter(status__in=sorted(OPEN_STATUSES), started_at__lt=cutoff).update(
        status=LifecycleStatus.FAILED, error=truncate_error(reason), updated_at=now, completed_at=now
    )
    if swept:
        logger.warning("swept %d stale lifecycle row(s): %s", swept, reason)
        event_emit(topic="lifecycle.sweep", type="swept", payload={"count": swept, "reason": reason})
    return swept


def lifecycle_get_by_ids(ids: Sequence[uuid.UUID | str]) -> list[DeckyLifecycle]:
    """Rows for ``ids`` ordered by ``started_at``; unknown or malformed ids are silently omitted."""
    valid: list[uuid.UUID] = []
    for raw in ids:
        try:
            valid.append(raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw)))
        except ValueError:
            continue
    if not valid:
        return []
    return list(DeckyLifecycle.objects.filter(pk__in=valid).order_by("started_at", "id"))


def lifecycle_find_open(decky_name: str, operation: str, host_uuid: str | None = None) -> DeckyLifecycle | None:
    """The newest pending/running row for (decky, operation, host); ``host_uuid=None`` means the local engine."""
    return (
        DeckyLifecycle.objects.filter(
            decky_name=decky_name, operation=operation, host_uuid=host_uuid, status__in=sorted(OPEN_STATUSES)
        )
        .order_by("-started_at")
        .first()
    )


def _record(row: DeckyLifecycle) -> None:
    event_emit(
        topic=f"decky.{row.decky_name}.lifecycle",
        type="lifecycle",
        payload={
            "lifecycle_id": str(row.pk),
            "operation": row.operation,
            "status": row.status,
            "error": row.error,
        },
    )
    transaction.on_commit(lambda: _send_safely(lifecycle_changed, row=row))
