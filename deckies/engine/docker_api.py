"""The Docker SDK adapter: the few engine calls that compose does not do well, each bounded by a timeout.

One low-level :class:`docker.APIClient` per (process, engine URL), negotiated once and reused (its connection pool
makes label queries a few milliseconds). The API version is negotiated (``auto``) because the engines here speak
1.41 while the SDK defaults to a newer one.

Every function raises only :mod:`deckies.engine.errors` types: an engine that cannot be reached or does not answer
in time is :class:`EngineUnavailableError`; a container that is missing or stopped when we need it running is
:class:`ContainerRefusedError`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import posixpath
import tarfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import docker
import docker.errors
import requests.exceptions
from django.conf import settings

from deckies.engine import naming
from deckies.engine.errors import ContainerRefusedError, EngineError, EngineUnavailableError, InvalidPathError

logger = logging.getLogger(__name__)

#: How long establishing a client (version negotiation) and :func:`ping` may take: "engine down" must be fast.
CONNECT_TIMEOUT = 5.0
MAX_FILE_BYTES = 64 * 1024 * 1024

_clients: dict[tuple[int, str], docker.APIClient] = {}
_clients_lock = threading.Lock()


def default_url() -> str:
    return str(settings.DECNET_DEFAULT_DOCKER_URL)


def _timeout() -> float:
    return float(settings.DECNET_DOCKER_TIMEOUT)


_TRANSPORT_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError, TimeoutError)


@contextlib.contextmanager
def engine_errors(url: str, what: str) -> Iterator[None]:
    """Map transport failures (refused, timed out, not a Docker engine) to :class:`EngineUnavailableError`."""
    try:
        yield
    except _TRANSPORT_ERRORS as exc:
        forget_client(url)
        raise EngineUnavailableError(f"{what}: Docker engine at {url} is unreachable ({exc})", docker_url=url) from exc
    except docker.errors.APIError as exc:
        # Anything the caller did not handle itself: the engine answered, but not with what was asked.
        raise EngineError(f"{what}: Docker engine at {url} answered {exc.explanation or exc}", docker_url=url) from exc
    except docker.errors.DockerException as exc:
        forget_client(url)
        raise EngineUnavailableError(f"{what}: Docker engine at {url} is unusable ({exc})", docker_url=url) from exc


def client(url: str | None = None) -> docker.APIClient:
    """The cached API client of engine ``url`` (None: the default engine). Creating one talks to the engine."""
    url = url or default_url()
    key = (os.getpid(), url)  # a forked worker must not share its parent's sockets
    with _clients_lock:
        api = _clients.get(key)
    if api is not None:
        return api
    with engine_errors(url, "connect"):
        # Negotiate with a short timeout so a dead engine fails fast, then allow normal calls the full budget.
        api = docker.APIClient(base_url=url, version="auto", timeout=CONNECT_TIMEOUT)
    api.timeout = _timeout()
    with _clients_lock:
        _clients[key] = api
    return api


def forget_client(url: str) -> None:
    """Drop the cached client of ``url`` (after a transport failure, so the next call reconnects)."""
    with _clients_lock:
        api = _clients.pop((os.getpid(), url), None)
    if api is not None:
        with contextlib.suppress(Exception):
            api.close()


def ping(url: str | None = None) -> str:
    """The engine's server version, within :data:`CONNECT_TIMEOUT`; raises :class:`EngineUnavailableError`."""
    url = url or default_url()
    api = client(url)
    saved = api.timeout
    api.timeout = CONNECT_TIMEOUT
    try:
        with engine_errors(url, "ping"):
            try:
                api.ping()
                return str(api.version().get("Version", "unknown"))
            except docker.errors.APIError as exc:
                raise EngineUnavailableError(f"ping: Docker engine at {url} answered {exc}", docker_url=url) from exc
    finally:
        api.timeout = saved


# --- containers ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerInfo:
    """A container as the list endpoint reports it (no per-container inspect)."""

    id: str
    name: str
    state: str
    labels: Mapping[str, str]

    @property
    def running(self) -> bool:
        return self.state == "running"


def list_containers(url: str | None, labels: Mapping[str, str], *, all: bool = True) -> list[ContainerInfo]:
    """Containers carrying every label in ``labels`` (one list call, no inspect), sorted by name."""
    url = url or default_url()
    api = client(url)
    with engine_errors(url, "list containers"):
        rows = api.containers(all=all, filters={"label": naming.label_filters(dict(labels))})
    found = [
        ContainerInfo(
            id=row["Id"],
            name=(row.get("Names") or ["/" + row["Id"][:12]])[0].lstrip("/"),
            state=str(row.get("State", "")),
            labels=row.get("Labels") or {},
        )
        for row in rows
    ]
    return sorted(found, key=lambda c: c.name)


