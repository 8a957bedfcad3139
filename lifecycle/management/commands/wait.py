"""``manage.py wait``: block until lifecycle rows are terminal; exit 0 only if every one succeeded."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lifecycle.choices import TERMINAL_STATUSES
from lifecycle.management.cli import lifecycle_table, status_text
from lifecycle.selectors import lifecycle_poll

EXIT_FAILED = 1
EXIT_TIMEOUT = 2


class Command(BaseCommand):
    help = (
        "Wait for lifecycle rows (the ids deploy/mutate/teardown print) to finish, printing each status change. "
        "Exit code 0 when all succeeded, 1 when any failed, 2 on --timeout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="+", metavar="LIFECYCLE_ID")
        parser.add_argument("--timeout", type=float, default=0, help="give up after this many seconds (0: never)")
        parser.add_argument("--interval", type=float, default=0.5, help="seconds between polls (0.5)")

    def handle(self, *args: Any, **options: Any) -> None:
        wanted: list[str] = []
        for raw in options["ids"]:
            try:
                wanted.append(str(uuid.UUID(raw)))
            except ValueError:
                raise CommandError(f"{raw!r} is not a lifecycle id (a UUID)") from None
        wanted = list(dict.fromkeys(wanted))
        if options["timeout"] < 0 or options["interval"] <= 0:
            raise CommandError("--timeout must be >= 0 and --interval > 0")
        rows = lifecycle_poll(ids=wanted)
        unknown = sorted(set(wanted) - {str(row.pk) for row in rows})
        if unknown:
            raise CommandError(f"unknown lifecycle id(s): {', '.join(unknown)}")
        deadline = time.monotonic() + options["timeout"] if options["timeout"] else None
        seen: dict[str, str] = {}
        while True:
            for row in rows:
                if seen.get(str(row.pk)) != row.status:
                    seen[str(row.pk)] = row.status
                    line = f"{row.operation} {row.decky_name} ({row.pk}): {status_text(row, self.style)}"
                    self.stdout.write(line + (f" - {row.error}" if row.error else ""))
            if all(row.status in TERMINAL_STATUSES for row in rows):
                break
            if deadline is not None and time.monotonic() >= deadline:
                open_rows = [row for row in rows if row.status not in TERMINAL_STATUSES]
                raise CommandError(
                    f"timed out with {len(open_rows)} operation(s) still open: "
                    + ", ".join(f"{row.decky_name} ({row.status})" for row in open_rows),
                    returncode=EXIT_TIMEOUT,
                )
            time.sleep(options["interval"])
            rows = lifecycle_poll(ids=wanted)
        self.stdout.write(lifecycle_table(rows, self.style))
        failed = [row for row in rows if row.status != "succeeded"]
        if failed:
            raise CommandError(f"{len(failed)} of {len(rows)} operation(s) failed", returncode=EXIT_FAILED)
        self.stdout.write(self.style.SUCCESS(f"all {len(rows)} operation(s) succeeded"))
