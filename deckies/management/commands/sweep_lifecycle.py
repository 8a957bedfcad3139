"""``manage.py sweep_lifecycle [--older-than 1h] [--dry-run]``: fail lifecycle rows left open by a lost worker."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``1h`` or ``2d`` as a timedelta; raises CommandError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise CommandError(f"bad duration {text!r}: use a number with an optional unit s, m, h or d (e.g. 1h)")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class Command(BaseCommand):
    help = (
        "Fail every pending/running lifecycle row older than --older-than (default: DECNET_LIFECYCLE_STALE_AFTER). "
        "Only for rows whose worker is gone: a row still being worked on would be failed too."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--older-than", default=None, help="Age such as 30m, 1h, 2d (default: the setting).")
        parser.add_argument("--dry-run", action="store_true", help="List the rows without failing them.")

    def handle(self, *args: Any, **options: Any) -> None:
        from lifecycle.tasks import stale_after, sweep_stale

        older_than = parse_duration(options["older_than"]) if options["older_than"] else stale_after()
        ids = sweep_stale(older_than=older_than, dry_run=bool(options["dry_run"]))
        for lifecycle_id in ids:
            self.stdout.write(lifecycle_id)
        verb = "would fail" if options["dry_run"] else "failed"
        self.stdout.write(self.style.SUCCESS(f"{verb} {len(ids)} stale lifecycle row(s) older than {older_than}"))
