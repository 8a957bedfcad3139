"""Sockets, sessions and the process lifecycle shared by every protocol.

A protocol module returns :class:`Listener` (TCP), :class:`UdpListener` and :class:`Worker` specs; :func:`serve`
binds them, runs one daemon thread per connection, and exits fast on SIGTERM/SIGINT. Every read is bounded:
per-read timeout, per-line size, per-session bytes and lifetime, and a cap on concurrent connections.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import Settings
from .events import EventLog, warn

#: Seconds a single read may block before the peer is dropped.
READ_TIMEOUT = 30.0
#: Longest a TCP session may live, whatever it does.
SESSION_LIFETIME = 900.0
#: Most bytes read from one TCP session.
SESSION_MAX_BYTES = 16 * 1024 * 1024
#: Most simultaneous TCP sessions per process; extra connections are closed at once.
MAX_SESSIONS = 256
_CHUNK = 65536


class Closed(Exception):  # noqa: N818  (a signal, not an error: the session simply ends)
    """The peer went away, timed out, sent too much, or the protocol decided to hang up."""


class Session:
    """One TCP connection: bounded reads, writes, optional TLS upgrade, and events tagged with the peer."""

    def __init__(self, sock: socket.socket, peer: tuple[str, int], dst_port: int, log: EventLog) -> None:
        self.sock: socket.socket = sock
        self.src_ip = peer[0]
        self.src_port = peer[1]
        self.dst_port = dst_port
        self.log = log
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.bytes_in = 0
        self.started = time.monotonic()
        self._buf = bytearray()
        self.sock.settimeout(READ_TIMEOUT)

    def emit(self, event: str, **details: Any) -> None:
        """Log an event for this connection."""
        self.log.emit(event, src_ip=self.src_ip, src_port=self.src_port, dst_port=self.dst_port, **details)

    def send(self, data: bytes) -> None:
        """Send all of ``data``."""
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as exc:
            raise Closed from exc

    def _fill(self) -> None:
        if time.monotonic() - self.started > SESSION_LIFETIME:
            raise Closed
        try:
            chunk = self.sock.recv(_CHUNK)
        except (OSError, ssl.SSLError) as exc:
            raise Closed from exc
        if not chunk:
            raise Closed
        self.bytes_in += len(chunk)
        if self.bytes_in > SESSION_MAX_BYTES:
            raise Closed
        self._buf += chunk

    def recv_some(self, limit: int = _CHUNK) -> bytes:
        """Whatever is available (at least one byte, at most ``limit``)."""
        if not self._buf:
            self._fill()
        data = bytes(self._buf[:limit])
        del self._buf[:limit]
        return data

    def recv_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes."""
        while len(self._buf) < size:
            self._fill()
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def recv_line(self, limit: int = 4096) -> bytes:
        """One line without its CRLF/LF; a line longer than ``limit`` comes back in ``limit``-sized pieces."""
        while True:
            end = self._buf.find(b"\n", 0, limit)
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[: end + 1]
                return line.removesuffix(b"\r")
            if len(self._buf) >= limit:
                line = bytes(self._buf[:limit])
                del self._buf[:limit]
                return line
            self._fill()

    def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade to TLS (STARTTLS); anything pipelined before the handshake is discarded, as RFC 3207 asks."""
        self._buf.clear()
        try:
            self.sock = context.wrap_socket(self.sock, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            raise Closed from exc
        self.sock.settimeout(READ_TIMEOUT)
        self.tls = True


Handler = Callable[[Session], None]


@dataclass(frozen=True)
class Listener:
    """A TCP port and the function that talks the protocol on each accepted connection."""

    port: int
    handler: Handler
    tls: ssl.SSLContext | None = None
    protocol: str = ""


@dataclass
class Datagram:
    """One received UDP packet."""

    data: bytes
    src_ip: str
    src_port: int
    dst_port: int
    log: EventLog

    def emit(self, event: str, **details: Any) -> None:
        """Log an event for this packet's sender."""
        self.log.emit(event, src_ip=self.src_ip, src_port=self.src_port, dst_port=self.dst_port, **details)


@dataclass(frozen=True)
class UdpListener:
    """A UDP port and the function that answers a packet (``None``: stay silent)."""

    port: int
    handler: Callable[[Datagram], bytes | None]
    multicast: tuple[str, ...] = ()
    protocol: str = ""


@dataclass(frozen=True)
class Worker:
    """A background task that is not tied to a port (the sniffer)."""

    run: Callable[[EventLog, threading.Event], None]
    name: str = "worker"


Spec = Listener | UdpListener | Worker


