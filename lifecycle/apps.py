"""App config of the job layer; in a worker cluster it also starts each worker's lease keeper and reaper."""

from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger(__name__)


def start_worker(sender: Any = None, **kwargs: Any) -> None:
    """``django_q.signals.post_spawn`` receiver: django-q2 sends it in each worker process it starts.

    In worker processes it fails at once the rows this host's dead processes held and re-queues the jobs they may
    have lost (:func:`lifecycle.reaper.reap_at_start`), then keeps reaping from the lease keeper's thread. A failure
    here is logged and never stops the worker.
    """
    from lifecycle import reaper
    from lifecycle.workers import lease_keeper

    try:
        reaper.reap_at_start()
    except Exception:
        logger.exception("start-up reaping of lifecycle rows failed")
    lease_keeper().run_periodically(reaper.reap)


class LifecycleConfig(AppConfig):
    """Operation tracking: one lifecycle row per attempt, the job layer that runs them, and the event log."""

    name = "lifecycle"
    verbose_name = "Lifecycle"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lifecycle.workers import is_qcluster_process

        if is_qcluster_process():
            from django_q.signals import post_spawn

            post_spawn.connect(start_worker, dispatch_uid="lifecycle-start-worker")
