"""Host-side probes for deployed deckies: free test subnets, protocol greetings and the TTL on the wire.

Nothing here needs extra packages: greetings are plain sockets and the TTL is read from the IP header of an
ICMP echo reply received on a raw socket (the tests run as root, like the engine).
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import struct
import subprocess
import time
from collections.abc import Callable

import docker

from tests.netsafety import require_local_bridge

#: Docker's default address pools (172.17-31/16, 192.168/16 in /20s) are avoided: test LANs come from here.
TEST_POOL = ipaddress.IPv4Network("10.200.0.0/13")


def _in_use() -> list[ipaddress.IPv4Network]:
    used: list[ipaddress.IPv4Network] = []
    api = docker.APIClient(version="auto", timeout=10)
    try:
        for network in api.networks():
            for config in (network.get("IPAM") or {}).get("Config") or []:
                if config.get("Subnet") and ":" not in config["Subnet"]:
                    used.append(ipaddress.IPv4Network(config["Subnet"], strict=False))
    finally:
        api.close()
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True, check=False).stdout
    for line in routes.splitlines():
        first = line.split()[0] if line.split() else ""
        if "/" in first:
            used.append(ipaddress.IPv4Network(first, strict=False))
    return used


def free_subnets(count: int, prefix: int = 24, pool: ipaddress.IPv4Network = TEST_POOL) -> list[str]:
    """``count`` random /``prefix`` subnets of ``pool`` overlapping no Docker network and no route."""
    used = _in_use()
    candidates = list(pool.subnets(new_prefix=prefix))
    rng = random.Random(os.getpid() ^ time.time_ns())
    rng.shuffle(candidates)
    chosen: list[ipaddress.IPv4Network] = []
    for net in candidates:
        if not any(net.overlaps(other) for other in used + chosen):
            chosen.append(net)
            if len(chosen) == count:
                return [str(n) for n in chosen]
    raise RuntimeError("no free test subnet")


def host(subnet: str, index: int) -> str:
    """The ``index``-th host address of ``subnet`` (1 is the gateway)."""
    return str(ipaddress.IPv4Network(subnet).network_address + index)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_ttl(address: str, timeout: float = 3.0) -> int:
    """The TTL of the IP header of ``address``'s reply to one ICMP echo request."""
    require_local_bridge(address)
    ident = (os.getpid() ^ random.getrandbits(16)) & 0xFFFF
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    payload = b"decnet-ttl-probe"
    packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, 1) + payload
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        sock.sendto(packet, (address, 0))
        while time.monotonic() < deadline:
            data, (source, _port) = sock.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            icmp_type, _code, _sum, reply_id = struct.unpack("!BBHH", data[ihl : ihl + 6])
            if source == address and icmp_type == 0 and reply_id == ident:
                return data[8]
    raise TimeoutError(f"no echo reply from {address}")


def _read_some(sock: socket.socket, limit: int = 4096) -> bytes:
    try:
        return sock.recv(limit)
    except TimeoutError:
        return b""


def greeting(address: str, port: int, send: bytes = b"", timeout: float = 5.0) -> bytes:
    """What a TCP service says first (after ``send``, when given)."""
    require_local_bridge(address)
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        if send:
            sock.sendall(send)
        return _read_some(sock)


def _http(address: str, port: int) -> bytes:
    return greeting(address, port, f"GET / HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())


def _mysql(address: str, port: int) -> bytes:
    data = greeting(address, port)
    # Handshake v10: 3-byte length, sequence 0, then protocol version 10 and a NUL-terminated server version.
    return data[4:5] + data[5:].split(b"\0", 1)[0] if len(data) > 5 else data


#: service slug -> (port, probe, check on the bytes received).
PROBES: dict[str, tuple[int, Callable[[str, int], bytes], Callable[[bytes], bool]]] = {
    "ssh": (22, greeting, lambda b: b.startswith(b"SSH-2.0-")),
    "ftp": (21, greeting, lambda b: b.startswith(b"220")),
    "smtp": (25, greeting, lambda b: b.startswith(b"220")),
    "http": (80, _http, lambda b: b.startswith(b"HTTP/1.")),
    "mysql": (3306, _mysql, lambda b: b[:1] == b"\x0a" and len(b) > 1),
    "redis": (6379, lambda a, p: greeting(a, p, b"PING\r\n"), lambda b: b[:1] in (b"+", b"-")),
    "telnet": (23, greeting, lambda b: len(b) > 0),
}


def wait_for_greeting(address: str, slug: str, timeout: float = 30.0) -> bytes:
    """Poll until ``slug`` on ``address`` answers with its protocol greeting; returns what it said."""
    port, probe, check = PROBES[slug]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            data = probe(address, port)
            if check(data):
                return data
            last = data
        except OSError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{slug} on {address}:{port} gave no greeting in {timeout:.0f}s (last: {last!r})")