@dataclass
class RateLimiter:
    """Per-source token bucket: at most ``rate`` actions per second with bursts of ``burst``."""

    rate: float = 20.0
    burst: float = 40.0
    max_sources: int = 4096
    _state: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, source: str) -> bool:
        """Spend one token for ``source``; ``False`` when its bucket is empty."""
        now = time.monotonic()
        with self._lock:
            if len(self._state) > self.max_sources:
                self._state.clear()
            tokens, last = self._state.get(source, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._state[source] = (tokens, now)
                return False
            self._state[source] = (tokens - 1.0, now)
            return True


def _run_session(
    conn: socket.socket, peer: tuple[str, int], spec: Listener, log: EventLog, slots: threading.BoundedSemaphore
) -> None:
    session: Session | None = None
    try:
        log.emit(
            "connect",
            src_ip=peer[0],
            src_port=peer[1],
            dst_port=spec.port,
            protocol=spec.protocol or None,
            tls=True if spec.tls else None,
        )
        if spec.tls is not None:
            conn.settimeout(READ_TIMEOUT)
            conn = spec.tls.wrap_socket(conn, server_side=True)
        session = Session(conn, peer, spec.port, log)
        spec.handler(session)
    except (Closed, OSError, ssl.SSLError, EOFError):
        pass
    except Exception as exc:  # a malformed packet must never take the listener down
        warn(f"{log.service}/{spec.port}: session from {peer[0]} ended by {type(exc).__name__}: {exc}")
    finally:
        duration = round(time.monotonic() - session.started, 3) if session else 0.0
        log.emit(
            "disconnect",
            src_ip=peer[0],
            src_port=peer[1],
            dst_port=spec.port,
            protocol=spec.protocol or None,
            duration=duration,
            bytes_in=session.bytes_in if session else 0,
        )
        with contextlib.suppress(OSError):
            (session.sock if session else conn).close()
        slots.release()


def _accept_loop(server: socket.socket, spec: Listener, log: EventLog) -> None:
    slots = threading.BoundedSemaphore(MAX_SESSIONS)
    while True:
        try:
            conn, peer = server.accept()
        except OSError:
            time.sleep(0.05)
            continue
        if not slots.acquire(blocking=False):
            conn.close()
            continue
        thread = threading.Thread(target=_run_session, args=(conn, peer[:2], spec, log, slots), daemon=True)
        thread.start()


def _udp_loop(sock: socket.socket, spec: UdpListener, log: EventLog) -> None:
    limiter = RateLimiter()
    while True:
        try:
            data, peer = sock.recvfrom(65535)
        except OSError:
            time.sleep(0.05)
            continue
        if not limiter.allow(peer[0]):
            continue
        try:
            reply = spec.handler(Datagram(data, peer[0], peer[1], spec.port, log))
            if reply:
                sock.sendto(reply, peer)
        except Exception as exc:  # malformed packets are the norm on UDP
            warn(f"{log.service}/udp {spec.port}: packet from {peer[0]} dropped: {type(exc).__name__}: {exc}")


def _bind_tcp(bind: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, port))
    sock.listen(128)
    return sock


def _bind_udp(bind: str, spec: UdpListener) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, spec.port))
    if bind == "0.0.0.0":
        for group in spec.multicast:
            try:
                mreq = socket.inet_aton(group) + socket.inet_aton("0.0.0.0")
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            except OSError as exc:
                warn(f"cannot join multicast group {group}: {exc}")
    return sock


def serve(settings: Settings, specs: list[Spec], log: EventLog) -> int:
    """Bind every spec, run until SIGTERM/SIGINT, then exit the process at once; returns 1 if a bind fails."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    bound: list[str] = []
    try:
        for spec in specs:
            if isinstance(spec, Listener):
                tcp = _bind_tcp(settings.bind, spec.port)
                threads.append(threading.Thread(target=_accept_loop, args=(tcp, spec, log), daemon=True))
                bound.append(f"tcp/{spec.port}" + ("+tls" if spec.tls else ""))
            elif isinstance(spec, UdpListener):
                udp = _bind_udp(settings.bind, spec)
                threads.append(threading.Thread(target=_udp_loop, args=(udp, spec, log), daemon=True))
                bound.append(f"udp/{spec.port}")
            else:
                threads.append(threading.Thread(target=spec.run, args=(log, stop), daemon=True))
                bound.append(spec.name)
    except OSError as exc:
        warn(f"{settings.service}: cannot bind: {exc}")
        return 1

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    for thread in threads:
        thread.start()
    warn(f"{settings.service} for {settings.decky} listening on {', '.join(bound) or 'nothing'} ({settings.bind})")
    while not stop.wait(1.0):
        pass
    # Connection threads may be blocked in reads for up to READ_TIMEOUT: leave without joining them, but only
    # once no event line is half-written.
    log.flush_and_hold()
    os._exit(0)
