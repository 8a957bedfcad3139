"""``manage.py deploy``: deploy fleet deckies (all, or ``--names``); the topology app extends it with ``--topology``."""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from deckies.management.names import split_names
from deckies.operations import deploy_request
from deckies.selectors import fleet_deckies_named
from lifecycle.management.cli import actor, domain_errors, lifecycle_progress, report_rows


class Command(BaseCommand):
    help = (
        "Deploy fleet deckies (every fleet decky, or --names a,b) or a topology (--topology ID|NAME). Queues the "
        "work and prints lifecycle ids to follow with `wait`; --sync runs it here and shows progress. Deploying "
        "a decky that is already up changes nothing; no other decky restarts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--names", help="comma-separated fleet decky names (default: the whole fleet)")
        parser.add_argument("--sync", action="store_true", help="run in the foreground with progress")
        self.add_scope_arguments(parser)

    def add_scope_arguments(self, parser: CommandParser) -> None:
        """Hook for apps that deploy other scopes (the topology app adds ``--topology``)."""

    def handle_scope(self, names: list[str] | None, options: dict[str, Any]) -> bool:
        """Hook: deploy another scope instead and return True, or return False for the fleet."""
        return False

    def handle(self, *args: Any, **options: Any) -> None:
        names = split_names(options["names"])
        sync = bool(options["sync"])
        if self.handle_scope(names, options):
            return
        with domain_errors():
            deckies = fleet_deckies_named(names)
            with lifecycle_progress(self.stdout, self.style) if sync else contextlib.nullcontext():
                rows = deploy_request(deckies=deckies, run_inline=sync, actor=actor())
        report_rows(rows, self.stdout, self.style, inline=sync, verb="deploy")
