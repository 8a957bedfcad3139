"""The engine facade: what the operation layer asks of Docker, in terms of scopes and rendered projects.

Everything here is synchronous, bounded by timeouts, and raises only :mod:`deckies.engine.errors` types. It knows
no model: callers pass a :class:`~deckies.engine.specs.Scope` (compose project, engine URL, compose file) and a
``render`` callable returning the scope's whole desired file, which is called under the scope's lock so two workers
never interleave a re-render with another's compose call.

Fleet changes are additive: compose is only ever asked about the containers of the deckies or services being
changed (``up -d --no-deps <keys>``, ``rm`` of keys), never ``--remove-orphans`` or a bare ``up``, so no other decky
is recreated or restarted. A topology is deployed and removed as a whole.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from deckies.engine import compose, docker_api, naming, runner
from deckies.engine.errors import (
    ContainerRefusedError,
    EngineError,
    EngineUnavailableError,
    ImageMissingError,
    RenderError,
)
from deckies.engine.specs import Scope

logger = logging.getLogger(__name__)

Render = Callable[[], compose.RenderedProject]


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


# --- scopes, files, locks ---------------------------------------------------------------------------------------------


def compose_dir() -> Path:
    """``<data dir>/compose``, created on demand (mode 0700: files hold service config such as passwords)."""
    path = Path(settings.DECNET_DATA_DIR) / "compose"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def fleet_scope(url: str, host_name: str | None = None, host_id: object = None) -> Scope:
    """The fleet of one engine: project ``decnet-fleet``, file ``<data dir>/compose/fleet-<host>.yml``."""
    stem = naming.fleet_file_stem(host_name, None if host_id is None else str(host_id))
    return Scope(project=naming.fleet_project(), url=url, path=compose_dir() / f"{stem}.yml")


def topology_scope(url: str, topology_id: object) -> Scope:
    """One topology: project ``decnet-t-<id8>``, file ``<data dir>/compose/topology-<id8>.yml``."""
    return Scope(
        project=naming.topology_project(str(topology_id)),
        url=url,
        path=compose_dir() / f"{naming.topology_file_stem(str(topology_id))}.yml",
        topology_id=str(topology_id),
    )


def default_url() -> str:
    """The local engine's URL (``DECNET_DOCKER_URL``)."""
    return str(settings.DECNET_DEFAULT_DOCKER_URL)


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
def locked(scope: Scope) -> Iterator[None]:
    """Exclusive cross-process lock of a scope (``.<file>.lock``); gives up (EngineError) after two compose
    timeouts, which only a wedged holder can exceed since every holder's calls are bounded. The kernel drops the
    lock when its holder dies, however it dies."""
    lock_path = scope.path.with_name(f".{scope.path.name}.lock")
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
                    raise EngineError(f"another operation holds {scope.path.name}; try again later") from exc
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_file(scope: Scope, rendered: compose.RenderedProject) -> str:
    """Write the scope's compose file (nothing is started); deletes it when the project has no container."""
    with locked(scope):
        if rendered.keys:
            return _write(scope.path, rendered.yaml)
        with contextlib.suppress(FileNotFoundError):
            scope.path.unlink()
        return str(scope.path)


def _compose(scope: Scope, args: Sequence[str], *, check: bool = True) -> runner.ComposeResult:
    return runner.run_compose(scope.project, scope.path, args, docker_url=scope.url, check=check)


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


def _labels(scope: Scope, **extra: str) -> dict[str, str]:
    labels = {naming.LABEL_PROJECT: scope.project, **extra}
    if scope.is_fleet:
        labels[naming.LABEL_SCOPE] = naming.SCOPE_FLEET
    return labels


# --- deckies of a scope (fleet: one by one; topology: live changes) ---------------------------------------------------


def _broken(scope: Scope, names: set[str]) -> set[str]:
    """Names of the deckies that have a container which exists but is not running."""
    return {
        c.labels.get(naming.LABEL_DECKY, "")
        for c in docker_api.list_containers(scope.url, _labels(scope))
        if not c.running and c.labels.get(naming.LABEL_DECKY) in names
    }


