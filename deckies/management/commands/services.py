"""``manage.py services``: the service catalogue (built-in and bring-your-own)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from deckies.catalogue.services import all_services
from deckies.services import custom_service_specs
from decnet_site.tables import render_table, to_json


class Command(BaseCommand):
    help = "List the services a decky can run: ports, image, config keys; bring-your-own services included."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        specs = [*all_services(), *sorted(custom_service_specs().values(), key=lambda s: s.slug)]
        rows = [
            {
                "slug": spec.slug,
                "name": spec.display_name,
                "kind": "custom" if spec.custom else ("fleet singleton" if spec.fleet_singleton else "built-in"),
                "tcp_ports": list(spec.ports),
                "udp_ports": list(spec.udp_ports),
                "image": spec.image,
                "config_keys": list(spec.config_keys),
            }
            for spec in specs
        ]
        if options["json"]:
            self.stdout.write(to_json(rows))
            return
        self.stdout.write(
            render_table(
                ["SLUG", "NAME", "KIND", "TCP", "UDP", "IMAGE", "CONFIG KEYS"],
                [
                    [r["slug"], r["name"], r["kind"], r["tcp_ports"], r["udp_ports"], r["image"], r["config_keys"]]
                    for r in rows
                ],
            )
        )
        self.stdout.write(f"{len(rows)} service(s); `sniffer` runs once per fleet and is never put on a decky.")
