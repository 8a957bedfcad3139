"""``manage.py status``: the fleet deckies and the topologies, with state and last operation."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count

from deckies.management.tables import render_table, to_json
from deckies.models import Decky
from deckies.selectors import decky_list
from lifecycle.models import DeckyLifecycle
from lifecycle.services import lifecycle_get_by_ids
from topology.models import Topology


def _lifecycle(row: DeckyLifecycle | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "id": str(row.pk),
        "operation": row.operation,
        "status": row.status,
        "error": row.error,
        "started_at": row.started_at.isoformat(),
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
    }


def _decky(decky: Decky, latest: DeckyLifecycle | None) -> dict[str, Any]:
    return {
        "name": decky.name,
        "state": decky.state,
        "ip": decky.ip,
        "network": decky.network.name if decky.network else None,
        "host": decky.host.name if decky.host else None,
        "archetype": decky.archetype or None,
        "distro": decky.distro,
        "nmap_os": decky.nmap_os,
        "services": decky.service_slugs,
        "last_error": decky.last_error or None,
        "last_operation": _lifecycle(latest),
    }


def _topology(topology: Topology) -> dict[str, Any]:
    return {
        "id": str(topology.pk),
        "name": topology.name,
        "status": topology.status,
        "version": topology.version,
        "lans": getattr(topology, "lan_count", None),
        "deckies": getattr(topology, "decky_count", None),
        "status_changed_at": topology.status_changed_at.isoformat(),
    }


def _last(row: DeckyLifecycle | None) -> str | None:
    if row is None:
        return None
    return f"{row.operation} {row.status} {row.started_at:%Y-%m-%d %H:%M:%S}"


class Command(BaseCommand):
    help = (
        "Show every fleet decky (state, IP, network, services, last lifecycle row) and every topology (status, "
        "LANs, deckies). --json prints the same as one JSON document. States are the database's view; "
        "`reconcile` compares them with the containers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        deckies = list(decky_list())
        latest_ids = {d.pk: getattr(d, "latest_lifecycle_id", None) for d in deckies}
        rows = {row.pk: row for row in lifecycle_get_by_ids([i for i in latest_ids.values() if i])}
        latest = {pk: rows.get(lifecycle_id) if lifecycle_id else None for pk, lifecycle_id in latest_ids.items()}
        topologies = list(
            Topology.objects.annotate(
                lan_count=Count("lans", distinct=True), decky_count=Count("deckies", distinct=True)
            ).order_by("name")
        )
        if options["json"]:
            document = {
                "fleet": [_decky(d, latest[d.pk]) for d in deckies],
                "topologies": [_topology(t) for t in topologies],
            }
            self.stdout.write(to_json(document))
            return
        self.stdout.write(self.style.MIGRATE_HEADING(f"Fleet deckies ({len(deckies)})"))
        self.stdout.write(
            render_table(
                ["NAME", "STATE", "IP", "NETWORK", "SERVICES", "ARCHETYPE", "LAST OPERATION"],
                [
                    [
                        d.name,
                        self._state(d.state),
                        d.ip,
                        d.network.name if d.network else None,
                        d.service_slugs,
                        d.archetype,
                        _last(latest[d.pk]),
                    ]
                    for d in deckies
                ],
                empty="(no fleet decky; import some with `manage.py import_fleet fleet.ini`)",
            )
        )
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(f"Topologies ({len(topologies)})"))
        self.stdout.write(
            render_table(
                ["NAME", "ID", "STATUS", "LANS", "DECKIES", "VERSION"],
                [
                    [
                        t.name,
                        t.short_id,
                        t.status,
                        getattr(t, "lan_count", None),
                        getattr(t, "decky_count", None),
                        t.version,
                    ]
                    for t in topologies
                ],
                empty="(no topology)",
            )
        )

    def _state(self, state: str) -> str:
        if state == "running":
            return self.style.SUCCESS(state)
        if state in {"failed", "teardown_failed", "degraded"}:
            return self.style.ERROR(state)
        return state
