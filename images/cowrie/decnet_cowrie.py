"""Entrypoint of the ``decnet/cowrie`` image: Cowrie serving one DECNET service, ``ssh`` (22) or ``telnet`` (23).

Environment (the contract of every DECNET service container):

- ``DECNET_SERVICE``: ``ssh`` or ``telnet``; the other protocol stays disabled;
- ``DECNET_DECKY``: the decky's name; ``DECNET_HOSTNAME``: the hostname the fake shell shows, unless the
  service config sets ``hostname``;
- ``DECNET_SERVICE_CONFIG``: a JSON object. Keys: ``password`` (root's password, default ``admin``), ``user``
  (one unprivileged account, default ``ubuntu`` for ssh and ``admin`` for telnet), ``user_password`` (default
  ``admin``), ``hostname``; ssh also ``version`` (the SSH identification string). Unknown keys are ignored.

Exactly those two accounts log in (with exactly those passwords); every attempt is still logged.

Output: stdout carries only Cowrie's JSON events (``output_jsonlog``), one object per line; Cowrie's own log goes
to stderr. Start-up: as root, bind the port and hand the listening socket to Cowrie through the systemd
socket-activation protocol (``LISTEN_FDS``), then drop to the ``cowrie`` user and run ``twistd`` in-process.
Exit status 2 means the environment is invalid.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import socket
import sys
from pathlib import Path
from typing import Any

SERVICE_PORTS: dict[str, int] = {"ssh": 22, "telnet": 23}
DEFAULT_USERS: dict[str, str] = {"ssh": "ubuntu", "telnet": "admin"}
DEFAULT_PASSWORD = "admin"
DEFAULT_SSH_VERSION = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"

STATE_DIR = Path("/srv/cowrie")
DOWNLOAD_DIR = Path("/var/lib/systemd/coredump")
TWISTD = "/opt/cowrie/bin/twistd"
RUN_AS = "cowrie"
#: First inherited descriptor of the socket-activation protocol; the event stream goes right after the socket.
LISTEN_FD = 3
EVENTS_FD = 4

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
SSH_VERSION = re.compile(r"^SSH-2\.0-[\x21-\x2c\x2e-\x7e]+(?: [\x20-\x7e]*)?$")
PLAIN_CREDENTIAL = re.compile(r"^[A-Za-z0-9_.@+=,~%^&()\[\]{}<>?;'\"`\\| -]+$")


class ConfigError(ValueError):
    """The container's environment cannot be turned into a Cowrie configuration."""


def load_service_config(raw: str | None) -> dict[str, Any]:
    """``DECNET_SERVICE_CONFIG`` as a dict (empty when unset); ``ConfigError`` unless it is a JSON object."""
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"DECNET_SERVICE_CONFIG is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError("DECNET_SERVICE_CONFIG must be a JSON object")
    return value


def _text(cfg: dict[str, Any], key: str, default: str) -> str:
    value = cfg.get(key)
    if value is None or (isinstance(value, str) and value == ""):
        return default
    return str(value)


def shell_hostname(cfg: dict[str, Any], fallback: str) -> str:
    """The prompt's hostname: config ``hostname``, else ``fallback``; anything not a valid hostname is refused."""
    name = _text(cfg, "hostname", fallback).strip()
    if not HOSTNAME.match(name) or len(name) > 253:
        raise ConfigError(f"invalid hostname {name!r}")
    return name


def ssh_version(cfg: dict[str, Any]) -> str:
    """The SSH identification string: config ``version`` when it is a valid ``SSH-2.0-...`` line, else Debian 12's."""
    version = _text(cfg, "version", DEFAULT_SSH_VERSION).strip()
    return version if SSH_VERSION.match(version) and len(version) <= 253 else DEFAULT_SSH_VERSION


def userdb_rule(value: str) -> str:
    """A Cowrie userdb field matching exactly ``value``.

    Plain values are written as they are; anything Cowrie's format would misread (``:``, a leading ``!`` or ``/``,
    ``*``, non-ASCII) becomes an anchored ``/.../`` regex over the UTF-8 bytes, every other byte hex-escaped.
    """
    if value and value != "*" and value[0] not in "!/" and PLAIN_CREDENTIAL.match(value):
        return value
    escaped = "".join(chr(b) if chr(b).isalnum() and b < 128 else f"\\x{b:02x}" for b in value.encode("utf-8"))
    return f"/^{escaped}$/"


