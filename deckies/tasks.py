"""django-q2 task entry points for deckies: each calls one service and holds no logic.

Operations themselves run through the job layer (``lifecycle.tasks.run_job_task``); these are the schedules.
"""

from __future__ import annotations

from typing import Any

from deckies import operations, reconcile


def auto_mutate_task() -> int:
    """Scheduled every minute: request a mutation of each deployed decky whose interval elapsed; returns how many."""
    return len(operations.auto_mutate_due())


def reconcile_task() -> dict[str, Any]:
    """Scheduled every minute: compare every deployed decky with its containers, record what is observed, and
    (unless ``DECNET_AUTO_HEAL`` is off) queue a repair for each drifted decky; returns the report."""
    return reconcile.reconcile_all().as_dict()
