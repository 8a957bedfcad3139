"""django-q2 task entry points for topologies: each loads by key, calls one operation and holds no logic.

Tasks are enqueued by dotted path (``topology.tasks.<name>``) with the topology id as their only argument, so a
later move to another task runner only changes the enqueue call.
"""

from __future__ import annotations

from topology import operations


def topology_deploy_task(topology_id: str) -> None:
    """Deploy topology ``topology_id`` (see :func:`topology.operations.run_deploy`); never raises on failure,
    which is recorded as the topology's status instead."""
    operations.run_deploy(topology_id)


def topology_teardown_task(topology_id: str) -> None:
    """Tear topology ``topology_id`` down (see :func:`topology.operations.run_teardown`)."""
    operations.run_teardown(topology_id)


def sweep_stuck_task() -> int:
    """Scheduled: move topologies stuck deploying / tearing down past :func:`topology.operations.stuck_after` to
    failed / degraded; returns how many moved."""
    return operations.sweep_stuck(operations.stuck_after())
