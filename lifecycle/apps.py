"""App config of lifecycle tracking; in a worker cluster it also hooks the start-up sweep of stale rows."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger(__name__)

_swept_in_this_process = False


def is_qcluster_process(argv: list[str] | None = None) -> bool:
    """Whether this process is ``manage.py qcluster`` (or a worker forked from it)."""
    argv = sys.argv if argv is None else argv
    return len(argv) > 1 and argv[1] == "qcluster"


def sweep_on_worker_start(sender: Any = None, **kwargs: Any) -> None:
    """``django_q.signals.post_spawn`` receiver: sweep stale lifecycle rows once per worker process.

    The rows a killed cluster left open are failed as soon as a worker is back, instead of waiting for the first
    scheduled sweep. Several workers sweeping at once is safe (each row is failed by a conditional update). A
    failure here is logged and never stops the worker.
    """
    global _swept_in_this_process
    if _swept_in_this_process:
        return
    _swept_in_this_process = True
    from lifecycle.tasks import sweep_stale

    try:
        swept = sweep_stale()
    except Exception:
        logger.exception("start-up sweep of stale lifecycle rows failed")
        return
    if swept:
        logger.warning("start-up sweep failed %d stale lifecycle row(s)", len(swept))


class LifecycleConfig(AppConfig):
    """Operation tracking: one lifecycle row per attempt, plus the append-only event log."""

    name = "lifecycle"
    verbose_name = "Lifecycle"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Querying in ready() is discouraged (and the database may not be migrated yet), so the sweep waits for
        # the first worker process the cluster spawns.
        if is_qcluster_process():
            from django_q.signals import post_spawn

            post_spawn.connect(sweep_on_worker_start, dispatch_uid="lifecycle-sweep-on-worker-start")
