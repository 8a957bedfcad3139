"""``manage.py teardown``: remove the containers of fleet deckies (``--names`` / ``--all``); the topology app
extends it with ``--topology``."""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deckies.choices import DeckyState
from deckies.management.names import split_names
from deckies.operations import teardown_request
from deckies.selectors import fleet_deckies_named
from decnet_site.tables import render_table
from lifecycle.management.cli import actor, domain_errors, lifecycle_progress, report_rows

#: States in which a fleet decky has no container: ``--all`` leaves them alone.
NOTHING_TO_REMOVE = frozenset({DeckyState.PENDING, DeckyState.TORN_DOWN})


class Command(BaseCommand):
    scope_flag_names: tuple[str, ...] = ()
    help = (
        "Tear down fleet deckies (--names a,b, or --all deployed ones) or a topology (--topology ID|NAME): every "
        "container goes, the base (IP holder) included; the records stay so they can be deployed again. Queued by "
        "default; --sync runs here with progress; --dry-run only lists what would go."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--names", help="comma-separated fleet decky names")
        parser.add_argument("--all", action="store_true", help="every fleet decky that may have containers")
        parser.add_argument("--sync", action="store_true", help="run in the foreground with progress")
        parser.add_argument("--dry-run", action="store_true", help="list what would be torn down; change nothing")
        self.add_scope_arguments(parser)

    def add_scope_arguments(self, parser: CommandParser) -> None:
        """Hook for apps that tear down other scopes (the topology app adds ``--topology``)."""

    def scope_flags(self, options: dict[str, Any]) -> list[str]:
        """Hook: the other-scope flags given (counted against --names/--all)."""
        return []

    def handle_scope(self, options: dict[str, Any]) -> bool:
        """Hook: tear another scope down instead and return True, or return False for the fleet."""
        return False

    def handle(self, *args: Any, **options: Any) -> None:
        names = split_names(options["names"])
        chosen = [flag for flag, given in (("--names", names is not None), ("--all", options["all"])) if given]
        chosen += self.scope_flags(options)
        if len(chosen) != 1:
            raise CommandError(f"give exactly one of {', '.join(['--names', '--all', *self.scope_flag_names])}")
        sync = bool(options["sync"])
        if self.handle_scope(options):
            return
        with domain_errors():
            deckies = fleet_deckies_named(names) if names is not None else _deployed()
        if not deckies:
            self.stdout.write("No fleet decky has containers; nothing to tear down.")
            return
        if options["dry_run"]:
            self.stdout.write(render_table(["DECKY", "STATE", "IP"], [[d.name, d.state, d.ip] for d in deckies]))
            self.stdout.write(f"Dry run: {len(deckies)} decky(s) would be torn down.")
            return
        rows = []
        with domain_errors(), lifecycle_progress(self.stdout, self.style) if sync else contextlib.nullcontext():
            for decky in deckies:
                rows.append(teardown_request(decky=decky, run_inline=sync, actor=actor()))
        report_rows(rows, self.stdout, self.style, inline=sync, verb="teardown")


def _deployed() -> list[Any]:
    from deckies.selectors import DeckyNotFoundError

    try:
        return [d for d in fleet_deckies_named(None) if d.state not in NOTHING_TO_REMOVE]
    except DeckyNotFoundError:
        return []
