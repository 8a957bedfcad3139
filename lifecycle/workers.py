"""Who runs a lifecycle row, and the lease that proves it is still running.

A process that claims rows writes its identity into ``worker``: ``<cluster>@<host>:<pid>:<start>``, where
``<start>`` is the process's start time in clock ticks since boot (``/proc/<pid>/stat``), so a recycled pid is never
mistaken for the process that claimed the row. While it works on rows, the process renews their lease from a
background thread (:class:`LeaseKeeper`); in a worker cluster the same thread also runs the reaper, so rows whose
worker vanished are failed within seconds wherever a cluster is alive.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger(__name__)


def is_qcluster_process(argv: list[str] | None = None) -> bool:
    """Whether this process is ``manage.py qcluster`` (or a worker forked from it)."""
    argv = sys.argv if argv is None else argv
    return len(argv) > 1 and argv[1] in {"qcluster", "host_worker"}


def cluster_name() -> str:
    """The name of this process's worker cluster (``cli`` for a command or a web request running work itself)."""
    if is_qcluster_process():
        return str(settings.Q_CLUSTER.get("name", "decnet"))
    return "cli"


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def process_started_at(pid: int) -> datetime | None:
    """When process ``pid`` started (wall clock, from its start ticks and the boot time), or None if it is gone."""
    ticks = _start_ticks(pid)
    if ticks is None:
        return None
    try:
        boot = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    return datetime.fromtimestamp(boot + int(ticks) / os.sysconf("SC_CLK_TCK"), tz=UTC)


@dataclass(frozen=True)
class WorkerId:
    """The parsed parts of a ``worker`` column."""

    cluster: str
    host: str
    pid: int
    start: str

    def __str__(self) -> str:
        return f"{self.cluster}@{self.host}:{self.pid}:{self.start}"

    @classmethod
    def parse(cls, text: str) -> WorkerId | None:
        try:
            cluster, rest = text.split("@", 1)
            host, pid, start = rest.rsplit(":", 2)
            return cls(cluster=cluster, host=host, pid=int(pid), start=start)
        except ValueError:
            return None

    def is_local(self) -> bool:
        return self.host == socket.gethostname()

    def is_alive(self) -> bool:
        """Whether the process still runs (only meaningful on its own host)."""
        return _start_ticks(self.pid) == self.start


def current_worker() -> WorkerId:
    """This process's identity."""
    pid = os.getpid()
    return WorkerId(cluster=cluster_name(), host=socket.gethostname(), pid=pid, start=_start_ticks(pid) or "0")


def lease_length() -> timedelta:
    """How long a claimed row stays leased without a renewal (``DECNET_LIFECYCLE_LEASE`` seconds)."""
    return timedelta(seconds=int(settings.DECNET_LIFECYCLE_LEASE))


class LeaseKeeper:
    """A daemon thread per process: renews the leases of the rows this process holds, and (in worker clusters)
    runs ``periodic`` (the reaper) every ``DECNET_REAPER_INTERVAL`` seconds.

    The thread owns its database connection and closes it after every round, so it never holds one idle.
    """

    def __init__(self) -> None:
        self._held: set[uuid.UUID] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._periodic: Callable[[], object] | None = None

    def hold(self, ids: Iterable[uuid.UUID]) -> None:
        with self._lock:
            self._held.update(ids)
        self._ensure_thread()

    def release(self, ids: Iterable[uuid.UUID]) -> None:
        with self._lock:
            self._held.difference_update(ids)

    def run_periodically(self, periodic: Callable[[], object]) -> None:
        """Also run ``periodic`` on every reaper interval (idempotent)."""
        self._periodic = periodic
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._loop, name="decnet-lease-keeper", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        from lifecycle.services import lifecycle_renew

        renew_every = max(1.0, int(settings.DECNET_LIFECYCLE_LEASE) / 3)
        reap_every = max(1.0, float(settings.DECNET_REAPER_INTERVAL))
        since_reap = reap_every  # reap once right away
        while True:
            self._wake.wait(renew_every)
            self._wake.clear()
            try:
                close_old_connections()
                with self._lock:
                    held = list(self._held)
                if held:
                    lifecycle_renew(held, worker=str(current_worker()), until=timezone.now() + lease_length())
                since_reap += renew_every
                if self._periodic is not None and since_reap >= reap_every:
                    since_reap = 0.0
                    self._periodic()
            except Exception:
                logger.exception("lease keeper round failed")
            finally:
                connection.close()


_keeper = LeaseKeeper()


def lease_keeper() -> LeaseKeeper:
    """The process-wide lease keeper."""
    return _keeper
