"""``manage.py render_compose``: the fleet command, plus ``--topology ID|NAME``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from deckies.management.commands import render_compose
from topology.management.topology_ops import resolve_topology
from topology.plans import render_topology


class Command(render_compose.Command):
    def add_scope_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--topology", metavar="ID|NAME", help="render this topology instead of the fleet")

    def render_scope(self, options: dict[str, Any]) -> str | None:
        if not options.get("topology"):
            return None
        if options.get("host"):
            raise CommandError("--host applies to the fleet; a topology runs where its deckies are placed")
        return render_topology(resolve_topology(options["topology"])).yaml
