"""The one job layer every operation runs through, fleet and topology alike.

Life of an operation:

1. **Create** its rows (:func:`lifecycle.services.lifecycle_create`, one per decky, sharing a ``job`` id) in the
   requesting transaction, and :func:`submit` them: the job is handed to the broker (or run in this process with
   ``run_inline``) only once that transaction commits. When the broker refuses, the rows are failed at once with the
   reason (and their targets' state recorded) and :class:`QueueUnavailableError` (503) is raised.
2. **Claim**: :func:`run_job` (the task body) moves the job's pending rows to ``running`` with one conditional
   update that records the worker and a lease; a second delivery of the same job claims nothing and returns.
3. **Run**: the operation registered for the rows' ``(operation, scope)`` does the work, outside any transaction,
   while the process's :class:`~lifecycle.workers.LeaseKeeper` renews the lease.
4. **Finish**: in one transaction per job, each row still held by this worker moves to ``succeeded`` or ``failed``
   with a human-readable ``message``, and the operation's :meth:`Operation.record` writes the target's state
   (decky state, topology status) for exactly the rows that moved: pollers see both or neither.

A row whose worker disappears is failed by :mod:`lifecycle.reaper`, which calls the same :meth:`Operation.record`,
so a target's state is written in one place whatever ended the row.

The layer knows no decky or topology: apps register their operations (:func:`register`) in ``AppConfig.ready``.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from decnet_site.exceptions import ServiceUnavailableError
from lifecycle import services
from lifecycle.choices import LifecycleStatus
from lifecycle.models import DeckyLifecycle
from lifecycle.workers import current_worker, lease_keeper, lease_length

logger = logging.getLogger(__name__)

#: Dotted path of the task every queued job runs.
JOB_TASK = "lifecycle.tasks.run_job_task"
JOB_GROUP = "decnet-operations"
FLEET = "fleet"
TOPOLOGY = "topology"


class QueueUnavailableError(ServiceUnavailableError):
    """The task broker refused the job (503); its rows were failed, never left pending."""

    code = "queue_unavailable"


class WorkerLostError(RuntimeError):
    """The process running a row went away (killed, crashed, its host lost) before recording an outcome."""


@dataclass(frozen=True)
class Outcome:
    """How one row ended: ``ok``, a sentence saying what happened, the exception when it failed, and whatever the
    operation's ``record`` needs from its ``run`` (``data``, e.g. addresses the engine allocated)."""

    ok: bool
    message: str = ""
    error: BaseException | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def success(cls, message: str, **data: Any) -> Outcome:
        return cls(ok=True, message=message, data=data)

    @classmethod
    def failure(cls, error: BaseException, message: str | None = None) -> Outcome:
        return cls(ok=False, message=message or str(error), error=error)


class Operation(Protocol):
    """What an app registers for one ``(operation, scope)``."""

    def run(self, rows: Sequence[DeckyLifecycle]) -> Mapping[uuid.UUID, Outcome]:
        """Do the work for the claimed ``rows`` (one job) and say how each ended; rows left out of the answer,
        or an exception, count as failed. Called outside any transaction; may call Docker."""
        ...

    def record(self, finished: Sequence[tuple[DeckyLifecycle, Outcome]]) -> None:
        """Write the targets' state for rows that just reached a terminal status. Called inside the transaction that
        moved them, once per job (by the runner or the reaper); must not call Docker or enqueue."""
        ...


_registry: dict[tuple[str, str], Operation] = {}


def register(operation: str, scope: str, handler: Operation) -> None:
    """Make ``handler`` run the rows of ``operation`` in ``scope`` (``fleet`` or ``topology``)."""
    _registry[(operation, scope)] = handler


def scope_of(row: DeckyLifecycle) -> str:
    return FLEET if row.topology_id is None else TOPOLOGY


def handler_for(row: DeckyLifecycle) -> Operation:
    key = (row.operation, scope_of(row))
    try:
        return _registry[key]
    except KeyError:
        raise LookupError(f"no operation is registered for {key[0]!r} in scope {key[1]!r}") from None


# --- submission -------------------------------------------------------------------------------------------------------


def submit(rows: Sequence[DeckyLifecycle], *, run_inline: bool = False) -> None:
    """Hand the jobs of ``rows`` over once the current transaction commits (call it in the transaction that
    created them). ``run_inline`` runs them in this process instead, one after the other."""
    jobs = list(dict.fromkeys(row.job for row in rows if row.job is not None))
    if jobs:
        transaction.on_commit(functools.partial(_dispatch, jobs, run_inline))


def _dispatch(jobs: list[uuid.UUID], run_inline: bool) -> None:
    if run_inline:
        for job in jobs:
            run_job(job)
        return
    for index, job in enumerate(jobs):
        try:
            enqueue(job)
        except Exception as exc:
            # Nothing would ever pick these jobs up: fail their rows now instead of leaving them for the reaper.
            refused = jobs[index:]
            reason = f"the task queue refused the operation: {exc}"
            rows = list(DeckyLifecycle.objects.filter(job__in=refused).values_list("pk", flat=True))
            fail_open(rows, QueueUnavailableError(reason), reason)
            raise QueueUnavailableError(reason, lifecycle_ids=[str(pk) for pk in rows]) from exc


