"""``manage.py render_compose``: print the compose file the engine would use; no Docker is involved."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deckies.engine import runtime
from deckies.management.cli import domain_errors
from deckies.management.topology_ops import render_topology, resolve_topology
from deckies.models import Decky, Host


class Command(BaseCommand):
    help = (
        "Render the compose YAML of the fleet of a host (every fleet decky placed there, deployed or not) or of a "
        "topology (--topology ID|NAME). A dry run: nothing is written unless --output, and Docker is not used."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--topology", metavar="ID|NAME", help="render this topology instead of the fleet")
        parser.add_argument("--host", metavar="NAME", help="the fleet of this Docker host (default: local engine)")
        parser.add_argument("--output", metavar="FILE", help="write here (mode 0600) instead of stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["topology"] and options["host"]:
            raise CommandError("--host applies to the fleet; a topology runs where its deckies are placed")
        with domain_errors():
            if options["topology"]:
                topology = resolve_topology(options["topology"])
                yaml_text = render_topology(topology)
            else:
                host = None
                if options["host"]:
                    host = Host.objects.filter(name=options["host"]).first()
                    if host is None:
                        raise CommandError(f"no Docker host named {options['host']!r}")
                deckies = Decky.objects.filter(topology__isnull=True)
                deckies = deckies.filter(host=host) if host is not None else deckies.filter(host__isnull=True)
                included = list(deckies.select_related("network", "host").prefetch_related("services"))
                if not included:
                    where = f"host {host.name}" if host is not None else "the local engine"
                    raise CommandError(f"no fleet decky is placed on {where}; nothing to render")
                yaml_text = runtime.render_fleet(host, include=included)
        if options["output"]:
            fd = os.open(options["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(yaml_text)
            self.stdout.write(f"Wrote {options['output']} ({len(yaml_text)} bytes).")
            return
        self.stdout.write(yaml_text, ending="" if yaml_text.endswith("\n") else "\n")
