"""Runtime settings from the container environment.

``DECNET_SERVICE`` (slug), ``DECNET_DECKY``, ``DECNET_HOSTNAME`` and ``DECNET_SERVICE_CONFIG`` (a JSON object
of the service's config keys; absent keys take the listener's defaults, unknown keys are ignored) come from
DECNET. ``DECNET_BIND`` (default ``0.0.0.0``) and ``DECNET_PORT_OFFSET`` (added to every port) exist for tests.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .events import warn

_PROCESS_START = time.time()
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class Settings:
    """What one listener process serves, as whom, and with which options."""

    service: str
    decky: str
    hostname: str
    options: Mapping[str, Any] = field(default_factory=dict)
    bind: str = "0.0.0.0"
    port_offset: int = 0

    def port(self, standard: int) -> int:
        """The port actually bound for a service's ``standard`` port."""
        return standard + self.port_offset

    def text(self, key: str, default: str) -> str:
        """Option ``key`` as a string; ``default`` when absent or empty."""
        value = self.options.get(key)
        if value is None or value == "":
            return default
        return str(value)

    def integer(self, key: str, default: int) -> int:
        """Option ``key`` as an int; ``default`` when absent or not a number."""
        try:
            return int(self.options.get(key, default))
        except (TypeError, ValueError):
            return default

    def flag(self, key: str, default: bool) -> bool:
        """Option ``key`` as a bool (true/1/yes/on, false/0/no/off); ``default`` otherwise."""
        value = self.options.get(key)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        return default

    @property
    def short_hostname(self) -> str:
        """The first label of the hostname."""
        return self.hostname.split(".", 1)[0] or "localhost"

    @property
    def boot_time(self) -> float:
        """When the decky "booted": 3 to 45 days before this process started, fixed per hostname.

        Uptimes of a few seconds (sysUpTime, SMB2 start time, mongod uptime) would give a fresh honeypot away.
        """
        seed = int.from_bytes(hashlib.sha256(self.hostname.encode()).digest()[:4], "big")
        return _PROCESS_START - 3 * 86400 - seed % (42 * 86400)

    @property
    def domain(self) -> str:
        """The DNS domain the decky claims: option ``domain``, else the hostname's suffix, else ``corp.local``."""
        configured = self.text("domain", "").strip().strip(".").lower()
        if configured:
            return configured
        if "." in self.hostname:
            return self.hostname.split(".", 1)[1].lower()
        return "corp.local"


def _options(raw: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        warn("DECNET_SERVICE_CONFIG is not valid JSON; using defaults")
        return {}
    if not isinstance(parsed, dict):
        warn("DECNET_SERVICE_CONFIG is not a JSON object; using defaults")
        return {}
    return parsed


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Settings from an environment mapping (normally ``os.environ``)."""
    hostname = environ.get("DECNET_HOSTNAME", "").strip() or socket.gethostname()
    try:
        offset = int(environ.get("DECNET_PORT_OFFSET", "0") or 0)
    except ValueError:
        offset = 0
    return Settings(
        service=environ.get("DECNET_SERVICE", "").strip(),
        decky=environ.get("DECNET_DECKY", "").strip() or hostname,
        hostname=hostname,
        options=_options(environ.get("DECNET_SERVICE_CONFIG", "")),
        bind=environ.get("DECNET_BIND", "").strip() or "0.0.0.0",
        port_offset=offset,
    )


def local_ip() -> str:
    """The address this host uses towards the outside (the decky's IP in its network namespace).

    A connected UDP socket sends nothing; it only makes the kernel pick the source address.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()
