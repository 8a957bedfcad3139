"""``manage.py setup_schedules``: create or update the recurring task schedules of every app, idempotently."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from lifecycle.schedules import schedules_sync


class Command(BaseCommand):
    help = "Create or update the recurring task schedules (reaper, auto-mutate, reconcile). Idempotent."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Show what would change without writing.")

    def handle(self, *args: Any, **options: Any) -> None:
        for change in schedules_sync(dry_run=bool(options["dry_run"])):
            spec = change.spec
            style = self.style.SUCCESS if change.verb in {"created", "updated", "removed"} else self.style.NOTICE
            every = f" ({spec.func} every {spec.minutes} min)" if spec.func else ""
            self.stdout.write(style(f"{change.verb}: {spec.name}{every}: {spec.help}"))