def _remove_undesired_services(scope: Scope, rendered: compose.RenderedProject, names: Iterable[str]) -> list[str]:
    """Remove service containers of the named deckies whose slug the rendered file no longer has (by label)."""
    desired = {name: set(rendered.keys[name][1]) for name in names if name in rendered.keys}
    stale = [
        c
        for c in docker_api.list_containers(scope.url, _labels(scope, **{naming.LABEL_ROLE: naming.ROLE_SERVICE}))
        if c.labels.get(naming.LABEL_DECKY) in desired
        and c.labels.get(naming.LABEL_SERVICE) not in desired[c.labels[naming.LABEL_DECKY]]
    ]
    return docker_api.remove_containers(scope.url, stale)


def deploy_deckies(scope: Scope, render: Render, names: Sequence[str]) -> None:
    """Bring the named deckies (base + services) up from the freshly rendered file; no other decky is touched.

    Containers of services no longer in a decky's desired list are removed first (this is how mutate applies). A
    decky with a stopped container is recreated whole: a stopped base lost its network namespace, and services
    still attached to the old one would look "up to date" to compose but be unreachable. Images are checked before
    anything is created (:class:`ImageMissingError`).
    """
    docker_api.ping(scope.url)
    with locked(scope):
        rendered = render()
        missing = [name for name in names if name not in rendered.keys]
        if missing:
            raise RenderError(f"decky(s) {', '.join(sorted(missing))} are not in the rendered {scope.project} file")
        keys = [key for name in sorted(names) for key in rendered.decky_keys(name)]
        _check_images(scope.url, _images_of(rendered, keys))
        _write(scope.path, rendered.yaml)
        # Dropped services go first: a replacement may listen on the same port in the shared namespace
        # (smtp -> smtp_relay) and would otherwise start while the old one still holds it.
        _remove_undesired_services(scope, rendered, names)
        broken = _broken(scope, set(names))
        fresh = [key for key in keys if rendered.services_owner(key) not in broken]
        repair = [key for key in keys if rendered.services_owner(key) in broken]
        up = ["up", "-d", "--no-deps", "--pull", "never"]
        if fresh:
            _compose(scope, [*up, *fresh])
        if repair:
            _compose(scope, [*up, "--force-recreate", *repair])


def teardown_deckies(scope: Scope, render_remaining: Render, render_with: Render, names: Sequence[str]) -> None:
    """Stop and remove every container of the named fleet deckies (bases included), then rewrite the file without
    them (deleting it when nothing remains) and remove fleet networks nobody uses any more.

    ``render_with`` renders the file including the deckies (so compose can remove them by key); when that fails
    (e.g. a custom service was deleted meanwhile) the containers are removed by label alone.
    """
    docker_api.ping(scope.url)
    wanted = set(names)
    with locked(scope):
        remaining = render_remaining()
        used_networks: set[str] = set()
        try:
            with_them: compose.RenderedProject | None = render_with()
        except RenderError as exc:
            logger.warning("teardown of %s without compose: %s", ", ".join(sorted(wanted)), exc)
            with_them = None
        if with_them is not None:
            keys = [key for name in sorted(wanted) for key in with_them.decky_keys(name)]
            for name in wanted:
                used_networks |= set(with_them.addresses.get(name, {}))
            if keys:
                _write(scope.path, with_them.yaml)
                # --stop: each container gets its 1 s grace period, then goes with its anonymous volumes.
                _compose(scope, ["rm", "--force", "--stop", "--volumes", *keys])
        # Whatever compose did not know about (services dropped from the model while deployed, stale names).
        leftovers = [
            c
            for c in docker_api.list_containers(scope.url, _labels(scope))
            if c.labels.get(naming.LABEL_DECKY) in wanted
        ]
        docker_api.remove_containers(scope.url, leftovers)
        if remaining.keys:
            _write(scope.path, remaining.yaml)
        else:
            with contextlib.suppress(FileNotFoundError):
                scope.path.unlink()
        _prune_networks(scope, {naming.network_name(scope.project, n) for n in used_networks}, remaining)


