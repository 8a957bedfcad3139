"""``manage.py reconcile``: compare deckies in the database with the engines' containers; ``--heal`` repairs."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deckies.models import Host
from deckies.reconcile import DeckyReport, ReconcileReport, reconcile, reconcile_all
from decnet_site.tables import render_table, to_json
from lifecycle.management.cli import domain_errors

EXIT_ENGINE_UNREACHABLE = 3


class Command(BaseCommand):
    help = (
        "Report, per decky, containers missing, drifted (not running) or extra, and containers of unknown deckies, "
        "and record what is seen (a drifted decky becomes degraded). --heal queues one repair per drifted decky "
        "(--sync: run them here; --remove-orphans: also remove the unknown ones). The fleet of the local engine by "
        "default; --host NAME for another host's fleet; --all for every fleet and topology. An unreachable engine "
        "changes nothing and exits with code 3."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--heal", action="store_true", help="redeploy what is missing, remove what is extra")
        parser.add_argument("--sync", action="store_true", help="with --heal: run the deploys here")
        parser.add_argument(
            "--remove-orphans",
            action="store_true",
            help="with --heal: also remove fleet containers of deckies this database does not know",
        )
        parser.add_argument("--host", metavar="NAME", help="the fleet of this Docker host (default: local engine)")
        parser.add_argument("--all", action="store_true", help="every host's fleet and every deployed topology")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        if (options["sync"] or options["remove_orphans"]) and not options["heal"]:
            raise CommandError("--sync and --remove-orphans only apply with --heal")
        if options["all"] and (options["host"] or options["remove_orphans"]):
            raise CommandError("--all covers every host; it takes no --host or --remove-orphans")
        host = None
        if options["host"]:
            host = Host.objects.filter(name=options["host"]).first()
            if host is None:
                raise CommandError(f"no Docker host named {options['host']!r}")
        with domain_errors():
            if options["all"]:
                report = reconcile_all(heal=options["heal"], run_inline=options["sync"])
            else:
                report = reconcile(
                    heal=options["heal"],
                    host=host,
                    run_inline=options["sync"],
                    remove_orphans=options["remove_orphans"],
                )
        if options["json"]:
            self.stdout.write(to_json(report.as_dict()))
        else:
            self._print(report)
        if report.engine_error:
            raise CommandError(
                f"engine unreachable, nothing was changed: {report.engine_error}", returncode=EXIT_ENGINE_UNREACHABLE
            )

    def _health(self, entry: DeckyReport) -> str:
        if entry.healthy:
            return self.style.SUCCESS("ok") if entry.wanted else "ok (no containers wanted)"
        parts = []
        if entry.missing:
            parts.append("missing " + ", ".join(entry.missing))
        if entry.drifted:
            parts.append("drifted " + ", ".join(f"{c.service or 'base'} ({c.status})" for c in entry.drifted))
        if entry.extra:
            parts.append("extra " + ", ".join(c.name for c in entry.extra))
        return self.style.ERROR("; ".join(parts))

    def _print(self, report: ReconcileReport) -> None:
        where = f"host {report.host}" if report.host else "the local engine"
        if report.engine_error:
            self.stdout.write(self.style.ERROR(f"Engine of {where} unreachable: {report.engine_error}"))
        self.stdout.write(
            render_table(
                ["DECKY", "SCOPE", "STATE", "CONTAINERS", "BUSY", "ACTIONS"],
                [
                    [e.name, e.scope, e.state, "unknown" if report.engine_error else self._health(e), e.busy, e.actions]
                    for e in report.deckies
                ],
                empty=f"(no fleet decky on {where})",
            )
        )
        if report.orphans:
            self.stdout.write(self.style.WARNING("Containers of deckies not in this database:"))
            self.stdout.write(
                render_table(["CONTAINER", "DECKY", "SERVICE", "STATUS"],
                             [[c.name, c.decky, c.service or "base", c.status] for c in report.orphans])
            )  # fmt: skip
        for error in report.errors:
            self.stdout.write(self.style.ERROR(f"Heal error: {error}"))
        if report.lifecycle_ids:
            self.stdout.write(f"Operations requested: {' '.join(report.lifecycle_ids)}")
        if report.removed:
            self.stdout.write(f"Removed: {', '.join(report.removed)}")
        if report.engine_error:
            return
        if report.healthy:
            self.stdout.write(self.style.SUCCESS(f"Deckies on {where} match the database."))
        elif not report.heal:
            if not all(entry.healthy for entry in report.deckies):
                self.stdout.write(self.style.WARNING("Differences found; `manage.py reconcile --heal` repairs them."))
            if report.orphans:
                self.stdout.write(
                    "Containers of unknown deckies stay unless you are sure no other installation uses this "
                    "engine: `manage.py reconcile --heal --remove-orphans`."
                )
