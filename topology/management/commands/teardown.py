"""``manage.py teardown``: the fleet command, plus ``--topology ID|NAME`` to tear a whole topology down."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from deckies.management.commands import teardown
from topology.management.topology_ops import dry_run_teardown, run_topology


class Command(teardown.Command):
    scope_flag_names = ("--topology",)

    def add_scope_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--topology", metavar="ID|NAME", help="tear this topology down")

    def scope_flags(self, options: dict[str, Any]) -> list[str]:
        return ["--topology"] if options.get("topology") else []

    def handle_scope(self, options: dict[str, Any]) -> bool:
        if not options.get("topology"):
            return False
        if options["dry_run"]:
            dry_run_teardown(self, options["topology"])
        else:
            run_topology(self, options["topology"], "teardown", sync=bool(options["sync"]))
        return True