def _prune_networks(scope: Scope, candidates: set[str], remaining: compose.RenderedProject) -> list[str]:
    """Remove the networks named in ``candidates`` that no remaining decky uses and no container is attached to
    (a network another worker is deploying onto keeps its attached containers, so it stays)."""
    keep = {spec["name"] for spec in remaining.document.get("networks", {}).values()}
    doomed = [n for n in docker_api.list_networks(scope.url, _labels(scope)) if n.get("Name") in candidates - keep]
    return docker_api.remove_networks(scope.url, doomed, only_unused=True)


def _base_running(scope: Scope, decky: str) -> bool:
    labels = _labels(scope, **{naming.LABEL_DECKY: decky, naming.LABEL_ROLE: naming.ROLE_BASE})
    return any(c.running for c in docker_api.list_containers(scope.url, labels))


def add_service(scope: Scope, render: Render, decky: str, slug: str) -> None:
    """Start one service container of a running decky (``up -d --no-deps <svc>``); nothing else restarts.

    The service must already be in the decky's desired services (in what ``render`` returns). Raises
    :class:`ContainerRefusedError` when the decky's base container is not running.
    """
    docker_api.ping(scope.url)
    with locked(scope):
        rendered = render()
        key = rendered.keys.get(decky, ("", {}))[1].get(slug)
        if key is None:
            raise RenderError(f"decky {decky!r} has no service {slug!r}; add it to the decky first")
        if not _base_running(scope, decky):
            raise ContainerRefusedError(f"decky {decky!r} is not running; deploy it first", decky=decky)
        _check_images(scope.url, _images_of(rendered, [key]))
        _write(scope.path, rendered.yaml)
        _compose(scope, ["up", "-d", "--no-deps", "--pull", "never", key])


def remove_service(scope: Scope, render: Render, decky: str, slug: str) -> None:
    """Stop and remove one service container of a decky (found by label, whether or not the service is still in
    the decky's desired list); nothing else restarts. The file is re-rendered from the desired state afterwards."""
    docker_api.ping(scope.url)
    with locked(scope):
        labels = _labels(scope, **{naming.LABEL_DECKY: decky, naming.LABEL_SERVICE: slug})
        docker_api.remove_containers(scope.url, docker_api.list_containers(scope.url, labels))
        try:
            rendered = render()
        except RenderError as exc:
            logger.warning("not re-rendering %s after removing %s: %s", scope.path.name, slug, exc)
            return
        if rendered.keys:
            _write(scope.path, rendered.yaml)


# --- topologies (deployed and removed as a whole) ---------------------------------------------------------------------


def _parse_ps(stdout: str) -> list[dict[str, Any]]:
    """``compose ps --format json``: one JSON object per line (v2.21+), or one JSON array (older v2)."""
    text = stdout.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def deploy_project(scope: Scope, render: Render) -> TopologyDeployReport:
    """Create the project's networks and containers, then report which are running (rolls back on error).

    On any failure of ``up`` everything of the project is removed again (containers, networks, the file) before
    the error is raised; a missing image is reported before anything is created.
    """
    docker_api.ping(scope.url)
    with locked(scope):
        rendered = render()
        _check_images(scope.url, rendered.images)
        _write(scope.path, rendered.yaml)
        try:
            _compose(scope, ["up", "-d", "--pull", "never", "--remove-orphans"])
            result = _compose(scope, ["ps", "--all", "--format", "json"])
        except EngineError:
            with contextlib.suppress(EngineError):
                _remove_project(scope)
            raise
    states = {row.get("Service"): str(row.get("State", "")) for row in _parse_ps(result.stdout)}
    names = rendered.container_names()
    report = TopologyDeployReport(addresses=rendered.addresses)
    for decky in sorted(rendered.keys):
        down = [names[key] for key in rendered.decky_keys(decky) if states.get(key) != "running"]
        report.decky_running[decky] = not down
        report.not_running.extend(down)
    return report


