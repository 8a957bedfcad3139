"""What the topology commands share: finding a topology by id, short id or name, and running its operations."""

from __future__ import annotations

import contextlib
import uuid

from django.core.management.base import BaseCommand, CommandError

from lifecycle.management.cli import actor, domain_errors, lifecycle_progress, report_rows
from topology import operations
from topology.models import Topology


def resolve_topology(ref: str) -> Topology:
    """The topology whose id (full UUID or its first 8 hex digits) or name is ``ref``; CommandError otherwise."""
    ref = ref.strip()
    try:
        found = Topology.objects.filter(pk=uuid.UUID(ref)).first()
    except ValueError:
        found = None
    if found is None:
        found = Topology.objects.filter(name=ref).first()
    if found is None and len(ref) == 8 and all(ch in "0123456789abcdef" for ch in ref.lower()):
        matches = [t for t in Topology.objects.all().only("id", "name") if t.id.hex.startswith(ref.lower())]
        if len(matches) > 1:
            raise CommandError(f"{ref!r} matches several topologies: {', '.join(t.name for t in matches)}")
        found = matches[0] if matches else None
    if found is None:
        raise CommandError(f"no topology with id or name {ref!r}")
    return found


def run_topology(command: BaseCommand, ref: str, verb: str, *, sync: bool) -> None:
    """Deploy (``verb`` "deploy") or tear down a whole topology and print its rows and status."""
    topology = resolve_topology(ref)
    request = operations.topology_deploy_request if verb == "deploy" else operations.topology_teardown_request
    with domain_errors(), lifecycle_progress(command.stdout, command.style) if sync else contextlib.nullcontext():
        _, rows = request(topology=topology, run_inline=sync, actor=actor())
    topology.refresh_from_db()
    where = f"topology {topology.name} ({topology.short_id})"
    try:
        report_rows(rows, command.stdout, command.style, inline=sync, verb=verb)
    finally:
        command.stdout.write(f"{verb} of {where}: status {topology.status}")


def dry_run_teardown(command: BaseCommand, ref: str) -> None:
    topology = resolve_topology(ref)
    names = sorted(topology.deckies.values_list("name", flat=True))
    command.stdout.write(
        f"Dry run: topology {topology.name} ({topology.short_id}, {topology.status}) would be torn down: "
        f"{len(names)} decky(s) ({', '.join(names) or 'none'}) and {topology.lans.count()} LAN(s)."
    )
