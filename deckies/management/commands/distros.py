"""``manage.py distros``: the distro profiles a decky's base container can present."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from deckies.catalogue.distros import all_distros
from decnet_site.tables import render_table, to_json


class Command(BaseCommand):
    help = "List the distro profiles: the distro a decky claims, its hostname style and the image it runs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = [
            {
                "slug": d.slug,
                "name": d.display_name,
                "upstream_image": d.upstream_image,
                "hostname_style": str(d.hostname_style),
                "image": d.image,
            }
            for d in all_distros()
        ]
        if options["json"]:
            self.stdout.write(to_json(rows))
            return
        self.stdout.write(
            render_table(
                ["SLUG", "NAME", "LOOKS LIKE", "HOSTNAMES", "RUNS IMAGE"],
                [[r["slug"], r["name"], r["upstream_image"], r["hostname_style"], r["image"]] for r in rows],
            )
        )
