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
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException

from deckies.catalogue.images import ALL_FAMILIES, BASE_FAMILY, image_ref
from deckies.engine.image_context import (
    CONTEXT_HASH_LABEL,
    DEBIAN_SUITE,
    DEBOOTSTRAP_TIMEOUT,
    DEBOOTSTRAP_VARIANT,
    FAMILY_LABEL,
    IMAGE_PYTHON,
    WHEELHOUSE_TIMEOUT,
    BuildLog,
    ImageBuildError,
    ImageBuildResult,
    ImageStatus,
    Progress,
    context_hash,
    debian_mirror,
    engine_client,
    family_dir,
    format_size,
    get_image,
    image_size,
    ping_engine,
    run_logged,
    setting,
    state_dir,
    write_context_tar,
)

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


def _build_base(client: docker.DockerClient, *, expected_hash: str, progress: Progress, log: BuildLog) -> None:
    if os.geteuid() != 0:
        raise log.fail("building the base image runs debootstrap, which needs root")
    debootstrap = _find_debootstrap()
    if debootstrap is None:
        raise log.fail("debootstrap is not installed (apt-get install debootstrap, or scripts/setup.sh --engine)")
    workdir = Path(tempfile.mkdtemp(prefix="base-", dir=state_dir("tmp")))
    try:
        rootfs = workdir / "rootfs"
        packages = _base_packages()
        mirror = debian_mirror()
        progress(f"{BASE_FAMILY}: debootstrap {DEBIAN_SUITE} ({DEBOOTSTRAP_VARIANT} + {', '.join(packages)})")
        started = time.monotonic()
        options = [f"--variant={DEBOOTSTRAP_VARIANT}", f"--include={','.join(packages)}"]
        run_logged(
            [debootstrap, *options, DEBIAN_SUITE, rootfs, mirror], log, timeout=DEBOOTSTRAP_TIMEOUT, what="debootstrap"
        )
        progress(f"{BASE_FAMILY}: debootstrap done in {time.monotonic() - started:.1f}s; trimming and importing")
        _trim_rootfs(rootfs)
        tarball = workdir / "rootfs.tar"
        run_logged(["tar", "--numeric-owner", "-C", rootfs, "-cf", tarball, "."], log, timeout=600, what="tar")
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
    configured = setting("DECNET_WHEEL_PYTHON") or os.environ.get("DECNET_WHEEL_PYTHON")
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


def _wheelhouse(family: str, *, progress: Progress, log: BuildLog) -> Path | None:
    """The cached wheelhouse for ``images/<family>/requirements.txt`` (built on first use); None without one."""
    requirements = family_dir(family) / "requirements.txt"
    if not requirements.is_file():
        return None
    key = hashlib.sha256(requirements.read_bytes() + "cp{}{}".format(*IMAGE_PYTHON).encode()).hexdigest()[:16]
    cache = state_dir("cache", "wheels")
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
        run_logged(
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
    log: BuildLog,
) -> None:
    if not (family_dir(family) / "Dockerfile").is_file():
        raise log.fail(f"images/{family}/Dockerfile is missing")
    wheelhouse = _wheelhouse(family, progress=progress, log=log)
    with tempfile.TemporaryFile(dir=state_dir("tmp")) as context:
        write_context_tar(family, wheelhouse, context)
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


def _remove_replaced(client: docker.DockerClient, old_id: str | None, new_id: str, log: BuildLog) -> None:
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
        client = engine_client()
    ping_engine(client)
    work = [BASE_FAMILY, *[f for f in requested if f != BASE_FAMILY]]
    results: list[ImageBuildResult] = []
    with _build_lock(client):
        base_id: str | None = None
        for family in work:
            ref = image_ref(family)
            started = time.monotonic()
            expected = context_hash(family, base_image_id=base_id) if family != BASE_FAMILY else context_hash(family)
            existing = get_image(client, ref)
            rebuild = force and family in requested
            if existing is not None and not rebuild and existing.labels.get(CONTEXT_HASH_LABEL) == expected:
                result = ImageBuildResult(
                    family, ref, str(existing.id), expected, False, time.monotonic() - started, image_size(existing)
                )
                progress(f"{family}: up to date ({ref}, {format_size(result.size_bytes)}) [{result.seconds:.1f}s]")
            else:
                if family == BASE_FAMILY and family not in requested and existing is None:
                    progress(f"{family}: {ref} is missing and the other images are built FROM it")
                reason = "forced" if rebuild else ("missing" if existing is None else "build context changed")
                progress(f"{family}: building {ref} ({reason})")
                log = BuildLog(family)
                try:
                    if family == BASE_FAMILY:
                        _build_base(client, expected_hash=expected, progress=progress, log=log)
                    else:
                        _build_dockerfile_family(
                            client, family, expected_hash=expected, nocache=rebuild, progress=progress, log=log
                        )
                    image = get_image(client, ref)
                    if image is None or image.labels.get(CONTEXT_HASH_LABEL) != expected:
                        raise log.fail(f"the build finished but {ref} does not carry the expected context hash")
                    _remove_replaced(client, existing.id if existing is not None else None, str(image.id), log)
                finally:
                    log.close()
                result = ImageBuildResult(
                    family, ref, str(image.id), expected, True, time.monotonic() - started, image_size(image)
                )
                progress(f"{family}: built {ref} ({format_size(result.size_bytes)}) in {result.seconds:.1f}s")
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
        progress(f"removed untagged build leftovers ({format_size(freed)})")


def image_status(client: docker.DockerClient | None = None) -> list[ImageStatus]:
    """Presence and freshness of every family's image, for health checks and the quick start.

    ``current`` is true when the image's context hash label matches the build context in this checkout (so
    :func:`build_images` would reuse it). Raises ``EngineUnavailableError`` when the engine cannot be reached.
    """
    if client is None:
        client = engine_client()
    ping_engine(client)
    statuses: list[ImageStatus] = []
    base_id: str | None = None
    for family in ALL_FAMILIES:
        ref = image_ref(family)
        image = get_image(client, ref)
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
                size_bytes=image_size(image),
                created=str(image.attrs.get("Created") or "") or None,
            )
        )
    return statuses


def missing_images(client: docker.DockerClient) -> list[str]:
    """References of the family images absent from the engine (``[]`` when a deploy can start)."""
    return [ref for ref in (image_ref(family) for family in ALL_FAMILIES) if get_image(client, ref) is None]
