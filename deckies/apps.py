"""App config of the deckies: registers their operations with the job layer and their engines' health checks."""

from __future__ import annotations

from collections.abc import Callable

from django.apps import AppConfig


def engine_checks() -> dict[str, Callable[[], str]]:
    """``engine:local`` and ``engine:<host>`` for every enabled host: each pings its Docker engine."""
    from deckies.engine import runtime
    from deckies.scopes import host_url
    from deckies.selectors import hosts_to_check

    def ping(url: str) -> Callable[[], str]:
        return lambda: f"Docker {runtime.engine_ping(url)}"

    checks = {"engine:local": ping(host_url(None))}
    for host in hosts_to_check():
        checks[f"engine:{host.name}"] = ping(host_url(host))
    return checks


class DeckiesConfig(AppConfig):
    """Deckies, their services and hosts; the engine that turns them into containers."""

    name = "deckies"
    verbose_name = "Deckies"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from deckies import handlers
        from decnet_site.health import register_checks
        from lifecycle import jobs
        from lifecycle.choices import LifecycleOperation as Op
        from lifecycle.schedules import ScheduleSpec, register_schedule

        jobs.register(Op.DEPLOY, jobs.FLEET, handlers.DeployFleet())
        jobs.register(Op.TEARDOWN, jobs.FLEET, handlers.TeardownFleet())
        for scope in (jobs.FLEET, jobs.TOPOLOGY):
            jobs.register(Op.MUTATE, scope, handlers.Mutate())
            jobs.register(Op.REPAIR, scope, handlers.Repair())
            jobs.register(Op.SERVICE_ADD, scope, handlers.ServiceAdd())
            jobs.register(Op.SERVICE_REMOVE, scope, handlers.ServiceRemove())
        register_checks(engine_checks)
        register_schedule(
            ScheduleSpec(
                "decnet-auto-mutate", "deckies.tasks.auto_mutate_task", 1, help="rotate deckies whose interval elapsed"
            )
        )
        register_schedule(
            ScheduleSpec(
                "decnet-reconcile",
                "deckies.tasks.reconcile_task",
                1,
                help="record drift; repair it unless DECNET_AUTO_HEAL=0",
            )
        )