def inspect_container(url: str | None, name: str) -> dict[str, Any] | None:
    """``docker inspect`` of a container, or None when it does not exist."""
    url = url or default_url()
    api = client(url)
    with engine_errors(url, f"inspect {name}"):
        try:
            return dict(api.inspect_container(name))
        except docker.errors.NotFound:
            return None


def remove_containers(url: str | None, containers: Iterable[ContainerInfo], *, stop_timeout: int = 1) -> list[str]:
    """Stop (``stop_timeout`` seconds of grace) and remove containers with their anonymous volumes; returns the
    names removed. Containers that vanished meanwhile are fine."""
    url = url or default_url()
    api = client(url)
    removed = []
    for container in containers:
        with engine_errors(url, f"remove {container.name}"):
            try:
                if container.running:
                    api.stop(container.id, timeout=stop_timeout)
                api.remove_container(container.id, v=True, force=True)
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as exc:
                if "removal of container" in str(exc) and "already in progress" in str(exc):
                    continue
                raise EngineError(f"cannot remove container {container.name}: {exc}") from exc
        removed.append(container.name)
    return removed


def logs(url: str | None, name: str, *, tail: int = 200) -> str:
    """The last ``tail`` lines of a container's output (stdout and stderr interleaved)."""
    url = url or default_url()
    api = client(url)
    with engine_errors(url, f"logs {name}"):
        try:
            raw = api.logs(name, stdout=True, stderr=True, tail=tail, timestamps=False)
        except docker.errors.NotFound as exc:
            raise ContainerRefusedError(f"container {name} does not exist", container=name) from exc
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


# --- networks and volumes --------------------------------------------------------------------------------------------