def userdb(service: str, cfg: dict[str, Any]) -> str:
    """``etc/userdb.txt``: root with ``password`` and ``user`` with ``user_password``; nothing else logs in."""
    root_password = _text(cfg, "password", DEFAULT_PASSWORD)
    user = _text(cfg, "user", DEFAULT_USERS[service]).strip() or DEFAULT_USERS[service]
    user_password = _text(cfg, "user_password", DEFAULT_PASSWORD)
    lines = ["# Written at start-up from DECNET_SERVICE_CONFIG; user:x:password (see decnet_cowrie.py)."]
    lines.append(f"root:x:{userdb_rule(root_password)}")
    if user != "root":
        lines.append(f"{userdb_rule(user)}:x:{userdb_rule(user_password)}")
    return "\n".join(lines) + "\n"


def _ini_value(value: str) -> str:
    """A value safe in Cowrie's config (ExtendedInterpolation: ``$`` doubles; no line breaks)."""
    return value.replace("\r", " ").replace("\n", " ").replace("$", "$$")


def cowrie_config(service: str, hostname: str, cfg: dict[str, Any], *, events_path: str, sensor: str) -> str:
    """``etc/cowrie.cfg`` enabling only ``service`` on the inherited socket, JSON events to ``events_path``.

    ``sensor`` (the decky's name) is the ``sensor`` field of every event.
    """
    if service not in SERVICE_PORTS:
        raise ConfigError(f"DECNET_SERVICE={service!r} is not served by this image (ssh, telnet)")
    endpoint = "systemd:domain=INET:index=0"
    return f"""\
# Written at start-up by decnet_cowrie.py; Cowrie's bundled cowrie.cfg.dist supplies every other default.
[honeypot]
hostname = {_ini_value(hostname)}
sensor_name = {_ini_value(sensor)}
log_path = var/log/cowrie
state_path = var/lib/cowrie
download_path = {DOWNLOAD_DIR}
etc_path = etc
logtype = plain
timezone = UTC
auth_class = UserDB

[ssh]
enabled = {"true" if service == "ssh" else "false"}
version = {_ini_value(ssh_version(cfg))}
listen_endpoints = {endpoint}

[telnet]
enabled = {"true" if service == "telnet" else "false"}
listen_endpoints = {endpoint}

[output_jsonlog]
enabled = true
logfile = {events_path}
epoch_timestamp = false
"""


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    sock.listen(128)
    return sock


# --- telnet greeting -----------------------------------------------------------------------------------------

TELNET_TTYPE, TELNET_TSPEED, TELNET_XDISPLOC, TELNET_NEW_ENVIRON = b"\x18", b"\x20", b"\x23", b"\x27"
#: Seconds the telnet login prompt waits for a client that sends nothing (no option answers, no text).
TELNET_PROMPT_DELAY = 10.0


