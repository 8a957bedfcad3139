"""``manage.py import_fleet``: create (or, with ``--replace``, redefine) the fleet from a DECNET INI file."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deckies.fleet_import import ImportPlan, fleet_import
from deckies.ini import MAX_INI_BYTES, decode_ini
from decnet_site.tables import cell, render_table, to_json
from lifecycle.management.cli import actor, domain_errors


class Command(BaseCommand):
    help = (
        "Import deckies from a DECNET INI file ('-' reads stdin). Additive by default: names or addresses already "
        "in the fleet are refused with the line at fault. --replace makes the fleet exactly the file (deckies not "
        "in it are deleted, and the import is refused if any of them may still have containers). --dry-run "
        "prints the plan and writes nothing. Nothing is deployed: run `deploy` afterwards."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE.ini")
        parser.add_argument("--replace", action="store_true", help="make the fleet exactly this file")
        parser.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
        parser.add_argument("--json", action="store_true", help="print the plan as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["file"]
        data = self._read(path)
        with domain_errors():
            text = decode_ini(data, path)
            plan = fleet_import(
                text=text, replace=options["replace"], dry_run=options["dry_run"], source=path, actor=actor()
            )
        if options["json"]:
            self.stdout.write(to_json(plan.as_dict()))
            return
        self._print(plan)

    def _read(self, path: str) -> bytes:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_INI_BYTES + 1)
        else:
            try:
                size = os.stat(path).st_size
                if size > MAX_INI_BYTES:
                    raise CommandError(f"{path}: {size} bytes; the limit is {MAX_INI_BYTES} bytes (512 KiB)")
                with open(path, "rb") as handle:
                    data = handle.read(MAX_INI_BYTES + 1)
            except OSError as exc:
                raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return data

    def _print(self, plan: ImportPlan) -> None:
        net = plan.network
        iface = f" on {net.parent_interface}" if net.parent_interface else ""
        self.stdout.write(f"Network {net.name}: {net.subnet} gateway {net.gateway}, {net.driver}{iface} ({net.action})")
        self.stdout.write(
            render_table(
                ["NAME", "ACTION", "IP", "ARCHETYPE", "DISTRO", "NMAP_OS", "SERVICES", "PERSONAS", "MUTATE"],
                [
                    [
                        d.name,
                        d.action,
                        d.ip,
                        d.archetype,
                        d.distro,
                        d.nmap_os,
                        d.services,
                        sorted(d.service_config),
                        d.mutate_interval,
                    ]
                    for d in plan.deckies
                ],
            )
        )
        if plan.custom_services:
            self.stdout.write("Bring-your-own services:")
            self.stdout.write(
                render_table(
                    ["SLUG", "ACTION", "IMAGE", "COMMAND", "PORTS"],
                    [[c.slug, c.action, c.image, " ".join(c.command), c.ports] for c in plan.custom_services],
                )
            )
        if plan.delete:
            self.stdout.write(f"Deleted (not in the file): {cell(plan.delete)}")
        for warning in plan.warnings:
            self.stdout.write(self.style.WARNING(f"Warning: {warning}"))
        counts = f"{len(plan.created)} to create, {len(plan.updated)} to redefine, {len(plan.delete)} to delete"
        if not plan.applied:
            self.stdout.write(self.style.NOTICE(f"Dry run ({plan.mode}): {counts}; nothing was written."))
            return
        done = f"{len(plan.created)} created, {len(plan.updated)} redefined, {len(plan.delete)} deleted"
        self.stdout.write(self.style.SUCCESS(f"Imported ({plan.mode}): {done}."))
        names = ",".join(d.name for d in plan.deckies)
        self.stdout.write(f"Deploy them with: manage.py deploy --names {names}")