def list_networks(url: str | None, labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """Networks carrying every label in ``labels``."""
    url = url or default_url()
    api = client(url)
    with engine_errors(url, "list networks"):
        return list(api.networks(filters={"label": naming.label_filters(dict(labels))}))


def remove_networks(url: str | None, networks: Iterable[Mapping[str, Any]], *, only_unused: bool = False) -> list[str]:
    """Remove networks, leaf-first (names sorted descending); with ``only_unused`` skip those with endpoints."""
    url = url or default_url()
    api = client(url)
    removed = []
    for network in sorted(networks, key=lambda n: str(n.get("Name", "")), reverse=True):
        with engine_errors(url, f"remove network {network.get('Name')}"):
            try:
                if only_unused and api.inspect_network(network["Id"]).get("Containers"):
                    continue
                api.remove_network(network["Id"])
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as exc:
                raise EngineError(f"cannot remove network {network.get('Name')}: {exc}") from exc
        removed.append(str(network.get("Name")))
    return removed


def remove_project_volumes(url: str | None, project: str) -> list[str]:
    """Remove every volume compose created for ``project`` (there should be none; this is the safety net)."""
    url = url or default_url()
    api = client(url)
    removed = []
    with engine_errors(url, "list volumes"):
        volumes = (api.volumes(filters={"label": f"{naming.COMPOSE_PROJECT_LABEL}={project}"}) or {}).get("Volumes")
    for volume in volumes or []:
        with engine_errors(url, f"remove volume {volume['Name']}"):
            try:
                api.remove_volume(volume["Name"], force=True)
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as exc:
                raise EngineError(f"cannot remove volume {volume['Name']}: {exc}") from exc
        removed.append(volume["Name"])
    return removed


# --- images ----------------------------------------------------------------------------------------------------------


def missing_images(url: str | None, refs: Iterable[str]) -> list[str]:
    """The image references of ``refs`` that are not on the engine (one inspect each; the engine normalises)."""
    url = url or default_url()
    api = client(url)
    missing = []
    for ref in sorted(set(refs)):
        with engine_errors(url, f"inspect image {ref}"):
            try:
                api.inspect_image(ref)
            except docker.errors.NotFound:
                missing.append(ref)
    return missing


# --- files -----------------------------------------------------------------------------------------------------------


def check_path(path: str) -> str:
    """``path`` if it is absolute, names a file (not ``/`` or ``…/``), has no ``..`` segment and no NUL byte;
    :class:`InvalidPathError` otherwise. Returned unchanged apart from collapsing repeated slashes."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidPathError(f"path {path!r} must be absolute", path=str(path))
    if "\x00" in path:
        raise InvalidPathError("path must not contain a NUL byte", path=path.replace("\x00", "\\0"))
    segments = path.split("/")
    if ".." in segments:
        raise InvalidPathError(f"path {path!r} must not contain '..'", path=path)
    if path.endswith("/") or segments[-1] in ("", "."):
        raise InvalidPathError(f"path {path!r} must name a file", path=path)
    return "/" + "/".join(segment for segment in segments if segment not in ("", "."))


def _running(url: str, name: str) -> dict[str, Any]:
    info = inspect_container(url, name)
    if info is None:
        raise ContainerRefusedError(f"container {name} does not exist", container=name)
    if not (info.get("State") or {}).get("Running"):
        status = (info.get("State") or {}).get("Status", "not running")
        raise ContainerRefusedError(f"container {name} is {status}, not running", container=name)
    return info


def exec_run(url: str | None, name: str, argv: list[str], *, user: str = "0:0") -> tuple[int, str]:
    """Run ``argv`` (no shell) in a running container as ``user``; returns (exit code, combined output).

    Bounded by the client timeout. A missing or stopped container is :class:`ContainerRefusedError`.
    """
    url = url or default_url()
    api = client(url)
    _running(url, name)
    with engine_errors(url, f"exec in {name}"):
        try:
            exec_id = api.exec_create(name, argv, stdout=True, stderr=True, user=user)["Id"]
            output = api.exec_start(exec_id)
            code = api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.NotFound as exc:
            raise ContainerRefusedError(f"container {name} disappeared", container=name) from exc
        except docker.errors.APIError as exc:
            raise ContainerRefusedError(
                f"container {name} refused exec: {exc.explanation or exc}", container=name
            ) from exc
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
    return (code if isinstance(code, int) else -1), text


def file_tar(path: str, content: bytes, mode: int, mtime: float) -> bytes:
    """A one-member tar of ``content`` named after ``path``'s basename, owned by root, with ``mode`` and ``mtime``.

    PAX format so a fractional ``mtime`` survives (the engine extracts it with sub-second precision).
    """
    info = tarfile.TarInfo(posixpath.basename(path))
    info.size = len(content)
    info.mode = mode & 0o7777
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.type = tarfile.REGTYPE
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def put_file(
    url: str | None, name: str, path: str, content: bytes, *, mode: int = 0o644, mtime: datetime | float | None = None
) -> None:
    """Write ``content`` at ``path`` in a running container with exactly ``mode`` and ``mtime`` (default: now),
    owned by root; parent directories are created first (``mkdir -p``, existing ones untouched)."""
    path = check_path(path)
    if not 0 <= mode <= 0o7777:
        raise InvalidPathError(f"mode {mode:o} is not a file mode (0-7777 octal)", path=path)
    if len(content) > MAX_FILE_BYTES:
        raise InvalidPathError(f"content is {len(content)} bytes; the limit is {MAX_FILE_BYTES}", path=path)
    url = url or default_url()
    stamp = time.time() if mtime is None else (mtime.timestamp() if isinstance(mtime, datetime) else float(mtime))
    parent = posixpath.dirname(path)
    if parent != "/":
        # put_archive needs the directory to exist; a tar with directory members would instead reset the modes
        # and mtimes of directories that already exist.
        code, output = exec_run(url, name, ["mkdir", "-p", "--", parent])
        if code != 0:
            raise ContainerRefusedError(f"cannot create {parent} in {name}: {output.strip()[-256:]}", container=name)
    else:
        _running(url, name)
    api = client(url)
    with engine_errors(url, f"put_archive into {name}"):
        try:
            ok = api.put_archive(name, parent, file_tar(path, content, mode, stamp))
        except docker.errors.APIError as exc:
            raise ContainerRefusedError(
                f"{name} refused the file {path}: {exc.explanation or exc}", container=name
            ) from exc
    if not ok:
        raise ContainerRefusedError(f"{name} refused the file {path}", container=name)


def delete_file(url: str | None, name: str, path: str) -> None:
    """``rm -f -- path`` in a running container (absent files are fine; a directory is refused)."""
    path = check_path(path)
    code, output = exec_run(url, name, ["rm", "-f", "--", path])
    if code != 0:
        raise ContainerRefusedError(f"cannot delete {path} in {name}: {output.strip()[-256:]}", container=name)


def read_file(url: str | None, name: str, path: str) -> tuple[bytes, int, float]:
    """(content, mode & 0o7777, mtime) of a regular file in a container, via ``get_archive`` (tests, audits)."""
    url = url or default_url()
    api = client(url)
    with engine_errors(url, f"get_archive from {name}"):
        try:
            stream, _stat = api.get_archive(name, check_path(path))
        except docker.errors.NotFound as exc:
            raise ContainerRefusedError(f"{path} or container {name} does not exist", container=name) from exc
        data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.getmembers()[0]
        handle = archive.extractfile(member)
        content = handle.read() if handle else b""
    # The archive's mode carries the file-type bits (0o100600); only the permission bits are the file's mode.
    return content, member.mode & 0o7777, float(member.mtime)
