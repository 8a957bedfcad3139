"""``manage.py mutate``: rotate the services of fleet deckies now, or keep rotating the due ones (``--watch``)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deckies.choices import DEPLOYED_STATES
from deckies.management.names import split_names
from deckies.operations import auto_mutate_due, mutate_request
from deckies.selectors import DeckyNotFoundError, fleet_deckies_named
from lifecycle.management.cli import actor, domain_errors, lifecycle_progress, lifecycle_table, report_rows


class Command(BaseCommand):
    help = (
        "Rotate decky services. --names a,b or --all (every deployed fleet decky) mutate now; with neither, the "
        "deckies whose mutate_interval elapsed are mutated once; --watch repeats that every --interval seconds "
        "until Ctrl-C. Queued by default; --sync runs here with progress (not with --watch)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--names", help="comma-separated fleet decky names")
        parser.add_argument("--all", action="store_true", help="every deployed fleet decky")
        parser.add_argument("--watch", action="store_true", help="loop: mutate due deckies until Ctrl-C")
        parser.add_argument("--interval", type=float, default=10.0, help="seconds between --watch passes (10)")
        parser.add_argument("--iterations", type=int, default=0, help="stop --watch after N passes (0: never)")
        parser.add_argument("--sync", action="store_true", help="run in the foreground with progress")

    def handle(self, *args: Any, **options: Any) -> None:
        names = split_names(options["names"])
        if names is not None and options["all"]:
            raise CommandError("give either --names or --all, not both")
        if options["watch"]:
            if names is not None or options["all"] or options["sync"]:
                raise CommandError("--watch mutates due deckies only; it takes no --names, --all or --sync")
            if options["interval"] <= 0:
                raise CommandError("--interval must be a positive number of seconds")
            self._watch(options["interval"], options["iterations"])
            return
        sync = bool(options["sync"])
        if names is None and not options["all"]:
            with domain_errors():
                rows = auto_mutate_due()
            if not rows:
                self.stdout.write("No decky is due for mutation.")
                return
            report_rows(rows, self.stdout, self.style, inline=False, verb="mutate")
            return
        with domain_errors():
            if names is not None:
                deckies = fleet_deckies_named(names)
            else:
                try:
                    deckies = [d for d in fleet_deckies_named(None) if d.state in DEPLOYED_STATES]
                except DeckyNotFoundError:
                    deckies = []
            if not deckies:
                self.stdout.write("No deployed fleet decky to mutate.")
                return
            rows = []
            with lifecycle_progress(self.stdout, self.style) if sync else contextlib.nullcontext():
                for decky in deckies:
                    rows.append(mutate_request(decky=decky, run_inline=sync, actor=actor()))
        report_rows(rows, self.stdout, self.style, inline=sync, verb="mutate")

    def _watch(self, interval: float, iterations: int) -> None:
        self.stdout.write(f"Watching for due mutations every {interval:g}s; Ctrl-C stops.")
        passes = 0
        try:
            while True:
                with domain_errors():
                    rows = auto_mutate_due()
                stamp = time.strftime("%H:%M:%S")
                if rows:
                    self.stdout.write(f"[{stamp}] {len(rows)} mutation(s) requested")
                    self.stdout.write(lifecycle_table(rows, self.style))
                else:
                    self.stdout.write(f"[{stamp}] nothing due")
                self.stdout.flush()
                passes += 1
                if iterations and passes >= iterations:
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("")
        self.stdout.write(f"Stopped after {passes} pass(es).")
