"""Network safety of the suite: probes only ever reach loopback or deckies on a bridge of this machine.

A decky that failed to come up must not turn a scan or a login attempt into traffic that leaves the machine, so
every probe first asks the kernel how it would route the address and refuses anything that would not go out of a
local bridge device (or loopback).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import subprocess
from pathlib import Path


class UnsafeProbeError(AssertionError):
    """The address would be reached through something other than a local bridge: the probe is refused."""


@functools.lru_cache(maxsize=64)
def _is_bridge(device: str) -> bool:
    return (Path("/sys/class/net") / device / "bridge").is_dir()


def route_device(address: str) -> str:
    """The device the kernel would send a packet for ``address`` out of (``ip route get``)."""
    result = subprocess.run(
        ["ip", "-j", "-4", "route", "get", address], capture_output=True, text=True, check=False, timeout=5
    )
    if result.returncode != 0:
        raise UnsafeProbeError(f"no route to {address}: {result.stderr.strip()}")
    routes = json.loads(result.stdout or "[]")
    if not routes or "dev" not in routes[0]:
        raise UnsafeProbeError(f"cannot tell how {address} is routed: {result.stdout!r}")
    return str(routes[0]["dev"])


def require_local_bridge(address: str) -> str:
    """Return the local bridge (or ``lo``) ``address`` is routed through; raise :class:`UnsafeProbeError` when the
    address is not a literal IPv4 address or would leave through any other device."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError as exc:
        raise UnsafeProbeError(f"probes take literal IPv4 addresses, not {address!r}") from exc
    if ip.is_loopback:
        return "lo"
    device = route_device(str(ip))
    if device != "lo" and not _is_bridge(device):
        raise UnsafeProbeError(f"{address} routes through {device}, not a local bridge: probe refused")
    return device
