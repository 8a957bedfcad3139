"""``manage.py archetypes``: the machine roles a decky can impersonate."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from deckies.catalogue.archetypes import all_archetypes
from decnet_site.tables import render_table, to_json


class Command(BaseCommand):
    help = "List the archetypes: their default services, preferred distros and OS fingerprint family."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = [
            {
                "slug": a.slug,
                "name": a.display_name,
                "services": list(a.services),
                "distros": list(a.preferred_distros),
                "nmap_os": a.nmap_os,
                "description": a.description,
            }
            for a in all_archetypes()
        ]
        if options["json"]:
            self.stdout.write(to_json(rows))
            return
        self.stdout.write(
            render_table(
                ["SLUG", "NAME", "SERVICES", "DISTROS", "NMAP_OS"],
                [[r["slug"], r["name"], r["services"], r["distros"], r["nmap_os"]] for r in rows],
            )
        )
