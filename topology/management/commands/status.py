"""``manage.py status``: the fleet command, plus a section listing every topology."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from deckies.management.commands import status
from decnet_site.tables import render_table
from topology.models import Topology


def _topology(topology: Any) -> dict[str, Any]:
    return {
        "id": str(topology.pk),
        "name": topology.name,
        "status": topology.status,
        "version": topology.version,
        "lans": topology.lan_count,
        "deckies": topology.decky_count,
        "status_changed_at": topology.status_changed_at.isoformat(),
    }


class Command(status.Command):
    def extra_sections(self) -> list[tuple[str, str, str, Any]]:
        topologies = list(
            Topology.objects.annotate(
                lan_count=Count("lans", distinct=True), decky_count=Count("deckies", distinct=True)
            ).order_by("name")
        )
        table = render_table(
            ["NAME", "ID", "STATUS", "LANS", "DECKIES", "VERSION"],
            [[t.name, t.short_id, t.status, t.lan_count, t.decky_count, t.version] for t in topologies],
            empty="(no topology)",
        )
        return [("topologies", f"Topologies ({len(topologies)})", table, [_topology(t) for t in topologies])]
