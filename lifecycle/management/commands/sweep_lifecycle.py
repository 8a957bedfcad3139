"""``manage.py sweep_lifecycle``: run the reaper once, now (what every worker does every few seconds)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from lifecycle.reaper import reap


class Command(BaseCommand):
    help = (
        "Fail lifecycle rows whose worker is gone (lease lapsed) or that are older than DECNET_LIFECYCLE_STALE_AFTER, "
        "and re-queue jobs whose task was lost. Workers do this on their own; this runs it once, now."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = reap()
        for reason, ids in report.as_dict().items():
            for lifecycle_id in ids:
                self.stdout.write(f"{reason}: {lifecycle_id}")
        self.stdout.write(
            self.style.SUCCESS(
                f"failed {len(report.lapsed)} row(s) with a lapsed lease and {len(report.stale)} too old; "
                f"re-queued {len(report.requeued)}"
            )
        )
