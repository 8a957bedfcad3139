"""Topology arguments of the fleet commands (``--topology ID|NAME``): lookup, deploy and teardown."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError

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


def deploy_topology(command: BaseCommand, ref: str, *, sync: bool) -> None:
    """Deploy a whole topology (its LANs, deckies and edges) and print the outcome."""
    raise CommandError("deploying topologies from the command line is not available yet")


def teardown_topology(command: BaseCommand, ref: str, *, sync: bool, dry_run: bool) -> Any:
    """Tear a whole topology down and print the outcome."""
    raise CommandError("tearing topologies down from the command line is not available yet")
