"""Building DECNET's container images on the local Docker engine, with no registry.

Families and names come from :mod:`deckies.catalogue.images`. How each image is made:

- ``base`` (``decnet/base:<tag>``): ``debootstrap --variant=minbase`` of Debian 12 with the packages listed in
  ``images/base/packages.txt``, trimmed (no docs, man pages, apt lists or caches) and loaded with
  ``docker import``. Its default command is ``sleep infinity``, which is what decky base containers run.
- every other family: ``images/<family>/Dockerfile``, built ``FROM`` the base image (build argument
  ``BASE_IMAGE``). A family with a ``requirements.txt`` gets a ``wheels/`` directory in its build context: pip
  cannot reach PyPI from inside a build on these machines, so the wheels are built on the host with a CPython
  of the image's version (3.11) and cached under ``<data dir>/cache/wheels/``, keyed by the requirements.

Idempotence: each image carries the label ``org.decnet.context-hash``, a hash of everything its build depends on
(the files of ``images/<family>/``, the Debian suite, and for the other families the base image's id). An image
whose label equals the current hash is reused; anything else is rebuilt. ``force=True`` rebuilds the requested
families without the layer cache.

Errors are typed: :class:`ImageBuildError` (with the tail of the build log) and
:class:`~deckies.engine.errors.EngineUnavailableError` when the engine cannot be reached. Builds against one engine
are serialised across processes (a lock file in the temp dir); full build logs are kept in
``<data dir>/logs/images/``. After a build, untagged images left by DECNET builds (replaced images, build stages)
are pruned.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound
from docker.models.images import Image

from deckies.catalogue.images import ALL_FAMILIES, BASE_FAMILY, image_ref
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


def _setting(name: str, default: Any = None) -> Any:
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
    configured = _setting("DECNET_DATA_DIR")
    return Path(configured) if configured else PROJECT_ROOT / "var"


def _debian_mirror() -> str:
    return str(_setting("DECNET_DEBIAN_MIRROR") or os.environ.get("DECNET_DEBIAN_MIRROR") or DEFAULT_DEBIAN_MIRROR)


def _state_dir(*parts: str) -> Path:
    path = data_dir().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- engine -------------------------------------------------------------------------------------------------


def _engine_client() -> docker.DockerClient:
    """A Docker client for builds (long timeout), from ``DECNET_DEFAULT_DOCKER_URL`` or the environment."""
    url = _setting("DECNET_DEFAULT_DOCKER_URL") or None
    try:
        if url:
            return docker.DockerClient(base_url=url, timeout=BUILD_CLIENT_TIMEOUT)
        return docker.from_env(timeout=BUILD_CLIENT_TIMEOUT)
    except DockerException as exc:
        raise EngineUnavailableError(_unreachable_message(url, exc)) from exc


def _unreachable_message(url: str | None, exc: BaseException) -> str:
    where = url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return f"the Docker engine at {where} is not reachable ({exc}); start it (scripts/setup.sh --engine) and retry"


def _ping(client: docker.DockerClient) -> None:
    try:
        client.ping()
    except DockerException as exc:  # APIError and requests' errors are both wrapped or subclassed here
        raise EngineUnavailableError(_unreachable_message(client.api.base_url, exc)) from exc
    except OSError as exc:
        raise EngineUnavailableError(_unreachable_message(client.api.base_url, exc)) from exc


def _get_image(client: docker.DockerClient, ref: str) -> Image | None:
    try:
        return client.images.get(ref)
    except ImageNotFound:
        return None


def _image_size(image: Image) -> int:
    return int(image.attrs.get("Size") or 0)


def _format_size(size: int) -> str:
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


def _write_context_tar(family: str, wheelhouse: Path | None, out: IO[bytes]) -> None:
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


class _BuildLog:
    """Build output of one family: written in full to ``<data dir>/logs/images/<family>.log``, tail kept."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.path = _state_dir("logs", "images") / f"{family}.log"
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


