"""The reaper: no lifecycle row stays open when nobody is working on it.

One sweep, :func:`reap`, answers three questions, cheapest first:

1. **Lapsed leases.** A running row whose worker stopped renewing its lease (killed, crashed, its host gone) is
   failed: "worker … stopped while running …; its lease lapsed at …".
2. **Lost tasks.** A pending row whose task was handed to the broker long ago while the broker's queue is empty
   lost its task (a worker cluster killed with the task in hand): its job is handed over again. Duplicate
   deliveries are harmless, since claiming is a conditional update.
3. **Last resort.** Any row open for longer than ``DECNET_LIFECYCLE_STALE_AFTER`` is failed.

It runs in every worker process of a cluster (the lease keeper's thread, every ``DECNET_REAPER_INTERVAL`` seconds)
and on one django-q2 schedule (``manage.py setup_schedules``). When a worker process starts, :func:`reap_at_start`
also fails at once the rows that this host's dead processes of the same cluster held, and re-queues the pending
rows nobody holds: a restarted cluster picks up where the killed one stopped, without waiting for any lease.

Every row failed here goes through :func:`lifecycle.jobs.fail_open`, so its target's state is recorded by its
operation exactly as if the worker had reported the failure.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from lifecycle import jobs
from lifecycle.choices import OPEN_STATUSES, LifecycleStatus
from lifecycle.models import DeckyLifecycle
from lifecycle.services import lifecycle_mark_queued
from lifecycle.workers import WorkerId, current_worker, process_started_at

logger = logging.getLogger(__name__)

REAP_TASK = "lifecycle.tasks.reap_task"


@dataclass
class ReapReport:
    """What one sweep did: ids failed for a lapsed lease or a dead worker, jobs re-queued, ids failed for age."""

    lapsed: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.lapsed) + len(self.dead) + len(self.requeued) + len(self.stale)

    def as_dict(self) -> dict[str, list[str]]:
        return {"lapsed": self.lapsed, "dead": self.dead, "requeued": self.requeued, "stale": self.stale}


def requeue_after() -> timedelta:
    return timedelta(seconds=int(settings.DECNET_LIFECYCLE_REQUEUE_AFTER))


def stale_after() -> timedelta:
    return timedelta(seconds=int(settings.DECNET_LIFECYCLE_STALE_AFTER))


def _fail(rows: list[DeckyLifecycle], reason_of: dict[uuid.UUID, str]) -> list[str]:
    failed: list[str] = []
    # Rows of one job share a reason in practice; group by reason so each job's targets are recorded once.
    by_reason: dict[str, list[uuid.UUID]] = {}
    for row in rows:
        by_reason.setdefault(reason_of[row.pk], []).append(row.pk)
    for reason, ids in by_reason.items():
        moved = jobs.fail_open(ids, jobs.WorkerLostError(reason), reason)
        failed.extend(str(row.pk) for row in moved)
    return failed


def _lapsed(now: datetime) -> list[str]:
    rows = list(
        DeckyLifecycle.objects.filter(status=LifecycleStatus.RUNNING, lease_expires_at__lt=now).order_by("started_at")
    )
    reasons = {
        row.pk: (
            f"worker {row.worker or 'unknown'} stopped while running {row.operation}: its lease lapsed at "
            f"{row.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        for row in rows
        if row.lease_expires_at is not None
    }
    return _fail(rows, reasons)


def _broker_idle() -> bool:
    """Whether the broker holds no task waiting for a worker (so a long-pending row cannot be waiting its turn)."""
    from django_q.brokers import get_broker

    try:
        return int(get_broker().queue_size() or 0) == 0
    except Exception as exc:  # an unreachable broker cannot take a re-queue either
        logger.info("reaper cannot read the broker's queue size: %s", exc)
        return False


def _requeue(job_ids: list[uuid.UUID], cutoff: datetime) -> list[str]:
    requeued: list[str] = []
    for job in job_ids:
        ids = list(DeckyLifecycle.objects.filter(job=job, status=LifecycleStatus.PENDING).values_list("pk", flat=True))
        stamped = lifecycle_mark_queued(ids, not_since=cutoff)
        if not stamped:
            continue  # another process handed it over just now
        try:
            jobs.enqueue(job)
        except Exception as exc:
            logger.warning("could not re-queue job %s: %s", job, exc)
            continue
        requeued.extend(str(pk) for pk in stamped)
    return requeued


def _lost_pending(now: datetime) -> list[str]:
    cutoff = now - requeue_after()
    lost = (
        DeckyLifecycle.objects.filter(status=LifecycleStatus.PENDING, started_at__lt=cutoff, job__isnull=False)
        .filter(Q(queued_at__lt=cutoff) | Q(queued_at__isnull=True))
        .values_list("job", flat=True)
        .distinct()
    )
    job_ids = [job for job in lost if job is not None]
    if not job_ids or not _broker_idle():
        return []
    return _requeue(job_ids, cutoff)


def _stale(now: datetime) -> list[str]:
    cutoff = now - stale_after()
    rows = list(DeckyLifecycle.objects.filter(status__in=sorted(OPEN_STATUSES), started_at__lt=cutoff))
    reason = (
        f"no outcome recorded within {int(stale_after().total_seconds())} s of the request "
        "(the operation was never picked up or its worker was lost)"
    )
    return _fail(rows, dict.fromkeys((row.pk for row in rows), reason))


def reap(*, now: datetime | None = None) -> ReapReport:
    """One sweep (lapsed leases, lost tasks, then the age limit); safe to run anywhere, any number of times at once."""
    now = now or timezone.now()
    report = ReapReport(lapsed=_lapsed(now))
    report.requeued = _lost_pending(now)
    report.stale = _stale(now)
    if report.total:
        logger.warning("reaper: %s", {key: len(value) for key, value in report.as_dict().items() if value})
    return report


def reap_at_start() -> ReapReport:
    """At a worker's start: fail what this host's dead processes of this cluster held, re-queue pending rows that
    were handed to the broker before now (their tasks may have died with the old cluster), then :func:`reap`."""
    me = current_worker()
    now = timezone.now()
    report = ReapReport()
    running = DeckyLifecycle.objects.filter(
        status=LifecycleStatus.RUNNING, worker__startswith=f"{me.cluster}@{me.host}:"
    ).order_by("started_at")
    reasons: dict[uuid.UUID, str] = {}
    dead: list[DeckyLifecycle] = []
    for row in running:
        holder = WorkerId.parse(row.worker)
        if holder is not None and holder.is_local() and not holder.is_alive():
            dead.append(row)
            reasons[row.pk] = (
                f"worker {row.worker} stopped while running {row.operation}: the process is gone "
                f"(cluster {me.cluster} on {me.host} restarted)"
            )
    report.dead = _fail(dead, reasons)
    # Jobs handed to the broker before this cluster started may have died in the hands of the one before it; jobs
    # queued since are in the broker or in this cluster's own hands (a respawned worker re-queues nothing).
    cluster_start = process_started_at(os.getppid()) or now
    pending_jobs = (
        DeckyLifecycle.objects.filter(status=LifecycleStatus.PENDING, job__isnull=False, started_at__lt=cluster_start)
        .filter(Q(queued_at__lt=cluster_start) | Q(queued_at__isnull=True))
        .values_list("job", flat=True)
        .distinct()
    )
    report.requeued = _requeue([job for job in pending_jobs if job is not None], cluster_start)
    swept = reap(now=now)
    report.lapsed, report.stale = swept.lapsed, swept.stale
    report.requeued += swept.requeued
    if report.dead or report.requeued:
        logger.warning(
            "worker start: failed %d row(s) of dead workers, re-queued %d", len(report.dead), len(report.requeued)
        )
    return report
