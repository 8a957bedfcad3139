"""The engine facade: what the operations layer asks of Docker, in terms of deckies and topologies.

Everything here is synchronous, bounded by timeouts, and raises only :mod:`deckies.engine.errors` types.
It reads the models it is given (desired state) and never writes to the database: recording outcomes is the
caller's job (``deckies.operations``). Callers pass model instances with services prefetched.

Scopes and names (chosen so nothing can collide across scopes):
- the fleet of a host is one compose project, ``decnet-fleet`` (file ``<data dir>/compose/fleet-<host>.yml``);
- a topology is one compose project, ``decnet-t-<id8>`` (file ``<data dir>/compose/topology-<id8>.yml``).

Which fleet deckies a host's file holds: every fleet decky on that host whose state says its containers should
exist (``running``/``degraded``), plus the deckies an operation is deploying right now (``include``), minus the
one being torn down (``exclude``). Fleet changes are additive: compose is only ever asked about the containers of
the deckies or services being changed (``up -d --no-deps <keys>``, ``stop``/``rm`` of keys), never
``--remove-orphans`` or a bare ``up``, so no other decky is recreated or restarted.

Fleet operations on one host (and operations on one topology) are serialised across processes by a lock file
next to the compose file, so two workers never interleave a re-render with another's compose call.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from deckies.choices import DEPLOYED_STATES
from deckies.engine import compose, docker_api, naming, runner
from deckies.engine.errors import (
    ContainerRefusedError,
    EngineError,
    EngineUnavailableError,
    ImageMissingError,
    RenderError,
)

if TYPE_CHECKING:
    from deckies.catalogue.services import ServiceSpec
    from deckies.models import Decky, Host
    from topology.models import Topology

logger = logging.getLogger(__name__)

SSH_SLUG = "ssh"


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
    """Outcome of a topology deploy: per-decky running flag and containers found not running.

    ``addresses`` is ``{decky: {lan: ipv4}}`` as deployed, including addresses allocated for edges without an
    ``ip`` (the caller may persist them).
    """

    decky_running: dict[str, bool] = field(default_factory=dict)
    not_running: list[str] = field(default_factory=list)
    addresses: dict[str, dict[str, str]] = field(default_factory=dict)


# --- files, locks, engines -------------------------------------------------------------------------------------------


def compose_dir() -> Path:
    """``<data dir>/compose``, created on demand (mode 0700: files hold service config such as passwords)."""
    path = Path(settings.DECNET_DATA_DIR) / "compose"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def fleet_file(host: Host | None = None) -> Path:
    """Where the fleet compose file of ``host`` lives."""
    stem = naming.fleet_file_stem(host.name if host else None, host.uuid if host else None)
    return compose_dir() / f"{stem}.yml"


def topology_file(topology: Topology) -> Path:
    """Where the compose file of ``topology`` lives."""
    return compose_dir() / f"{naming.topology_file_stem(topology.pk)}.yml"


def _write(path: Path, text: str) -> str:
    # Write-then-rename so a crash never leaves a half-written file for the next compose call to choke on.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return str(path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive cross-process lock on ``<file>.lock``; gives up (EngineError) after two compose timeouts, which
    only a wedged holder can exceed since every holder's calls are bounded."""
    lock_path = path.with_name(f".{path.name}.lock")
    deadline = time.monotonic() + 2 * float(settings.DECNET_COMPOSE_TIMEOUT) + 10
    with open(lock_path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise EngineError(f"another operation holds {path.name}; try again later") from exc
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def host_url(host: Host | None) -> str:
    """The Docker engine URL of ``host`` (None: ``DECNET_DEFAULT_DOCKER_URL``)."""
    return host.docker_url if host is not None and host.docker_url else str(settings.DECNET_DEFAULT_DOCKER_URL)


def _decky_host(decky: Decky) -> Host | None:
    return decky.host if decky.host_id is not None else None


def _topology_url(deckies: Sequence[Decky]) -> str:
    # A topology is one compose project, so it runs on one engine: its deckies' host, or the default engine.
    hosts = {decky.host_id for decky in deckies if decky.host_id is not None}
    if len(hosts) > 1:
        raise RenderError("the deckies of one topology are placed on different hosts")
    placed = next((decky for decky in deckies if decky.host_id is not None), None)
    return host_url(placed.host if placed else None)


def _custom_specs() -> dict[str, ServiceSpec]:
    from deckies.services import custom_service_specs

    return custom_service_specs()


def _compose(
    project: str, path: str | Path | None, args: Sequence[str], url: str, *, check: bool = True
) -> runner.ComposeResult:
    return runner.run_compose(project, path, args, docker_url=url, check=check)


def _check_images(url: str, refs: Iterable[str]) -> None:
    """Refuse before compose runs when an image is not on the host (compose would try to pull it)."""
    missing = docker_api.missing_images(url, refs)
    if missing:
        raise ImageMissingError(
            f"image(s) not on the Docker host: {', '.join(missing)}; run `manage.py build_images` there "
            "(bring-your-own images must be pulled or loaded onto the host)",
            images=missing,
        )


def _images_of(rendered: compose.RenderedProject, keys: Iterable[str]) -> set[str]:
    services = rendered.document["services"]
    return {services[key]["image"] for key in keys}


# --- fleet rendering -------------------------------------------------------------------------------------------------


def _fleet_rows(host: Host | None) -> list[Decky]:
    from deckies.models import Decky

    rows = Decky.objects.filter(topology__isnull=True, state__in=list(DEPLOYED_STATES))
    rows = rows.filter(host=host) if host is not None else rows.filter(host__isnull=True)
    return list(rows.select_related("network", "host").prefetch_related("services"))


def desired_fleet(
    host: Host | None = None, *, include: Iterable[Decky] = (), exclude: Iterable[Decky] = ()
) -> list[Decky]:
    """The fleet deckies the host's file should hold: deployed ones, plus ``include``, minus ``exclude`` (by name;
    the ``include`` instances win over the database rows so unsaved changes render)."""
    included = {decky.name: decky for decky in include}
    excluded = {decky.name for decky in exclude}
    rows = [d for d in _fleet_rows(host) if d.name not in included and d.name not in excluded]
    rows += [d for name, d in included.items() if name not in excluded]
    return sorted(rows, key=lambda d: d.name)


def _render_fleet(
    host: Host | None, include: Iterable[Decky] = (), exclude: Iterable[Decky] = ()
) -> compose.RenderedProject:
    return compose.render_fleet(desired_fleet(host, include=include, exclude=exclude), custom=_custom_specs())


def render_fleet(host: Host | None = None, *, include: Iterable[Decky] = (), exclude: Iterable[Decky] = ()) -> str:
    """Deterministic compose YAML for every fleet decky placed on ``host`` (None: the local engine).

    "Placed and deployed": state running/degraded, plus ``include`` (being deployed), minus ``exclude``.
    """
    return _render_fleet(host, include, exclude).yaml


def write_fleet_compose(
    host: Host | None = None, *, include: Iterable[Decky] = (), exclude: Iterable[Decky] = ()
) -> str:
    """Render and write the fleet compose file of ``host``; returns its path. Touches no container."""
    return _write(fleet_file(host), render_fleet(host, include=include, exclude=exclude))


def _fleet_groups(deckies: Iterable[Decky]) -> list[tuple[Host | None, list[Decky]]]:
    groups: dict[Any, tuple[Host | None, list[Decky]]] = {}
    for decky in deckies:
        if decky.topology_id is not None:
            raise RenderError(f"decky {decky.name!r} belongs to a topology; deploy the topology instead")
        groups.setdefault(decky.host_id, (_decky_host(decky), []))[1].append(decky)
    return [groups[key] for key in sorted(groups, key=str)]


def _broken_deckies(url: str, project: str, deckies: Iterable[Decky]) -> set[str]:
    """Names of the deckies that have a container which exists but is not running."""
    names = {decky.name for decky in deckies}
    labels = {naming.LABEL_PROJECT: project, naming.LABEL_SCOPE: naming.SCOPE_FLEET}
    return {
        c.labels.get(naming.LABEL_DECKY, "")
        for c in docker_api.list_containers(url, labels)
        if not c.running and c.labels.get(naming.LABEL_DECKY) in names
    }


def _remove_undesired_services(url: str, rendered: compose.RenderedProject, deckies: Iterable[Decky]) -> list[str]:
    """Remove service containers of ``deckies`` whose slug the rendered file no longer has (found by label)."""
    desired = {decky.name: set(rendered.keys[decky.name][1]) for decky in deckies}
    labels = {naming.LABEL_PROJECT: rendered.project, naming.LABEL_ROLE: naming.ROLE_SERVICE}
    stale = [
        c
        for c in docker_api.list_containers(url, labels)
        if c.labels.get(naming.LABEL_DECKY) in desired
        and c.labels.get(naming.LABEL_SERVICE) not in desired[c.labels[naming.LABEL_DECKY]]
    ]
    return docker_api.remove_containers(url, stale)


# --- fleet operations ------------------------------------------------------------------------------------------------


def deploy_deckies(deckies: Sequence[Decky]) -> None:
    """Bring the given fleet deckies (base + services) up, re-rendering the file; other deckies are untouched.

    Containers of a decky's services no longer in its desired list are removed first (this is how mutate
    applies). A decky with a stopped container is recreated whole. Images are checked first
    (:class:`ImageMissingError` before anything is created).
    """
    for host, group in _fleet_groups(deckies):
        url = host_url(host)
        docker_api.ping(url)
        path = fleet_file(host)
        with _locked(path):
            rendered = _render_fleet(host, include=group)
            keys = [key for decky in sorted(group, key=lambda d: d.name) for key in rendered.decky_keys(decky.name)]
            _check_images(url, _images_of(rendered, keys))
            _write(path, rendered.yaml)
            # Dropped services go first: a replacement may listen on the same port in the shared namespace
            # (smtp -> smtp_relay) and would otherwise start while the old one still holds it.
            _remove_undesired_services(url, rendered, group)
            broken = _broken_deckies(url, rendered.project, group)
            fresh = [key for key in keys if rendered.services_owner(key) not in broken]
            repair = [key for key in keys if rendered.services_owner(key) in broken]
            up = ["up", "-d", "--no-deps", "--pull", "never"]
            if fresh:
                _compose(rendered.project, path, [*up, *fresh], url)
            if repair:
                # A stopped base lost its network namespace; services still attached to the old one would look
                # "up to date" to compose but be unreachable, so the whole decky is recreated.
                _compose(rendered.project, path, [*up, "--force-recreate", *repair], url)


def teardown_decky(decky: Decky) -> None:
    """Stop and remove every container of a fleet decky (base included) and drop it from the compose file.

    The decky must already be excluded from the desired fleet by the caller (e.g. its state set), or pass it
    and the engine removes its containers while rendering the file without it. Fleet networks left with no
    container and no decky in the file are removed; the file is deleted when the fleet of the host is empty.
    """
    teardown_deckies([decky])


def teardown_deckies(deckies: Sequence[Decky]) -> None:
    """:func:`teardown_decky` for several fleet deckies, with one compose call per host."""
    for host, group in _fleet_groups(deckies):
        url = host_url(host)
        docker_api.ping(url)
        path = fleet_file(host)
        project = naming.fleet_project()
        names = {decky.name for decky in group}
        with _locked(path):
            remaining = _render_fleet(host, exclude=group)
            try:
                with_them: compose.RenderedProject | None = _render_fleet(host, include=group)
            except RenderError as exc:  # e.g. a custom service was deleted: fall back to labels alone
                logger.warning("teardown of %s without compose: %s", ", ".join(sorted(names)), exc)
                with_them = None
            if with_them is not None:
                keys = [key for name in sorted(names) for key in with_them.decky_keys(name)]
                _write(path, with_them.yaml)
                # --stop: each container gets its 1 s grace period, then goes with its anonymous volumes.
                _compose(project, path, ["rm", "--force", "--stop", "--volumes", *keys], url)
            # Whatever compose did not know about (services dropped from the model while deployed, stale names).
            labels = {naming.LABEL_PROJECT: project, naming.LABEL_SCOPE: naming.SCOPE_FLEET}
            leftovers = [
                c for c in docker_api.list_containers(url, labels) if c.labels.get(naming.LABEL_DECKY) in names
            ]
            docker_api.remove_containers(url, leftovers)
            if remaining.keys:
                _write(path, remaining.yaml)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            used = {naming.network_name(project, d.network.name) for d in group if d.network is not None}
            _prune_fleet_networks(url, used, remaining)


def _prune_fleet_networks(url: str, candidates: set[str], remaining: compose.RenderedProject) -> list[str]:
    """Remove the fleet networks named in ``candidates`` that no remaining decky uses and no container is
    attached to (a network another worker is deploying onto keeps its attached containers, so it stays)."""
    keep = {spec["name"] for spec in remaining.document.get("networks", {}).values()}
    labels = {naming.LABEL_PROJECT: naming.fleet_project(), naming.LABEL_SCOPE: naming.SCOPE_FLEET}
    doomed = [n for n in docker_api.list_networks(url, labels) if n.get("Name") in candidates - keep]
    return docker_api.remove_networks(url, doomed, only_unused=True)


# --- scope helpers shared by fleet and topology deckies ---------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    project: str
    url: str
    path: Path
    topology_id: str | None


def _topology_deckies(topology: Topology) -> list[Decky]:
    return list(topology.deckies.all().select_related("host").prefetch_related("services"))


def _render_topology(topology: Topology, deckies: Sequence[Decky] | None = None) -> compose.RenderedProject:
    deckies = _topology_deckies(topology) if deckies is None else deckies
    return compose.render_topology(
        topology, list(topology.lans.all()), deckies, list(topology.edges.all()), custom=_custom_specs()
    )


def render_topology(topology: Topology) -> str:
    """Deterministic compose YAML for a topology: one bridge network per LAN (internal unless DMZ). No Docker."""
    return _render_topology(topology).yaml


def _scope_of(decky: Decky) -> _Scope:
    if decky.topology_id is None:
        return _Scope(naming.fleet_project(), host_url(_decky_host(decky)), fleet_file(_decky_host(decky)), None)
    topology = decky.topology
    assert topology is not None
    return _Scope(
        naming.topology_project(topology.pk),
        _topology_url(_topology_deckies(topology)),
        topology_file(topology),
        str(topology.pk),
    )


def _render_scope(decky: Decky) -> compose.RenderedProject:
    if decky.topology_id is None:
        return _render_fleet(_decky_host(decky), include=[decky])
    topology = decky.topology
    assert topology is not None
    deckies = [d for d in _topology_deckies(topology) if d.pk != decky.pk] + [decky]
    return _render_topology(topology, deckies)


def _base_running(url: str, project: str, decky: Decky) -> bool:
    labels = {naming.LABEL_PROJECT: project, naming.LABEL_DECKY: decky.name, naming.LABEL_ROLE: naming.ROLE_BASE}
    return any(c.running for c in docker_api.list_containers(url, labels))


def add_service(decky: Decky, slug: str) -> None:
    """Start one service container of a running decky (``up -d --no-deps <svc>``); nothing else restarts.

    The service must already be in the decky's desired services. Works for fleet and topology deckies.
    Raises :class:`ContainerRefusedError` when the decky's base container is not running.
    """
    scope = _scope_of(decky)
    docker_api.ping(scope.url)
    with _locked(scope.path):
        rendered = _render_scope(decky)
        key = rendered.keys[decky.name][1].get(slug)
        if key is None:
            raise RenderError(f"decky {decky.name!r} has no service {slug!r}; add it to the decky first")
        if not _base_running(scope.url, scope.project, decky):
            raise ContainerRefusedError(f"decky {decky.name!r} is not running; deploy it first", decky=decky.name)
        _check_images(scope.url, _images_of(rendered, [key]))
        _write(scope.path, rendered.yaml)
        _compose(scope.project, scope.path, ["up", "-d", "--no-deps", "--pull", "never", key], scope.url)


def remove_service(decky: Decky, slug: str) -> None:
    """Stop and remove one service container of a decky; nothing else restarts.

    Found by label, so it works whether or not the service is still in the decky's desired list; the file is
    re-rendered from the desired state afterwards.
    """
    scope = _scope_of(decky)
    docker_api.ping(scope.url)
    with _locked(scope.path):
        labels = {naming.LABEL_PROJECT: scope.project, naming.LABEL_DECKY: decky.name, naming.LABEL_SERVICE: slug}
        docker_api.remove_containers(scope.url, docker_api.list_containers(scope.url, labels))
        try:
            rendered = _render_scope(decky)
        except RenderError as exc:
            logger.warning("not re-rendering %s after removing %s: %s", scope.path.name, slug, exc)
            return
        if rendered.keys:
            _write(scope.path, rendered.yaml)


# --- topologies ------------------------------------------------------------------------------------------------------


def _parse_ps(stdout: str) -> list[dict[str, Any]]:
    """``compose ps --format json``: one JSON object per line (v2.21+), or one JSON array (older v2)."""
    text = stdout.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def deploy_topology(topology: Topology) -> TopologyDeployReport:
    """Create the topology's networks and containers, then report which are running (rolls back on error).

    On any failure of ``up`` everything of the project is removed again (containers, networks, the file) before
    the error is raised; a missing image is reported before anything is created.
    """
    deckies = _topology_deckies(topology)
    url = _topology_url(deckies)
    docker_api.ping(url)
    path = topology_file(topology)
    with _locked(path):
        rendered = _render_topology(topology, deckies)
        _check_images(url, rendered.images)
        _write(path, rendered.yaml)
        try:
            _compose(rendered.project, path, ["up", "-d", "--pull", "never", "--remove-orphans"], url)
            result = _compose(rendered.project, path, ["ps", "--all", "--format", "json"], url)
        except EngineError:
            with contextlib.suppress(EngineError):
                _remove_topology(topology, url, path)
            raise
    states = {row.get("Service"): str(row.get("State", "")) for row in _parse_ps(result.stdout)}
    names = rendered.container_names()
    report = TopologyDeployReport(addresses=rendered.addresses)
    for decky in sorted(deckies, key=lambda d: d.name):
        keys = rendered.decky_keys(decky.name)
        down = [names[key] for key in keys if states.get(key) != "running"]
        report.decky_running[decky.name] = not down
        report.not_running.extend(down)
    return report


def _remove_topology(topology: Topology, url: str, path: Path) -> None:
    """Everything of the topology's project goes: compose ``down`` when a file exists, then a label sweep of
    containers, networks (leaf-first) and volumes, then the file. Raises EngineError if something survives."""
    project = naming.topology_project(topology.pk)
    if path.exists():
        try:
            _compose(project, path, ["down", "--remove-orphans", "--volumes", "--timeout", "1"], url)
        except EngineError as exc:
            if isinstance(exc, EngineUnavailableError):
                raise
            logger.warning("compose down of %s failed, sweeping by label: %s", project, exc)
    labels = {naming.LABEL_TOPOLOGY: str(topology.pk)}
    docker_api.remove_containers(url, docker_api.list_containers(url, labels))
    docker_api.remove_networks(url, docker_api.list_networks(url, labels))
    docker_api.remove_project_volumes(url, project)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    survivors = [c.name for c in docker_api.list_containers(url, labels)]
    survivors += [str(n.get("Name")) for n in docker_api.list_networks(url, labels)]
    if survivors:
        raise EngineError(f"teardown of {project} left {', '.join(survivors)} behind", leftovers=survivors)


def teardown_topology(topology: Topology) -> None:
    """Remove the topology's containers, networks (leaf-first) and compose file; no volume is left behind."""
    url = _topology_url(_topology_deckies(topology))
    docker_api.ping(url)
    path = topology_file(topology)
    with _locked(path):
        if not path.exists():
            # Re-create the file so compose can do the ordered stop; if the desired state no longer renders,
            # the label sweep alone removes everything.
            try:
                _write(path, _render_topology(topology).yaml)
            except RenderError as exc:
                logger.warning("teardown of %s by label only: %s", topology.pk, exc)
        _remove_topology(topology, url, path)


# --- observation -----------------------------------------------------------------------------------------------------


def _state_of(info: docker_api.ContainerInfo) -> ContainerState:
    return ContainerState(
        name=info.name,
        decky=info.labels.get(naming.LABEL_DECKY, ""),
        service=info.labels.get(naming.LABEL_SERVICE) or None,
        status=info.state,
        topology_id=info.labels.get(naming.LABEL_TOPOLOGY) or None,
    )


def decky_containers(decky: Decky) -> list[ContainerState]:
    """The containers that exist for a decky, found by label."""
    scope = _scope_of(decky)
    labels = {naming.LABEL_PROJECT: scope.project, naming.LABEL_DECKY: decky.name}
    return [_state_of(info) for info in docker_api.list_containers(scope.url, labels)]


def fleet_containers(host: Host | None = None) -> list[ContainerState]:
    """Every fleet container on a host, by label; raises EngineUnavailableError when the engine is down."""
    labels = {naming.LABEL_PROJECT: naming.fleet_project(), naming.LABEL_SCOPE: naming.SCOPE_FLEET}
    return [_state_of(info) for info in docker_api.list_containers(host_url(host), labels)]


def container_logs(decky: Decky, slug: str | None = None, *, tail: int = 200) -> str:
    """The last ``tail`` lines of a decky's service container (``slug``) or base container (None)."""
    scope = _scope_of(decky)
    key = naming.base_key(decky.name) if slug is None else naming.service_key(decky.name, slug)
    return docker_api.logs(scope.url, naming.container_name(scope.project, key), tail=tail)


# --- files -----------------------------------------------------------------------------------------------------------


def file_target(decky: Decky) -> str:
    """The container file drops go to: the decky's ``ssh`` service container if it has one, else its base."""
    project = naming.project_for(decky.topology_id)
    slugs = {row.slug for row in decky.services.all()}
    key = naming.service_key(decky.name, SSH_SLUG) if SSH_SLUG in slugs else naming.base_key(decky.name)
    return naming.container_name(project, key)


def drop_file(decky: Decky, path: str, content: bytes, mode: int = 0o644, mtime: datetime | None = None) -> str:
    """Write ``content`` at absolute ``path`` in the decky's file target container; returns the container name.

    The target is the decky's ``ssh`` service container when it has one, else its base container.
    Mode and mtime (default: now) are exact; the owner is root; missing parent directories are created.
    Raises InvalidPathError (relative path or ``..``) or ContainerRefusedError.
    """
    docker_api.check_path(path)
    name = file_target(decky)
    docker_api.put_file(_scope_of(decky).url, name, path, content, mode=mode, mtime=mtime)
    logger.info("dropped %d bytes at %s in %s (mode %o)", len(content), path, name, mode)
    return name


def delete_file(decky: Decky, path: str) -> str:
    """``rm -f`` of an absolute path in the decky's file target container; returns the container name."""
    docker_api.check_path(path)
    name = file_target(decky)
    docker_api.delete_file(_scope_of(decky).url, name, path)
    logger.info("deleted %s in %s", path, name)
    return name


def engine_ping(host: Host | None = None) -> str:
    """The engine's server version; raises EngineUnavailableError."""
    return docker_api.ping(host_url(host))


def addresses(topology: Topology) -> Mapping[str, Mapping[str, str]]:
    """``{decky: {lan: ipv4}}`` the topology renders to, allocating for edges without ``ip`` (nothing is saved)."""
    return _render_topology(topology).addresses
