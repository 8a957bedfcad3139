"""The stale-row sweep: the recovery path for operations whose worker died.

A worker killed mid-operation (crash, SIGKILL, host reboot, task timeout) never reaches its ``finally``, so its
lifecycle row would stay ``pending``/``running`` forever. The sweep fails every open row older than
``DECNET_LIFECYCLE_STALE_AFTER`` seconds. It runs when the worker cluster starts (``lifecycle.apps``), every five
minutes on a django-q2 schedule (``manage.py setup_schedules``), and on demand (``manage.py sweep_lifecycle``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from lifecycle import services
from lifecycle.exceptions import LifecycleImmutableError
from lifecycle.selectors import lifecycle_stale

logger = logging.getLogger(__name__)

SWEEP_TASK = "lifecycle.tasks.sweep_stale_task"


def stale_after() -> timedelta:
    """The configured age past which an open row counts as abandoned."""
    return timedelta(seconds=int(settings.DECNET_LIFECYCLE_STALE_AFTER))


def sweep_reason(older_than: timedelta) -> str:
    return (
        f"worker lost during operation: no outcome recorded within {int(older_than.total_seconds())} s "
        "(worker killed, crashed or timed out)"
    )


def sweep_stale(*, older_than: timedelta | None = None, dry_run: bool = False) -> list[str]:
    """Fail every open lifecycle row started more than ``older_than`` ago; returns the ids failed (or that would be).

    Contract: each row is failed with the conditional update of :func:`lifecycle.services.lifecycle_fail`, so a row
    that reached a terminal status meanwhile is left alone, two concurrent sweeps never both fail a row, and every
    failed row gets its ``decky.<name>.lifecycle`` event and ``lifecycle_changed`` signal.
    """
    older_than = stale_after() if older_than is None else older_than
    cutoff = timezone.now() - older_than
    ids = [str(pk) for pk in lifecycle_stale(cutoff=cutoff).values_list("pk", flat=True)]
    if dry_run or not ids:
        return ids
    reason = sweep_reason(older_than)
    swept = []
    for lifecycle_id in ids:
        try:
            services.lifecycle_fail(lifecycle_id, reason)
        except LifecycleImmutableError:
            continue
        swept.append(lifecycle_id)
    if swept:
        logger.warning("swept %d stale lifecycle row(s) older than %s", len(swept), older_than)
        services.event_emit(topic="lifecycle.sweep", type="swept", payload={"count": len(swept), "ids": swept[:200]})
    return swept


def sweep_stale_task() -> int:
    """Scheduled every five minutes and run at cluster start: :func:`sweep_stale` with the configured age."""
    return len(sweep_stale())
