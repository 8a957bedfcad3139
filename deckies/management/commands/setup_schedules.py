"""``manage.py setup_schedules``: create or update the recurring django-q2 schedules, idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction


@dataclass(frozen=True)
class ScheduleSpec:
    """One recurring task, upserted by ``name``."""

    name: str
    func: str
    minutes: int
    kwargs: str = ""
    help: str = ""


SCHEDULES: tuple[ScheduleSpec, ...] = (
    ScheduleSpec(
        "decnet-sweep-lifecycle",
        "lifecycle.tasks.sweep_stale_task",
        5,
        help="fail lifecycle rows left open by a lost worker",
    ),
    ScheduleSpec(
        "decnet-sweep-topologies",
        "topology.tasks.sweep_stuck_task",
        5,
        help="fail topologies left deploying or tearing down by a lost worker",
    ),
    ScheduleSpec(
        "decnet-auto-mutate",
        "deckies.tasks.auto_mutate_task",
        1,
        help="rotate the services of deckies whose mutate interval elapsed",
    ),
    ScheduleSpec(
        "decnet-reconcile",
        "deckies.tasks.reconcile_task",
        1,
        kwargs="heal=False",
        help="compare the database with Docker and record what drifted",
    ),
)


class Command(BaseCommand):
    help = "Create or update the recurring task schedules (lifecycle sweep, auto-mutate, reconcile). Idempotent."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Show what would change without writing.")

    def handle(self, *args: Any, **options: Any) -> None:
        from django_q.models import Schedule

        dry_run = bool(options["dry_run"])
        with transaction.atomic():
            for spec in SCHEDULES:
                wanted = {
                    "func": spec.func,
                    "schedule_type": Schedule.MINUTES,
                    "minutes": spec.minutes,
                    "repeats": -1,
                    "kwargs": spec.kwargs,
                    "args": "",
                }
                existing = Schedule.objects.select_for_update().filter(name=spec.name).first()
                if existing is None:
                    verb = "would create" if dry_run else "created"
                    if not dry_run:
                        Schedule.objects.create(name=spec.name, **wanted)
                elif any(getattr(existing, key) != value for key, value in wanted.items()):
                    verb = "would update" if dry_run else "updated"
                    if not dry_run:
                        for key, value in wanted.items():
                            setattr(existing, key, value)
                        existing.save()
                else:
                    verb = "unchanged"
                style = self.style.SUCCESS if verb in {"created", "updated"} else self.style.NOTICE
                self.stdout.write(style(f"{verb}: {spec.name} ({spec.func} every {spec.minutes} min): {spec.help}"))