def patch_telnet_greeting() -> None:
    """Make Cowrie's telnet greeting negotiate like Debian's telnetd instead of like Cowrie.

    Cowrie asks for NAWS and prints its login prompt at once, a greeting scanners fingerprint as Cowrie. After
    this patch the server first asks for TTYPE, TSPEED, XDISPLOC and NEW-ENVIRON (Debian's telnetd's opening),
    and sends Cowrie's banner, login prompt and NAWS request once the client sends anything, or after
    ``TELNET_PROMPT_DELAY`` seconds. Must run inside the Cowrie process, before the reactor starts.
    """
    from cowrie.telnet.userauth import HoneyPotTelnetAuthProtocol
    from twisted.internet import defer, reactor

    original_made = HoneyPotTelnetAuthProtocol.connectionMade
    original_enable_remote = HoneyPotTelnetAuthProtocol.enableRemote
    asked = (TELNET_TTYPE, TELNET_TSPEED, TELNET_XDISPLOC)

    def ignore(_failure: Any) -> None:
        return None

    def enable_remote(self: Any, option: bytes) -> bool:
        # Twisted insists that options we asked for and the client accepted are enabled.
        return option in asked or bool(original_enable_remote(self, option))

    def connection_made(self: Any) -> None:
        transport = self.transport
        held: list[bytes] = []
        chained: list[bytes] = []
        # Let Cowrie set its protocol up, but hold back what it sends (banner, prompt) and the options it asks.
        transport.write = held.append
        transport.doChain = lambda option: (chained.append(option), defer.Deferred())[1]
        try:
            original_made(self)
        finally:
            del transport.write
            del transport.doChain
        for option in (*asked, TELNET_NEW_ENVIRON):
            transport.do(option).addErrback(ignore)
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            if timer.active():
                timer.cancel()
            tcp = getattr(transport, "transport", None)
            if tcp is None or getattr(tcp, "disconnected", False):
                return
            for option in chained:
                transport.doChain(option).addErrback(ignore)
            for data in held:
                transport.write(data)

        timer = reactor.callLater(TELNET_PROMPT_DELAY, release)  # type: ignore[attr-defined]
        received = transport.dataReceived

        def data_received(data: bytes) -> None:
            if not data.startswith(b"\xff"):
                release()  # text first (a bot typing blind): the prompt goes before its echo
            received(data)
            release()

        transport.dataReceived = data_received

    HoneyPotTelnetAuthProtocol.connectionMade = connection_made  # type: ignore[method-assign]
    HoneyPotTelnetAuthProtocol.enableRemote = enable_remote  # type: ignore[method-assign]


# --- start-up ---------------------------------------------------------------------------------------------------


def main() -> int:
    """Validate the environment, write Cowrie's config, bind, drop privileges and run Cowrie (in this process)."""
    service = os.environ.get("DECNET_SERVICE", "").strip().lower()
    decky = os.environ.get("DECNET_DECKY", "").strip() or socket.gethostname()
    try:
        cfg = load_service_config(os.environ.get("DECNET_SERVICE_CONFIG"))
        hostname = shell_hostname(cfg, os.environ.get("DECNET_HOSTNAME", "").strip() or decky)
        config = cowrie_config(service, hostname, cfg, events_path=f"/proc/self/fd/{EVENTS_FD}", sensor=decky)
        users = userdb(service, cfg)
    except ConfigError as exc:
        print(f"decnet_cowrie: {exc}", file=sys.stderr)
        return 2
    account = pwd.getpwnam(RUN_AS)
    etc = STATE_DIR / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "cowrie.cfg").write_text(config, encoding="utf-8")
    userdb_path = etc / "userdb.txt"
    userdb_path.write_text(users, encoding="ascii")
    os.chown(userdb_path, 0, account.pw_gid)
    userdb_path.chmod(0o640)
    # A host directory mounted over the quarantine arrives root-owned.
    DOWNLOAD_DIR.mkdir(parents=True, exist_ok=True)
    os.chown(DOWNLOAD_DIR, account.pw_uid, account.pw_gid)

    listen_fd = _listening_socket(SERVICE_PORTS[service]).detach()
    if listen_fd != LISTEN_FD:
        os.dup2(listen_fd, LISTEN_FD)
        os.close(listen_fd)
    # Events keep the container's stdout; Cowrie's text log (twistd's stdout) goes to stderr. Cowrie opens the
    # event stream by path once it runs as `cowrie`, so that user must own it.
    sys.stdout.flush()
    os.dup2(1, EVENTS_FD)
    with contextlib.suppress(OSError):
        os.fchown(EVENTS_FD, account.pw_uid, account.pw_gid)
    os.dup2(2, 1)

    os.setgroups([])
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
    os.environ.update(HOME=str(STATE_DIR), LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES=service)
    os.chdir(STATE_DIR)
    port = SERVICE_PORTS[service]
    print(f"decnet_cowrie: {service} on port {port} as {RUN_AS}, hostname {hostname}", file=sys.stderr)
    sys.stderr.flush()
    # Twisted and Cowrie read LISTEN_FDS and ./etc/cowrie.cfg when first imported: only from here on.
    if service == "telnet":
        patch_telnet_greeting()
    from twisted.scripts.twistd import run

    sys.argv = [TWISTD, "-n", "--umask=0022", "--pidfile=", "--logger", "cowrie.python.logfile.stdoutLogger", "cowrie"]
    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