def _remove_project(scope: Scope) -> None:
    """Everything of the project goes: compose ``down`` when a file exists, then a label sweep of containers,
    networks (leaf-first) and volumes, then the file. Raises EngineError if something survives."""
    if scope.path.exists():
        try:
            _compose(scope, ["down", "--remove-orphans", "--volumes", "--timeout", "1"])
        except EngineError as exc:
            if isinstance(exc, EngineUnavailableError):
                raise
            logger.warning("compose down of %s failed, sweeping by label: %s", scope.project, exc)
    labels = {naming.LABEL_TOPOLOGY: scope.topology_id} if scope.topology_id else {naming.LABEL_PROJECT: scope.project}
    docker_api.remove_containers(scope.url, docker_api.list_containers(scope.url, labels))
    docker_api.remove_networks(scope.url, docker_api.list_networks(scope.url, labels))
    docker_api.remove_project_volumes(scope.url, scope.project)
    with contextlib.suppress(FileNotFoundError):
        scope.path.unlink()
    survivors = [c.name for c in docker_api.list_containers(scope.url, labels)]
    survivors += [str(n.get("Name")) for n in docker_api.list_networks(scope.url, labels)]
    if survivors:
        raise EngineError(f"teardown of {scope.project} left {', '.join(survivors)} behind", leftovers=survivors)


def remove_project(scope: Scope, render: Render | None = None) -> None:
    """Remove the project's containers, networks (leaf-first) and compose file; no volume is left behind.

    Without a file on disk, ``render`` (when given) re-creates it so compose can do the ordered stop; if the desired
    state no longer renders, the label sweep alone removes everything.
    """
    docker_api.ping(scope.url)
    with locked(scope):
        if not scope.path.exists() and render is not None:
            try:
                _write(scope.path, render().yaml)
            except RenderError as exc:
                logger.warning("teardown of %s by label only: %s", scope.project, exc)
        _remove_project(scope)


# --- observation ------------------------------------------------------------------------------------------------------


def _state_of(info: docker_api.ContainerInfo) -> ContainerState:
    return ContainerState(
        name=info.name,
        decky=info.labels.get(naming.LABEL_DECKY, ""),
        service=info.labels.get(naming.LABEL_SERVICE) or None,
        status=info.state,
        topology_id=info.labels.get(naming.LABEL_TOPOLOGY) or None,
    )


def containers(scope: Scope, decky: str | None = None) -> list[ContainerState]:
    """The containers that exist in a scope (of one decky when named), found by label; raises
    EngineUnavailableError when the engine is down."""
    extra = {} if decky is None else {naming.LABEL_DECKY: decky}
    return [_state_of(info) for info in docker_api.list_containers(scope.url, _labels(scope, **extra))]


def container_of(scope: Scope, decky: str, slug: str | None = None) -> str:
    """The container name of a decky's base (``slug`` None) or of one of its services."""
    key = naming.base_key(decky) if slug is None else naming.service_key(decky, slug)
    return naming.container_name(scope.project, key)


def drop_file(scope: Scope, container: str, path: str, content: bytes, mode: int, mtime: datetime | None) -> str:
    """Write ``content`` at absolute ``path`` in ``container`` with exact mode and mtime (default: now), owned by
    root, creating missing parent directories; raises InvalidPathError or ContainerRefusedError."""
    docker_api.check_path(path)
    docker_api.put_file(scope.url, container, path, content, mode=mode, mtime=mtime)
    logger.info("dropped %d bytes at %s in %s (mode %o)", len(content), path, container, mode)
    return container


def delete_file(scope: Scope, container: str, path: str) -> str:
    """``rm -f`` of an absolute path in ``container``."""
    docker_api.check_path(path)
    docker_api.delete_file(scope.url, container, path)
    logger.info("deleted %s in %s", path, container)
    return container


def engine_ping(url: str) -> str:
    """The engine's server version; raises EngineUnavailableError."""
    return docker_api.ping(url)
