"""A private Docker engine for tests that restart, kill or fill an engine.

The suite shares the machine's engine with whatever else runs on it, so no test ever restarts that one. Tests that
need an engine to go away and come back (a host reboot, a crash) start their own ``dockerd`` beside it: its own
socket, data root, exec root and pidfile, and its own bridge, with ``--iptables=false`` (the shared engine's
iptables chains are left alone) and never ``--bridge=none`` (which deletes the host's ``docker0``). The host reaches
containers of the private engine directly over that engine's bridges. Images are copied in from the shared engine
(``docker save | docker load``, a few seconds per image) and survive restarts.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from tests.deckies.engine.probes import free_subnets

#: Seconds dockerd may take to answer after a start, and to exit after SIGTERM (it stops its containers first).
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class PrivateEngine:
    """One private ``dockerd``: :attr:`url` is its socket URL; :meth:`restart` is a host reboot for its containers."""

    name: str
    root: Path
    run_dir: Path
    bridge: str
    subnet: str
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "dockerd.log"

    @property
    def url(self) -> str:
        return f"unix://{self.run_dir}/docker.sock"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version="auto", timeout=60)

    # --- process --------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start dockerd (idempotent) and wait until it answers."""
        if self.process is not None and self.process.poll() is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    "dockerd",
                    f"--host={self.url}",
                    f"--data-root={self.root / 'data'}",
                    f"--exec-root={self.run_dir / 'exec'}",
                    f"--pidfile={self.run_dir / 'docker.pid'}",
                    f"--bridge={self.bridge}",
                    "--iptables=false",
                    "--ip-masq=false",
                    "--userland-proxy=false",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"private dockerd exited at start; see {self.log}")
            with contextlib.suppress(Exception):
                client = self.client()
                try:
                    client.ping()
                    return
                finally:
                    client.close()
            time.sleep(0.2)
        raise RuntimeError(f"private dockerd did not answer within {START_TIMEOUT:.0f}s; see {self.log}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop dockerd with ``sig`` (SIGTERM stops its containers first, as a shutdown does) and wait for its whole
        process group, containerd included, to be gone."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # containerd and its shims live in the same session; give them a moment, then make sure.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group_alive(process.pid):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        self.process = None

    def restart(self) -> None:
        """Stop the engine (its containers with it) and start it again: what a host reboot does to them."""
        self.stop()
        self.start()

    # --- content --------------------------------------------------------------------------------------------------

    def load_images(self, refs: Iterable[str]) -> None:
        """Copy images from the shared engine unless this engine already has them (same id)."""
        shared = docker.from_env(version="auto", timeout=300)
        own = self.client()
        try:
            wanted = []
            for ref in sorted(set(refs)):
                image_id = shared.images.get(ref).id
                try:
                    if own.images.get(ref).id == image_id:
                        continue
                except docker.errors.ImageNotFound:
                    pass
                wanted.append(ref)
            if wanted:
                save = subprocess.Popen(["docker", "save", *wanted], stdout=subprocess.PIPE)
                load = subprocess.run(
                    ["docker", f"--host={self.url}", "load", "-q"],
                    stdin=save.stdout,
                    capture_output=True,
                    timeout=600,
                    check=False,
                )
                assert save.stdout is not None
                save.stdout.close()
                if save.wait(timeout=600) != 0 or load.returncode != 0:
                    raise RuntimeError(f"could not copy {wanted} into the private engine: {load.stderr!r}")
        finally:
            shared.close()
            own.close()

    def remove_everything(self) -> None:
        """Remove every container and user-defined network of this engine (images stay)."""
        client = self.client()
        try:
            for container in client.containers.list(all=True):
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True, v=True)
            for network in client.networks.list():
                if network.name not in {"bridge", "host", "none"}:
                    with contextlib.suppress(docker.errors.APIError):
                        network.remove()
        finally:
            client.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def private_engine(label: str = "engine") -> Iterator[PrivateEngine]:
    """Start a private engine for the block; everything it ran is removed and its bridge deleted afterwards.

    Its data root lives under the data dir (images copied in stay for the next run); its sockets under a short
    temporary directory (a unix socket path must stay under 108 bytes).
    """
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd is not installed")
    from django.conf import settings

    prefix = str(getattr(settings, "DECNET_NAME_PREFIX", "decnet"))
    key = hashlib.sha256(f"{prefix}:{label}".encode()).hexdigest()[:6]
    root = Path(settings.DECNET_DATA_DIR) / "engines" / f"{prefix}-{label}"
    root.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"dk{key}-", dir="/run" if os.access("/run", os.W_OK) else None))
    bridge = f"dkt{key}"
    (subnet,) = free_subnets(1)
    gateway = str(next(ipaddress.IPv4Network(subnet).hosts()))
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip("link", "delete", bridge)
    _ip("link", "add", bridge, "type", "bridge")
    _ip("addr", "add", f"{gateway}/{subnet.split('/')[1]}", "dev", bridge)
    _ip("link", "set", bridge, "up")
    engine = PrivateEngine(name=label, root=root, run_dir=run_dir, bridge=bridge, subnet=subnet)
    try:
        engine.start()
        engine.remove_everything()
        yield engine
    finally:
        with contextlib.suppress(Exception):
            engine.start()
            engine.remove_everything()
        engine.stop()
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "delete", bridge)
        shutil.rmtree(run_dir, ignore_errors=True)
