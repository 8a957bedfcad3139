"""``manage.py render_compose``: print the compose file the engine would use; no Docker is involved. The topology
app extends it with ``--topology``."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deckies.models import Decky, Host
from deckies.scopes import render_fleet
from lifecycle.management.cli import domain_errors


class Command(BaseCommand):
    help = (
        "Render the compose YAML of the fleet of a host (every fleet decky placed there, deployed or not) or of a "
        "topology (--topology ID|NAME). A dry run: nothing is written unless --output, and Docker is not used."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", metavar="NAME", help="the fleet of this Docker host (default: local engine)")
        parser.add_argument("--output", metavar="FILE", help="write here (mode 0600) instead of stdout")
        self.add_scope_arguments(parser)

    def add_scope_arguments(self, parser: CommandParser) -> None:
        """Hook for apps that render other scopes (the topology app adds ``--topology``)."""

    def render_scope(self, options: dict[str, Any]) -> str | None:
        """Hook: the YAML of another scope, or None to render the fleet."""
        return None

    def handle(self, *args: Any, **options: Any) -> None:
        with domain_errors():
            yaml_text = self.render_scope(options)
            if yaml_text is None:
                yaml_text = self._fleet(options["host"])
        if options["output"]:
            fd = os.open(options["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(yaml_text)
            self.stdout.write(f"Wrote {options['output']} ({len(yaml_text)} bytes).")
            return
        self.stdout.write(yaml_text, ending="" if yaml_text.endswith("\n") else "\n")

    def _fleet(self, host_name: str | None) -> str:
        host = None
        if host_name:
            host = Host.objects.filter(name=host_name).first()
            if host is None:
                raise CommandError(f"no Docker host named {host_name!r}")
        deckies = Decky.objects.filter(topology__isnull=True)
        deckies = deckies.filter(host=host) if host is not None else deckies.filter(host__isnull=True)
        included = list(deckies.select_related("network", "host").prefetch_related("services"))
        if not included:
            where = f"host {host.name}" if host is not None else "the local engine"
            raise CommandError(f"no fleet decky is placed on {where}; nothing to render")
        return render_fleet(host, include=included).yaml
