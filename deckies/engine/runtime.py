"""The engine facade: what the operations layer asks of Docker, in terms of deckies and topologies.

Everything here is synchronous, bounded by timeouts, and raises only :mod:`deckies.engine.errors` types.
It reads the models it is given (desired state) and never writes to the database: recording outcomes is the
caller's job (``deckies.operations``). Callers pass model instances with services prefetched.

Scopes and names (chosen so nothing can collide across scopes):
- the fleet of a host is one compose project, ``decnet-fleet`` (file ``<data dir>/compose/fleet-<host>.yml``);
- a topology is one compose project, ``decnet-t-<id8>`` (file ``<data dir>/compose/topology-<id8>.yml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deckies.models import Decky, Host
    from topology.models import Topology


@dataclass(frozen=True)
class ContainerState:
    """One container as observed by label: which decky/service it is and its Docker status."""

    name: str
    decky: str
    service: str | None  # None for the base container
    status: str  # running, exited, created, ...
    topology_id: str | None = None


@dataclass
class TopologyDeployReport:
    """Outcome of a topology deploy: per-decky running flag and containers found not running."""

    decky_running: dict[str, bool] = field(default_factory=dict)
    not_running: list[str] = field(default_factory=list)


def render_fleet(host: Host | None = None) -> str:
    """Deterministic compose YAML for every fleet decky placed on ``host`` (None: the local engine)."""
    raise NotImplementedError


def render_topology(topology: Topology) -> str:
    """Deterministic compose YAML for a topology: one bridge network per LAN (internal unless DMZ)."""
    raise NotImplementedError


def write_fleet_compose(host: Host | None = None) -> str:
    """Render and write the fleet compose file of ``host``; returns its path. Touches no container."""
    raise NotImplementedError


def deploy_deckies(deckies: Sequence[Decky]) -> None:
    """Bring the given fleet deckies (base + services) up, re-rendering the file; other deckies are untouched.

    Containers of a decky's services no longer in its desired list are removed (this is how mutate applies).
    """
    raise NotImplementedError


def teardown_decky(decky: Decky) -> None:
    """Stop and remove every container of a fleet decky (base included) and drop it from the compose file.

    The decky must already be excluded from the desired fleet by the caller (e.g. its state set), or pass it
    and the engine removes its containers while rendering the file without it.
    """
    raise NotImplementedError


def add_service(decky: Decky, slug: str) -> None:
    """Start one service container of a running decky (``up -d --no-deps <svc>``); nothing else restarts."""
    raise NotImplementedError


def remove_service(decky: Decky, slug: str) -> None:
    """Stop and remove one service container of a decky; nothing else restarts."""
    raise NotImplementedError


def deploy_topology(topology: Topology) -> TopologyDeployReport:
    """Create the topology's networks and containers, then report which are running (rolls back on error)."""
    raise NotImplementedError


def teardown_topology(topology: Topology) -> None:
    """Remove the topology's containers, networks (leaf-first) and compose file; no volume is left behind."""
    raise NotImplementedError


def decky_containers(decky: Decky) -> list[ContainerState]:
    """The containers that exist for a decky, found by label."""
    raise NotImplementedError


def fleet_containers(host: Host | None = None) -> list[ContainerState]:
    """Every fleet container on a host, by label; raises EngineUnavailableError when the engine is down."""
    raise NotImplementedError


def drop_file(decky: Decky, path: str, content: bytes, mode: int = 0o644, mtime: datetime | None = None) -> str:
    """Write ``content`` at absolute ``path`` in the decky's file target container; returns the container name.

    The target is the decky's ``ssh`` service container when it has one, else its base container.
    Raises InvalidPathError (relative path or ``..``) or ContainerRefusedError.
    """
    raise NotImplementedError


def delete_file(decky: Decky, path: str) -> str:
    """``rm -f`` of an absolute path in the decky's file target container; returns the container name."""
    raise NotImplementedError


def engine_ping(host: Host | None = None) -> str:
    """The engine's server version; raises EngineUnavailableError."""
    raise NotImplementedError
