"""``manage.py status``: the fleet deckies with state and last operation (the topology app adds its topologies)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from deckies.models import Decky
from deckies.selectors import decky_list
from decnet_site.tables import render_table, to_json
from lifecycle.models import DeckyLifecycle
from lifecycle.selectors import lifecycle_poll


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
        rows = {row.pk: row for row in lifecycle_poll(ids=[i for i in latest_ids.values() if i])}
        latest = {pk: rows.get(lifecycle_id) if lifecycle_id else None for pk, lifecycle_id in latest_ids.items()}
        sections = self.extra_sections()
        if options["json"]:
            document: dict[str, Any] = {"fleet": [_decky(d, latest[d.pk]) for d in deckies]}
            document.update({key: value for key, _title, _table, value in sections})
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
        for _key, title, table, _value in sections:
            self.stdout.write("")
            self.stdout.write(self.style.MIGRATE_HEADING(title))
            self.stdout.write(table)

    def extra_sections(self) -> list[tuple[str, str, str, Any]]:
        """Hook for other apps: ``(json key, heading, table text, json value)`` per extra section."""
        return []

    def _state(self, state: str) -> str:
        if state == "running":
            return self.style.SUCCESS(state)
        if state in {"failed", "teardown_failed", "degraded"}:
            return self.style.ERROR(state)
        return state
