"""``manage.py deploy``: the fleet command, plus ``--topology ID|NAME`` to deploy a whole topology."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from deckies.management.commands import deploy
from topology.management.topology_ops import run_topology


class Command(deploy.Command):
    def add_scope_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--topology", metavar="ID|NAME", help="deploy this topology instead of fleet deckies")

    def handle_scope(self, names: list[str] | None, options: dict[str, Any]) -> bool:
        if not options.get("topology"):
            return False
        if names is not None:
            raise CommandError("give either --names or --topology, not both")
        run_topology(self, options["topology"], "deploy", sync=bool(options["sync"]))
        return True
