"""Topology arguments of the fleet commands (``--topology ID|NAME``): lookup, render, deploy and teardown.

A topology is deployed and torn down as a whole by the topology operations (``topology.operations``:
``topology_deploy_request`` / ``topology_teardown_request``, each taking ``topology``, ``run_inline`` and
``actor``), and rendered by :func:`deckies.engine.runtime.render_topology`.
"""

from __future__ import annotations

import contextlib
import uuid

from django.core.management.base import BaseCommand, CommandError

from deckies.engine import runtime
from deckies.management.cli import actor, domain_errors, lifecycle_progress, lifecycle_table
from lifecycle.models import DeckyLifecycle
from topology import operations as topology_operations
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


def render_topology(topology: Topology) -> str:
    """The compose YAML of ``topology``, rendered by the engine without touching Docker."""
    return runtime.render_topology(topology)


def _run(command: BaseCommand, ref: str, name: str, verb: str, *, sync: bool) -> None:
    topology = resolve_topology(ref)
    request = (
        topology_operations.topology_deploy_request
        if name == "deploy"
        else topology_operations.topology_teardown_request
    )
    with domain_errors(), lifecycle_progress(command.stdout, command.style) if sync else contextlib.nullcontext():
        result = request(topology=topology, run_inline=sync, actor=actor())
    rows = [r for r in (result if isinstance(result, list | tuple) else [result]) if isinstance(r, DeckyLifecycle)]
    if rows:
        command.stdout.write(lifecycle_table(rows, command.style))
    topology.refresh_from_db()
    where = f"topology {topology.name} ({topology.short_id})"
    if sync:
        command.stdout.write(f"{verb} of {where} finished; status: {topology.status}")
    else:
        command.stdout.write(f"{verb} of {where} queued; status: {topology.status} (follow it with `status`)")


def deploy_topology(command: BaseCommand, ref: str, *, sync: bool) -> None:
    """Deploy a whole topology (its LANs, deckies and edges) and print the outcome."""
    _run(command, ref, "deploy", "deploy", sync=sync)


def teardown_topology(command: BaseCommand, ref: str, *, sync: bool, dry_run: bool) -> None:
    """Tear a whole topology down (``dry_run``: only say what would go) and print the outcome."""
    if dry_run:
        topology = resolve_topology(ref)
        names = sorted(topology.deckies.values_list("name", flat=True))
        command.stdout.write(
            f"Dry run: topology {topology.name} ({topology.short_id}, {topology.status}) would be torn down: "
            f"{len(names)} decky(s) ({', '.join(names) or 'none'}) and {topology.lans.count()} LAN(s)."
        )
        return
    _run(command, ref, "teardown", "teardown", sync=sync)