def _run_logged(cmd: Sequence[str | Path], log: _BuildLog, *, timeout: int, what: str) -> None:
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


# --- the base image: debootstrap + docker import ------------------------------------------------------------


def _base_packages() -> list[str]:
    lines = (family_dir(BASE_FAMILY) / "packages.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _find_debootstrap() -> str | None:
    return shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if os.access(p, os.X_OK)), None
    )


def _remove(path: Path) -> None:
    """Remove a file, symlink or directory inside a root fs without ever following a symlink."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def _clear_dir(path: Path, *, keep: Callable[[Path], bool] = lambda _p: False) -> None:
    if path.is_symlink() or not path.is_dir():
        return
    for child in path.iterdir():
        if not keep(child):
            _remove(child)


def _trim_rootfs(rootfs: Path) -> None:
    """Make a fresh debootstrap tree image-ready: no caches, lists, docs or host identity; apt/dpkg defaults."""
    base_ctx = family_dir(BASE_FAMILY)
    shutil.copyfile(base_ctx / "dpkg-nodoc.cfg", rootfs / "etc/dpkg/dpkg.cfg.d/01-decnet-nodoc")
    shutil.copyfile(base_ctx / "apt.conf", rootfs / "etc/apt/apt.conf.d/01-decnet")
    _clear_dir(rootfs / "var/cache/apt/archives", keep=lambda p: p.name in {"partial", "lock"})
    for cache in (rootfs / "var/cache/apt").glob("*.bin"):
        _remove(cache)
    _clear_dir(rootfs / "var/lib/apt/lists", keep=lambda p: p.name in {"partial", "lock"})
    _clear_dir(rootfs / "usr/share/man")
    _clear_dir(rootfs / "usr/share/info")
    _clear_dir(rootfs / "usr/share/lintian")
    _clear_dir(rootfs / "usr/share/locale", keep=lambda p: p.name == "locale.alias")
    doc = rootfs / "usr/share/doc"
    if doc.is_dir() and not doc.is_symlink():
        for package_doc in doc.iterdir():
            if package_doc.is_dir() and not package_doc.is_symlink():
                _clear_dir(package_doc, keep=lambda p: p.name == "copyright")
            else:
                _remove(package_doc)
    logs = rootfs / "var/log"
    for dirpath, _dirnames, filenames in os.walk(logs):
        for name in filenames:
            log_file = Path(dirpath) / name
            if not log_file.is_symlink():
                log_file.write_bytes(b"")
    # The engine provides these at run time; the build host's values must not end up in the image.
    for identity in ("etc/hostname", "etc/resolv.conf", "etc/machine-id"):
        target = rootfs / identity
        if target.is_symlink():
            target.unlink()
        if target.name != "machine-id" or target.exists():
            target.write_text("", encoding="utf-8")


def _build_base(client: docker.DockerClient, *, expected_hash: str, progress: Progress, log: _BuildLog) -> None:
    if os.geteuid() != 0:
        raise log.fail("building the base image runs debootstrap, which needs root")
    debootstrap = _find_debootstrap()
    if debootstrap is None:
        raise log.fail("debootstrap is not installed (apt-get install debootstrap, or scripts/setup.sh --engine)")
    workdir = Path(tempfile.mkdtemp(prefix="base-", dir=_state_dir("tmp")))
    try:
        rootfs = workdir / "rootfs"
        packages = _base_packages()
        mirror = _debian_mirror()
        progress(f"{BASE_FAMILY}: debootstrap {DEBIAN_SUITE} ({DEBOOTSTRAP_VARIANT} + {', '.join(packages)})")
        started = time.monotonic()
        options = [f"--variant={DEBOOTSTRAP_VARIANT}", f"--include={','.join(packages)}"]
        _run_logged(
            [debootstrap, *options, DEBIAN_SUITE, rootfs, mirror], log, timeout=DEBOOTSTRAP_TIMEOUT, what="debootstrap"
        )
        progress(f"{BASE_FAMILY}: debootstrap done in {time.monotonic() - started:.1f}s; trimming and importing")
        _trim_rootfs(rootfs)
        tarball = workdir / "rootfs.tar"
        _run_logged(["tar", "--numeric-owner", "-C", rootfs, "-cf", tarball, "."], log, timeout=600, what="tar")
        repository, tag = image_ref(BASE_FAMILY).rsplit(":", 1)
        changes = [
            'CMD ["sleep", "infinity"]',
            "ENV LANG=C.UTF-8",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"LABEL {CONTEXT_HASH_LABEL}={expected_hash} {FAMILY_LABEL}={BASE_FAMILY}",
        ]
        try:
            output = client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
        except DockerException as exc:
            raise log.fail(f"docker import failed: {exc}") from exc
        log.write(str(output))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- wheelhouses --------------------------------------------------------------------------------------------


def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=10, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out.strip():
            return Path(out.strip())
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def _wheel_python_candidates() -> Iterator[str]:
    configured = _setting("DECNET_WHEEL_PYTHON") or os.environ.get("DECNET_WHEEL_PYTHON")
    if configured:
        yield str(configured)
        return
    version = ".".join(map(str, IMAGE_PYTHON))
    root = _pyenv_root()
    if root is not None:
        for candidate in sorted((root / "versions").glob(f"{version}*/bin/python"), reverse=True):
            yield str(candidate)
    for name in (f"python{version}", "python3"):
        found = shutil.which(name)
        if found:
            yield found
    yield "/usr/bin/python3"


def find_wheel_python() -> str:
    """A host CPython of the image's version (3.11) with pip, to build wheelhouses; ``ImageBuildError`` if none.

    ``DECNET_WHEEL_PYTHON`` (setting or environment) names one explicitly; otherwise pyenv's 3.11 interpreters,
    ``python3.11`` and ``python3`` on PATH are tried in that order.
    """
    want = "{}.{}".format(*IMAGE_PYTHON)
    probe = "import sys, pip; print('%d.%d' % sys.version_info[:2])"
    tried: list[str] = []
    for candidate in dict.fromkeys(_wheel_python_candidates()):
        tried.append(candidate)
        try:
            out = subprocess.run([candidate, "-c", probe], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip() == want:
            return candidate
    raise ImageBuildError(
        f"no CPython {want} with pip found to build the image wheelhouses (tried: {', '.join(tried)}); "
        f"install one (apt-get install python3-pip on Debian 12) or set DECNET_WHEEL_PYTHON",
        family="wheelhouse",
    )


def _wheelhouse(family: str, *, progress: Progress, log: _BuildLog) -> Path | None:
    """The cached wheelhouse for ``images/<family>/requirements.txt`` (built on first use); None without one."""
    requirements = family_dir(family) / "requirements.txt"
    if not requirements.is_file():
        return None
    key = hashlib.sha256(requirements.read_bytes() + "cp{}{}".format(*IMAGE_PYTHON).encode()).hexdigest()[:16]
    cache = _state_dir("cache", "wheels")
    target = cache / f"{family}-{key}"
    if (target / ".complete").is_file():
        progress(f"{family}: wheelhouse cached ({len(list(target.glob('*.whl')))} wheels)")
        return target
    python = find_wheel_python()
    progress(f"{family}: building the wheelhouse with {python}")
    started = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix=f"{family}-", suffix=".partial", dir=cache))
    try:
        pip_wheel = [python, "-m", "pip", "wheel", "--disable-pip-version-check", "--progress-bar", "off"]
        _run_logged(
            [*pip_wheel, "--wheel-dir", staging, "-r", requirements], log, timeout=WHEELHOUSE_TIMEOUT, what="pip wheel"
        )
        (staging / ".complete").write_text(requirements.read_text(encoding="utf-8"), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress(f"{family}: wheelhouse built in {time.monotonic() - started:.1f}s")
    return target


# --- Dockerfile families ------------------------------------------------------------------------------------


def _build_dockerfile_family(
    client: docker.DockerClient,
    family: str,
    *,
    expected_hash: str,
    nocache: bool,
    progress: Progress,
    log: _BuildLog,
) -> None:
    if not (family_dir(family) / "Dockerfile").is_file():
        raise log.fail(f"images/{family}/Dockerfile is missing")
    wheelhouse = _wheelhouse(family, progress=progress, log=log)
    with tempfile.TemporaryFile(dir=_state_dir("tmp")) as context:
        _write_context_tar(family, wheelhouse, context)
        try:
            stream: Iterable[dict[str, Any]] = client.api.build(
                fileobj=context,
                custom_context=True,
                tag=image_ref(family),
                rm=True,
                forcerm=True,
                pull=False,
                nocache=nocache,
                decode=True,
                buildargs={"BASE_IMAGE": image_ref(BASE_FAMILY)},
                labels={CONTEXT_HASH_LABEL: expected_hash, FAMILY_LABEL: family},
            )
            for chunk in stream:
                if "stream" in chunk:
                    text = str(chunk["stream"])
                    log.write(text)
                    if text.startswith("Step "):
                        progress(f"{family}: {text.strip()}")
                elif "error" in chunk:
                    raise log.fail(f"docker build failed: {str(chunk['error']).strip()}")
                elif "status" in chunk:
                    log.write(str(chunk["status"]))
        except (APIError, DockerException) as exc:
            raise log.fail(f"docker build failed: {exc}") from exc


def _remove_replaced(client: docker.DockerClient, old_id: str | None, new_id: str, log: _BuildLog) -> None:
    """Delete the image a rebuild replaced, unless something (a container, a child image) still uses it."""
    if not old_id or old_id == new_id:
        return
    with contextlib.suppress(DockerException):
        client.images.remove(old_id, noprune=False)
        log.write(f"removed the replaced image {old_id}")


# --- public API ---------------------------------------------------------------------------------------------


def _ordered_families(families: Sequence[str] | None) -> list[str]:
    if families is None:
        return list(ALL_FAMILIES)
    unknown = sorted(set(families) - set(ALL_FAMILIES))
    if unknown:
        raise ImageBuildError(
            f"unknown image families: {', '.join(unknown)} (known: {', '.join(ALL_FAMILIES)})", family=unknown[0]
        )
    return [family for family in ALL_FAMILIES if family in families]


@contextlib.contextmanager
def _build_lock(client: docker.DockerClient) -> Iterator[None]:
    """Serialise builds against one engine across processes (whatever their data dirs: the engine is shared)."""
    engine = hashlib.sha256(str(client.api.base_url).encode()).hexdigest()[:12]
    with (Path(tempfile.gettempdir()) / f"decnet-images-{engine}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_images(
    *,
    force: bool = False,
    families: Sequence[str] | None = None,
    progress: Progress = print,
    client: docker.DockerClient | None = None,
) -> list[ImageBuildResult]:
    """Make sure the images of ``families`` (default: all) exist and are current; returns one result per family.

    The base image is always handled first: it is built when missing or stale even if not requested, because the
    other families are built ``FROM`` it (and then it appears in the results too). An image whose context hash
    label matches is reused untouched unless ``force`` is set, which rebuilds every requested family without the
    layer cache (the cached wheelhouses are kept: they are pinned). ``progress`` receives one human-readable line
    per step, with timings.

    Raises :class:`ImageBuildError` (with ``log_tail``) when a build fails, and
    :class:`~deckies.engine.errors.EngineUnavailableError` when the engine cannot be reached.
    """
    requested = _ordered_families(families)
    if client is None:
        client = _engine_client()
    _ping(client)
    work = [BASE_FAMILY, *[f for f in requested if f != BASE_FAMILY]]
    results: list[ImageBuildResult] = []
    with _build_lock(client):
        base_id: str | None = None
        for family in work:
            ref = image_ref(family)
            started = time.monotonic()
            expected = context_hash(family, base_image_id=base_id) if family != BASE_FAMILY else context_hash(family)
            existing = _get_image(client, ref)
            rebuild = force and family in requested
            if existing is not None and not rebuild and existing.labels.get(CONTEXT_HASH_LABEL) == expected:
                result = ImageBuildResult(
                    family, ref, str(existing.id), expected, False, time.monotonic() - started, _image_size(existing)
                )
                progress(f"{family}: up to date ({ref}, {_format_size(result.size_bytes)}) [{result.seconds:.1f}s]")
            else:
                if family == BASE_FAMILY and family not in requested and existing is None:
                    progress(f"{family}: {ref} is missing and the other images are built FROM it")
                reason = "forced" if rebuild else ("missing" if existing is None else "build context changed")
                progress(f"{family}: building {ref} ({reason})")
                log = _BuildLog(family)
                try:
                    if family == BASE_FAMILY:
                        _build_base(client, expected_hash=expected, progress=progress, log=log)
                    else:
                        _build_dockerfile_family(
                            client, family, expected_hash=expected, nocache=rebuild, progress=progress, log=log
                        )
                    image = _get_image(client, ref)
                    if image is None or image.labels.get(CONTEXT_HASH_LABEL) != expected:
                        raise log.fail(f"the build finished but {ref} does not carry the expected context hash")
                    _remove_replaced(client, existing.id if existing is not None else None, str(image.id), log)
                finally:
                    log.close()
                result = ImageBuildResult(
                    family, ref, str(image.id), expected, True, time.monotonic() - started, _image_size(image)
                )
                progress(f"{family}: built {ref} ({_format_size(result.size_bytes)}) in {result.seconds:.1f}s")
            if family == BASE_FAMILY:
                base_id = result.image_id
            results.append(result)
        if any(r.built for r in results):
            _prune_leftovers(client, progress)
    return results


def _prune_leftovers(client: docker.DockerClient, progress: Progress) -> None:
    """Remove untagged images left by DECNET builds (replaced images, build stages); in-use ones stay."""
    try:
        pruned = client.images.prune(filters={"dangling": True, "label": FAMILY_LABEL})
    except DockerException:
        return
    freed = int(pruned.get("SpaceReclaimed") or 0)
    if pruned.get("ImagesDeleted"):
        progress(f"removed untagged build leftovers ({_format_size(freed)})")


def image_status(client: docker.DockerClient | None = None) -> list[ImageStatus]:
    """Presence and freshness of every family's image, for health checks and the quick start.

    ``current`` is true when the image's context hash label matches the build context in this checkout (so
    :func:`build_images` would reuse it). Raises ``EngineUnavailableError`` when the engine cannot be reached.
    """
    if client is None:
        client = _engine_client()
    _ping(client)
    statuses: list[ImageStatus] = []
    base_id: str | None = None
    for family in ALL_FAMILIES:
        ref = image_ref(family)
        image = _get_image(client, ref)
        if family == BASE_FAMILY:
            base_id = str(image.id) if image is not None else None
        if image is None:
            statuses.append(ImageStatus(family, ref, present=False, current=False))
            continue
        try:
            expected: str | None = (
                context_hash(family) if family == BASE_FAMILY else context_hash(family, base_image_id=base_id)
            )
        except (ImageBuildError, ValueError):
            expected = None
        statuses.append(
            ImageStatus(
                family,
                ref,
                present=True,
                current=expected is not None and image.labels.get(CONTEXT_HASH_LABEL) == expected,
                image_id=str(image.id),
                size_bytes=_image_size(image),
                created=str(image.attrs.get("Created") or "") or None,
            )
        )
    return statuses


def missing_images(client: docker.DockerClient) -> list[str]:
    """References of the family images absent from the engine (``[]`` when a deploy can start)."""
    return [ref for ref in (image_ref(family) for family in ALL_FAMILIES) if _get_image(client, ref) is None]
