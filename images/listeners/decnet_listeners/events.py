"""The event stream: one JSON object per line on stdout, the contract with DECNET's log collector.

Every line carries ``ts`` (ISO 8601, UTC), ``service``, ``decky``, ``event`` (``connect``, ``auth``,
``command``, ``request``, ``disconnect``; the sniffer adds ``startup``), ``src_ip``, ``src_port`` and
``dst_port``, then protocol details. Attacker-controlled values are truncated so one event stays small.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

#: Longest string kept in an event; longer values are cut (attackers control most of them).
MAX_TEXT = 2048
#: Most items kept from a list or dict inside an event.
MAX_ITEMS = 64
_MAX_DEPTH = 6


def utc_timestamp() -> str:
    """Now as ISO 8601 in UTC with millisecond precision and a ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clean(value: Any, depth: int = 0) -> Any:
    """``value`` made JSON-safe and bounded: bytes decoded, strings cut, containers capped."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= _MAX_DEPTH:
        return str(value)[:MAX_TEXT]
    if isinstance(value, dict):
        return {str(k)[:128]: clean(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
    if isinstance(value, list | tuple | set | frozenset):
        return [clean(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    return str(value)[:MAX_TEXT]


class EventLog:
    """Writes events for one service of one decky; safe to share between threads."""

    def __init__(self, service: str, decky: str, stream: TextIO | None = None) -> None:
        self.service = service
        self.decky = decky
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()

    def emit(
        self,
        event: str,
        *,
        src_ip: str | None = None,
        src_port: int | None = None,
        dst_port: int | None = None,
        **details: Any,
    ) -> None:
        """Write one event line and flush it; ``None`` details are left out."""
        record: dict[str, Any] = {
            "ts": utc_timestamp(),
            "service": self.service,
            "decky": self.decky,
            "event": event,
            "src_ip": src_ip,
            "src_port": src_port,
            "dst_port": dst_port,
        }
        for key, value in details.items():
            if value is not None and key not in record:
                record[key] = clean(value)
        self.write_line(json.dumps(record, separators=(",", ":")))

    def write_line(self, line: str) -> None:
        """Write a raw line under the lock; a closed or broken stdout is ignored."""
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass

    def flush_and_hold(self) -> threading.Lock:
        """Flush, then keep the lock so nothing else writes while the process exits; returns the held lock."""
        self._lock.acquire()
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()
        return self._lock


def warn(message: str) -> None:
    """A diagnostic for operators, on stderr so it never mixes with the event stream."""
    try:
        sys.stderr.write(f"decnet_listeners: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
