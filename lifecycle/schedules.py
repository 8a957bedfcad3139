"""Recurring tasks: each app declares its own (:func:`register_schedule` in ``AppConfig.ready``), and
:func:`schedules_sync` upserts them by name as django-q2 schedules, idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from lifecycle.reaper import REAP_TASK


@dataclass(frozen=True)
class ScheduleSpec:
    """One recurring task, upserted by ``name``."""

    name: str
    func: str
    minutes: int
    help: str = ""


@dataclass(frozen=True)
class ScheduleChange:
    """What :func:`schedules_sync` did (or would do) to one schedule."""

    spec: ScheduleSpec
    verb: str  # created, updated, unchanged, removed (or "would …" in a dry run)


_specs: dict[str, ScheduleSpec] = {}

#: Schedules of earlier releases, removed by :func:`schedules_sync` (one reaper replaced both sweeps).
RETIRED = ("decnet-sweep-lifecycle", "decnet-sweep-topologies")


def register_schedule(spec: ScheduleSpec) -> None:
    _specs[spec.name] = spec


register_schedule(
    ScheduleSpec("decnet-reaper", REAP_TASK, 1, help="fail rows whose worker is gone, re-queue lost jobs")
)


def registered() -> list[ScheduleSpec]:
    return [_specs[name] for name in sorted(_specs)]


def schedules_sync(*, dry_run: bool = False) -> list[ScheduleChange]:
    """Create or update every registered schedule and remove retired ones; returns what changed."""
    from django_q.models import Schedule

    prefix = "would " if dry_run else ""
    changes: list[ScheduleChange] = []
    with transaction.atomic():
        for spec in registered():
            wanted = {
                "func": spec.func,
                "schedule_type": Schedule.MINUTES,
                "minutes": spec.minutes,
                "repeats": -1,
                "kwargs": "",
                "args": "",
            }
            existing = Schedule.objects.select_for_update().filter(name=spec.name).first()
            if existing is None:
                verb = "create"
                if not dry_run:
                    Schedule.objects.create(name=spec.name, **wanted)
            elif any(getattr(existing, key) != value for key, value in wanted.items()):
                verb = "update"
                if not dry_run:
                    Schedule.objects.filter(pk=existing.pk).update(**wanted)
            else:
                changes.append(ScheduleChange(spec, "unchanged"))
                continue
            changes.append(ScheduleChange(spec, f"{prefix}{verb}" + ("" if dry_run else "d")))
        for name in RETIRED:
            old = Schedule.objects.filter(name=name)
            if old.exists():
                if not dry_run:
                    old.delete()
                changes.append(
                    ScheduleChange(
                        ScheduleSpec(name, "", 0, help="retired"), f"{prefix}remove" + ("" if dry_run else "d")
                    )
                )
    return changes
