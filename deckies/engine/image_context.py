"""The pieces every image build shares: names, labels, settings, the engine client, build contexts and their
hashes, and the build log. :mod:`deckies.engine.images` does the building (see there for how each image is made)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker
from docker.errors import DockerException, ImageNotFound
from docker.models.images import Image

from deckies.catalogue.images import BASE_FAMILY
from deckies.engine.errors import EngineError, EngineUnavailableError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: One directory per image family, holding its build context.
IMAGES_DIR = PROJECT_ROOT / "images"

CONTEXT_HASH_LABEL = "org.decnet.context-hash"
FAMILY_LABEL = "org.decnet.family"
#: Part of every context hash; bump it to invalidate all images when the build procedure itself changes.
HASH_SCHEME = "decnet-images-1"

DEBIAN_SUITE = "bookworm"
DEBOOTSTRAP_VARIANT = "minbase"
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
#: ``python3`` of the base image (Debian 12); the wheelhouses are built for it.
IMAGE_PYTHON = (3, 11)

#: Timeout (seconds) of the Docker API client used for builds: a build step may print nothing for minutes.
BUILD_CLIENT_TIMEOUT = 1800
#: Lines of build output kept for :attr:`ImageBuildError.log_tail`.
LOG_TAIL_LINES = 40
#: Seconds a wheelhouse build (pip wheel) may take.
WHEELHOUSE_TIMEOUT = 1200
#: Seconds debootstrap may take.
DEBOOTSTRAP_TIMEOUT = 1200

#: Names never sent in a build context nor hashed.
_IGNORED_NAMES = frozenset({"wheels", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})

Progress = Callable[[str], None]


class ImageBuildError(EngineError):
    """An image could not be built; ``log_tail`` holds the last lines of the build output."""

    status_code = 500
    code = "image_build_failed"

    def __init__(self, detail: str, *, family: str, log_tail: str = "") -> None:
        super().__init__(detail, family=family, log_tail=log_tail)
        self.family = family
        self.log_tail = log_tail

    def __str__(self) -> str:
        if not self.log_tail:
            return self.detail
        return f"{self.detail}\n--- last lines of the build log ---\n{self.log_tail}"


@dataclass(frozen=True)
class ImageBuildResult:
    """Outcome of one family in :func:`build_images`: the image, whether it was (re)built, and how long it took."""

    family: str
    image: str
    image_id: str
    context_hash: str
    built: bool
    seconds: float
    size_bytes: int

    @property
    def action(self) -> str:
        """``"built"`` or ``"reused"``."""
        return "built" if self.built else "reused"


@dataclass(frozen=True)
class ImageStatus:
    """One family's image on the engine: present at all, and current (its context hash label matches)."""

    family: str
    image: str
    present: bool
    current: bool
    image_id: str | None = None
    size_bytes: int | None = None
    created: str | None = None


# --- configuration ------------------------------------------------------------------------------------------


def setting(name: str, default: Any = None) -> Any:
    """A Django setting read lazily; ``default`` when Django is absent or its settings are not configured."""
    try:
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:  # pragma: no cover - Django is a dependency of the project
        return default
    try:
        if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
            return default
        return getattr(settings, name, default)
    except ImproperlyConfigured:
        return default


def data_dir() -> Path:
    """DECNET's data dir: the ``DECNET_DATA_DIR`` setting, or ``<project root>/var`` without Django settings."""
    configured = setting("DECNET_DATA_DIR")
    return Path(configured) if configured else PROJECT_ROOT / "var"


def debian_mirror() -> str:
    return str(setting("DECNET_DEBIAN_MIRROR") or os.environ.get("DECNET_DEBIAN_MIRROR") or DEFAULT_DEBIAN_MIRROR)


def state_dir(*parts: str) -> Path:
    path = data_dir().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- engine -------------------------------------------------------------------------------------------------


def engine_client() -> docker.DockerClient:
    """A Docker client for builds (long timeout), from ``DECNET_DEFAULT_DOCKER_URL`` or the environment."""
    url = setting("DECNET_DEFAULT_DOCKER_URL") or None
    try:
        if url:
            return docker.DockerClient(base_url=url, timeout=BUILD_CLIENT_TIMEOUT)
        return docker.from_env(timeout=BUILD_CLIENT_TIMEOUT)
    except DockerException as exc:
        raise EngineUnavailableError(_unreachable_message(url, exc)) from exc


def _unreachable_message(url: str | None, exc: BaseException) -> str:
    where = url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return f"the Docker engine at {where} is not reachable ({exc}); start it (scripts/setup.sh --engine) and retry"