def enqueue(job: uuid.UUID) -> None:
    """Give ``job`` to the broker; raises what the broker raises. (New rows carry ``queued_at`` from their creation,
    re-queued ones get it from the reaper.)"""
    from django_q.tasks import async_task

    async_task(
        JOB_TASK,
        str(job),
        task_name=f"job-{job}",
        group=JOB_GROUP,
        timeout=settings.DECNET_TASK_TIMEOUT,
    )


# --- running ----------------------------------------------------------------------------------------------------------


def run_job(job: uuid.UUID | str) -> dict[uuid.UUID, Outcome]:
    """Claim the pending rows of ``job``, run their operation and record how each ended; returns the outcomes.

    Never raises an ``Exception`` from the operation (it becomes failed rows); a ``BaseException`` (the worker being
    stopped) fails the rows and is re-raised. A job with no pending row (already run, or failed by the reaper) is a
    no-op.
    """
    worker = str(current_worker())
    rows = services.lifecycle_move(
        list(DeckyLifecycle.objects.filter(job=job, status=LifecycleStatus.PENDING).values_list("pk", flat=True)),
        to=LifecycleStatus.RUNNING,
        worker=worker,
        lease_until=timezone.now() + lease_length(),
    )
    if not rows:
        logger.info("job %s has no pending row; nothing to run", job)
        return {}
    ids = [row.pk for row in rows]
    keeper = lease_keeper()
    keeper.hold(ids)
    outcomes: dict[uuid.UUID, Outcome] = {}
    interrupted: BaseException | None = None
    try:
        outcomes = dict(handler_for(rows[0]).run(rows))
    except Exception as exc:
        logger.exception("%s of %d row(s) failed", rows[0].operation, len(rows))
        outcomes = {pk: Outcome.failure(exc, services.truncate_error(exc)) for pk in ids}
    except BaseException as exc:
        interrupted = exc
        stopped = WorkerLostError(
            f"worker {worker} was stopped ({type(exc).__name__}) while running {rows[0].operation}"
        )
        outcomes = {pk: Outcome.failure(stopped) for pk in ids}
    finally:
        keeper.release(ids)
        missing = WorkerLostError("the operation reported no outcome for this row")
        complete = {pk: outcomes.get(pk) or Outcome.failure(missing) for pk in ids}
        _finish(rows, complete, worker)
    if interrupted is not None:
        raise interrupted
    return complete


def _finish(rows: Sequence[DeckyLifecycle], outcomes: Mapping[uuid.UUID, Outcome], worker: str) -> None:
    """Terminal moves and the targets' state, atomically; rows the reaper took meanwhile keep its verdict."""
    handler = handler_for(rows[0])
    try:
        with transaction.atomic():
            finished: list[tuple[DeckyLifecycle, Outcome]] = []
            for ok in (True, False):
                group = [row.pk for row in rows if outcomes[row.pk].ok is ok]
                if not group:
                    continue
                if ok:
                    moved = [
                        row
                        for pk in group
                        for row in services.lifecycle_move(
                            [pk], to=LifecycleStatus.SUCCEEDED, message=outcomes[pk].message, only_worker=worker
                        )
                    ]
                else:
                    moved = [
                        row
                        for pk in group
                        for row in services.lifecycle_move(
                            [pk],
                            to=LifecycleStatus.FAILED,
                            message=outcomes[pk].message,
                            error=outcomes[pk].error or outcomes[pk].message,
                            only_worker=worker,
                        )
                    ]
                finished.extend((row, outcomes[row.pk]) for row in moved)
            if finished:
                handler.record(sorted(finished, key=lambda pair: (pair[0].started_at, str(pair[0].pk))))
            if len(finished) < len(rows):
                logger.warning(
                    "%d row(s) of job %s were ended by someone else meanwhile", len(rows) - len(finished), rows[0].job
                )
    except Exception:
        # The database itself failed: the rows keep their lease until it lapses, then the reaper fails them.
        logger.exception("could not record the outcome of job %s", rows[0].job)


def fail_open(ids: Sequence[uuid.UUID], error: BaseException, message: str) -> list[DeckyLifecycle]:
    """Fail the open rows ``ids`` (pending or running, whoever holds them) with ``message`` and record their
    targets' state through their operations, one transaction per job; returns the rows failed."""
    failed: list[DeckyLifecycle] = []
    rows = list(DeckyLifecycle.objects.filter(pk__in=list(ids)).order_by("started_at", "pk"))
    by_job: dict[object, list[DeckyLifecycle]] = {}
    for row in rows:
        by_job.setdefault(row.job or row.pk, []).append(row)
    for group in by_job.values():
        with transaction.atomic():
            moved = services.lifecycle_move(
                [row.pk for row in group], to=LifecycleStatus.FAILED, message=message, error=error
            )
            if moved:
                try:
                    handler = handler_for(moved[0])
                except LookupError:
                    logger.warning("no operation registered for %s; only the rows were failed", moved[0].operation)
                else:
                    handler.record([(row, Outcome.failure(error, message)) for row in moved])
            failed.extend(moved)
    return failed
