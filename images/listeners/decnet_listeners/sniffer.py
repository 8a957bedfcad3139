"""The fleet sniffer (no ports): logs a start-up event, then every TCP connection attempt it can see.

With CAP_NET_RAW it opens an AF_PACKET socket and logs each TCP SYN (without ACK) seen on the host's
interfaces as a ``connect`` event carrying ``dst_ip``; repeats of the same (source, destination, port) within
``dedupe_seconds`` (default 60) are folded. Without the capability it logs a warning and idles, so the
container stays up. Config: ``dedupe_seconds``.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from .config import Settings
from .events import EventLog, warn
from .server import Worker

ETH_P_IP = 0x0800
MAX_TRACKED = 10000


def parse_syn(packet: bytes) -> tuple[str, int, str, int] | None:
    """(src_ip, src_port, dst_ip, dst_port) if ``packet`` (an IPv4 datagram) is a TCP SYN, else ``None``."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != 6:
        return None
    header = (packet[0] & 0x0F) * 4
    fragment_offset = struct.unpack_from("!H", packet, 6)[0] & 0x1FFF
    if fragment_offset or len(packet) < header + 14:
        return None
    src_port, dst_port = struct.unpack_from("!HH", packet, header)
    flags = packet[header + 13]
    if not flags & 0x02 or flags & 0x10:
        return None
    return socket.inet_ntoa(packet[12:16]), src_port, socket.inet_ntoa(packet[16:20]), dst_port


def capture(settings: Settings, log: EventLog, stop: threading.Event) -> None:
    """Open the capture, log the start-up (only then: a SYN sent after "startup" is never missed), then log SYNs
    until ``stop`` (or idle if raw sockets are not permitted)."""
    try:
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    except (OSError, AttributeError) as exc:
        log.emit("startup", hostname=settings.hostname, capture="none")
        warn(f"sniffer: packet capture unavailable ({exc}); idling")
        stop.wait()
        return
    log.emit("startup", hostname=settings.hostname, capture="AF_PACKET")
    raw.settimeout(1.0)
    window = float(settings.integer("dedupe_seconds", 60))
    seen: dict[tuple[str, str, int], float] = {}
    while not stop.is_set():
        try:
            packet = raw.recv(65535)
        except TimeoutError:
            continue
        except OSError as exc:
            warn(f"sniffer: capture failed ({exc}); idling")
            stop.wait()
            return
        syn = parse_syn(packet)
        if syn is None:
            continue
        src_ip, src_port, dst_ip, dst_port = syn
        now = time.monotonic()
        key = (src_ip, dst_ip, dst_port)
        if now - seen.get(key, -window - 1) < window:
            continue
        if len(seen) >= MAX_TRACKED:
            seen.clear()
        seen[key] = now
        log.emit(
            "connect", src_ip=src_ip, src_port=src_port, dst_port=dst_port, dst_ip=dst_ip, protocol="tcp", syn=True
        )


def listeners(settings: Settings) -> list[Worker]:
    """One capture worker."""

    def run(log: EventLog, stop: threading.Event) -> None:
        """Worker entry point."""
        capture(settings, log, stop)

    return [Worker(run, name="sniffer")]