def ping_engine(client: docker.DockerClient) -> None:
    try:
        client.ping()
    except DockerException as exc:  # APIError and requests' errors are both wrapped or subclassed here
        raise EngineUnavailableError(_unreachable_message(client.api.base_url, exc)) from exc
    except OSError as exc:
        raise EngineUnavailableError(_unreachable_message(client.api.base_url, exc)) from exc


def get_image(client: docker.DockerClient, ref: str) -> Image | None:
    try:
        return client.images.get(ref)
    except ImageNotFound:
        return None


def image_size(image: Image) -> int:
    return int(image.attrs.get("Size") or 0)


def format_size(size: int) -> str:
    return f"{size / 1_000_000:.0f} MB"


# --- build contexts and their hashes ------------------------------------------------------------------------


def family_dir(family: str) -> Path:
    """The build context directory of an image family (``images/<family>``)."""
    return IMAGES_DIR / family


def _context_files(family: str) -> list[Path]:
    """The files of a family's build context, sorted; generated and cache directories are left out."""
    root = family_dir(family)
    if not root.is_dir():
        raise ImageBuildError(f"no build context for image family {family!r} (expected {root})", family=family)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_NAMES and not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                continue
            found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def context_hash(family: str, *, base_image_id: str | None = None) -> str:
    """The hash an up-to-date image of ``family`` carries in its ``org.decnet.context-hash`` label.

    It covers the family's files (path, executable bit, content), the hash scheme, the Debian suite and, for
    every family but ``base``, the id of the base image it is built on (so a rebuilt base rebuilds them).
    """
    digest = hashlib.sha256()

    def feed(*items: str | bytes) -> None:
        for item in items:
            data = item.encode() if isinstance(item, str) else item
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)

    feed(HASH_SCHEME, family, DEBIAN_SUITE, DEBOOTSTRAP_VARIANT)
    if family == BASE_FAMILY:
        feed("base")
    else:
        if not base_image_id:
            raise ValueError("the context hash of a family built FROM the base image needs the base image id")
        feed("from", base_image_id, "python", ".".join(map(str, IMAGE_PYTHON)))
    root = family_dir(family)
    for path in _context_files(family):
        mode = "x" if os.access(path, os.X_OK) else "-"
        feed(path.relative_to(root).as_posix(), mode, hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _reset_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_context_tar(family: str, wheelhouse: Path | None, out: IO[bytes]) -> None:
    """Write the build context of ``family`` (plus ``wheels/`` from ``wheelhouse``) as a tar into ``out``."""
    root = family_dir(family)
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path in _context_files(family):
            tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False, filter=_reset_owner)
        if wheelhouse is not None:
            tar.add(wheelhouse, arcname="wheels", recursive=False, filter=_reset_owner)
            for wheel in sorted(wheelhouse.glob("*.whl")):
                tar.add(wheel, arcname=f"wheels/{wheel.name}", filter=_reset_owner)
    out.seek(0)


# --- build log ----------------------------------------------------------------------------------------------


class BuildLog:
    """Build output of one family: written in full to ``<data dir>/logs/images/<family>.log``, tail kept."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.path = state_dir("logs", "images") / f"{family}.log"
        self._file = self.path.open("w", encoding="utf-8")
        self._tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

    def write(self, text: str) -> None:
        for line in text.splitlines():
            line = line.rstrip()
            if line:
                self._tail.append(line)
                self._file.write(line + "\n")
        self._file.flush()

    @property
    def tail(self) -> str:
        return "\n".join(self._tail)

    def close(self) -> None:
        self._file.close()

    def fail(self, detail: str) -> ImageBuildError:
        self.write(f"ERROR: {detail}")
        message = f"{self.family}: {detail} (full log: {self.path})"
        return ImageBuildError(message, family=self.family, log_tail=self.tail)


def run_logged(cmd: Sequence[str | Path], log: BuildLog, *, timeout: int, what: str) -> None:
    """Run a host command, its output going to ``log``; ``ImageBuildError`` when it fails or times out."""
    argv = [str(part) for part in cmd]
    log.write("$ " + " ".join(argv))
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as exc:
        raise log.fail(f"{what}: cannot run {argv[0]} ({exc})") from exc
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        if time.monotonic() > deadline:
            proc.kill()
            break
    try:
        returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        returncode = proc.wait()
    if time.monotonic() > deadline:
        raise log.fail(f"{what} timed out after {timeout} s")
    if returncode != 0:
        raise log.fail(f"{what} failed (exit status {returncode})")
