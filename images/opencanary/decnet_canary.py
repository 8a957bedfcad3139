"""Entrypoint of the ``decnet/opencanary`` image: one DECNET service, served by one OpenCanary module.

Environment (the contract of every DECNET service container):

- ``DECNET_SERVICE``: ``ftp``, ``http``, ``https``, ``mysql``, ``mssql``, ``redis``, ``rdp``, ``vnc``, ``sip``,
  ``snmp`` or ``tftp``; only that module is enabled, on its usual port (see ``SERVICE_PORTS``);
- ``DECNET_DECKY``: the decky's name, OpenCanary's ``device.node_id`` (so it is in every event);
- ``DECNET_HOSTNAME``: the hostname the decky presents (default CN of the https certificate);
- ``DECNET_SERVICE_CONFIG``: a JSON object of the service's config keys; absent keys take the defaults below,
  unknown keys are ignored. Mapped keys: ftp ``banner``; http/https ``server_header``, ``fake_app`` (none,
  wordpress, phpmyadmin, tomcat, jenkins, nas), ``custom_body``, ``response_code``, ``extra_headers``; https
  ``tls_cn``, ``tls_cert``, ``tls_key``; mysql ``version``; mssql ``version`` (2008R2, 2012 or 2014 prelogin);
  redis ``version``, ``os_string``; rdp ``nla``; vnc ``version``; sip ``user_agent``; snmp ``community``,
  ``sys_descr``. (``http_versions`` is ignored: the server speaks HTTP/1.1 only.)

Where OpenCanary's module is log-only or answers less than the real server, this entrypoint adds the answers
(an open Redis for PING/INFO/..., Asterisk-like SIP replies, SNMP system-group replies, a Windows RDP
negotiation answer, extra HTTP headers); every OpenCanary event stays as it is.

Output: stdout carries only OpenCanary's events, one JSON object per line; everything else goes to stderr.
The listening socket is bound as root, then the process drops to ``nobody`` before it serves anything.
Exit status 2 means the environment is invalid.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import os
import pwd
import re
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

#: service -> (port, transport). OpenCanary's module of the same name serves it.
SERVICE_PORTS: dict[str, tuple[int, str]] = {
    "ftp": (21, "tcp"),
    "http": (80, "tcp"),
    "https": (443, "tcp"),
    "mysql": (3306, "tcp"),
    "mssql": (1433, "tcp"),
    "redis": (6379, "tcp"),
    "rdp": (3389, "tcp"),
    "vnc": (5900, "tcp"),
    "sip": (5060, "udp"),
    "snmp": (161, "udp"),
    "tftp": (69, "udp"),
}

#: service -> (module, class) of the OpenCanary service implementing it.
MODULE_CLASSES: dict[str, tuple[str, str]] = {
    "ftp": ("opencanary.modules.ftp", "CanaryFTP"),
    "http": ("opencanary.modules.http", "CanaryHTTP"),
    "https": ("opencanary.modules.https", "CanaryHTTPS"),
    "mysql": ("opencanary.modules.mysql", "CanaryMySQL"),
    "mssql": ("opencanary.modules.mssql", "MSSQL"),
    "redis": ("opencanary.modules.redis", "CanaryRedis"),
    "rdp": ("opencanary.modules.rdp", "CanaryRDP"),
    "vnc": ("opencanary.modules.vnc", "CanaryVNC"),
    "sip": ("opencanary.modules.sip", "CanarySIP"),
    "snmp": ("opencanary.modules.snmp", "CanarySNMP"),
    "tftp": ("opencanary.modules.tftp", "CanaryTftp"),
}

DEFAULT_FTP_BANNER = "(vsFTPd 3.0.3)"
DEFAULT_HTTP_SERVER = "Apache/2.4.62 (Debian)"
DEFAULT_MYSQL_VERSION = "5.5.5-10.11.6-MariaDB-0+deb12u1"
DEFAULT_MSSQL_VERSION = "2012"
DEFAULT_REDIS_VERSION = "7.0.15"
DEFAULT_REDIS_OS = "Linux 6.1.0-28-amd64 x86_64"
DEFAULT_VNC_VERSION = "003.008"
DEFAULT_SIP_SERVER = "Asterisk PBX 18.21.0"
DEFAULT_SNMP_COMMUNITY = "public"
DEFAULT_SNMP_LOCATION = "Sitting on the Dock of the Bay"
DEFAULT_SNMP_CONTACT = "Me <me@example.org>"
VNC_VERSIONS = ("003.003", "003.007", "003.008")
#: OpenCanary only accepts MySQL banners matching this; others are set on the module after it is built.
OPENCANARY_MYSQL_BANNER = re.compile(r"^[3456]\.[-_~.+\w]+$")
MYSQL_VERSION = re.compile(r"^[\x21-\x7e]{1,60}$")

#: fake_app -> skin directory under skins/ (``nas`` is OpenCanary's own nasLogin skin).
FAKE_APP_SKINS: dict[str, str] = {
    "none": "login",
    "wordpress": "wordpress",
    "phpmyadmin": "phpmyadmin",
    "tomcat": "tomcat",
    "jenkins": "jenkins",
}
NAS_SKIN = "nasLogin"

CONFIG_PATH = Path("/etc/opencanaryd/opencanary.conf")
RUN_DIR = Path("/run/decnet")
SKINS_DIR = Path(__file__).resolve().parent / "skins"
RUN_AS = "nobody"
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class ConfigError(ValueError):
    """The container's environment cannot be turned into an OpenCanary configuration."""


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
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    return str(value).replace("\r", " ").replace("\n", " ").strip()


def mysql_version(cfg: dict[str, Any]) -> str:
    """The MySQL server version of the handshake: config ``version`` if printable ASCII, else the default."""
    version = _text(cfg, "version", DEFAULT_MYSQL_VERSION)
    return version if MYSQL_VERSION.match(version) else DEFAULT_MYSQL_VERSION


def mssql_version(cfg: dict[str, Any]) -> str:
    """OpenCanary's MSSQL prelogin flavour (2008R2, 2012, 2014) for config ``version``.

    ``version`` may be a release year (``2019``) or a build number (``15.0.2000.5``); releases after 2014
    answer like 2014, the newest OpenCanary knows.
    """
    value = _text(cfg, "version", DEFAULT_MSSQL_VERSION).upper().replace(" ", "")
    build = re.match(r"^(\d+)\.\d+", value)
    if build and int(build.group(1)) < 100:
        major = int(build.group(1))
        if major <= 10:
            return "2008R2"
        return "2012" if major == 11 else "2014"
    if "2008" in value:
        return "2008R2"
    if "2012" in value:
        return "2012"
    if any(year in value for year in ("2014", "2016", "2017", "2019", "2022", "2025")):
        return "2014"
    return DEFAULT_MSSQL_VERSION


def vnc_version(cfg: dict[str, Any]) -> str:
    """The RFB version the VNC server announces (``003.003``, ``003.007`` or ``003.008``) for config ``version``."""
    found = re.search(r"(\d{3})\.(\d{3})", _text(cfg, "version", DEFAULT_VNC_VERSION))
    version = f"{found.group(1)}.{found.group(2)}" if found else DEFAULT_VNC_VERSION
    return version if version in VNC_VERSIONS else DEFAULT_VNC_VERSION


def nla_required(cfg: dict[str, Any]) -> bool:
    """Config ``nla``: whether the RDP server insists on Network Level Authentication (CredSSP)."""
    value = cfg.get("nla", False)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def response_code(cfg: dict[str, Any]) -> int | None:
    """Config ``response_code`` of the login page when it is a valid non-200 status, else None."""
    try:
        code = int(cfg.get("response_code") or 200)
    except (TypeError, ValueError):
        return None
    return code if 100 <= code <= 599 and code != 200 else None


def extra_headers(cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """Config ``extra_headers`` (a dict, its JSON text, or ``Name: value`` lines) as safe header pairs."""
    value = cfg.get("extra_headers")
    if isinstance(value, str) and value.strip().startswith("{"):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    pairs: list[tuple[str, str]] = []
    if isinstance(value, dict):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, str):
        for line in value.splitlines():
            name, sep, val = line.partition(":")
            if sep:
                pairs.append((name, val))
    cleaned: list[tuple[str, str]] = []
    for name, val in pairs:
        name = name.strip()
        val = val.replace("\r", " ").replace("\n", " ").strip()
        if HEADER_NAME.match(name):
            cleaned.append((name, val))
    return cleaned


def skin_name(cfg: dict[str, Any]) -> str:
    """The skin for config ``fake_app``: one of ``FAKE_APP_SKINS``' values, ``nasLogin``, or ``custom``."""
    if _text(cfg, "custom_body", ""):
        return "custom"
    app = _text(cfg, "fake_app", "none").lower()
    if app == "nas":
        return NAS_SKIN
    return FAKE_APP_SKINS.get(app, FAKE_APP_SKINS["none"])


def canary_config(
    service: str,
    decky: str,
    hostname: str,
    cfg: dict[str, Any],
    *,
    skin_dir: str = "",
    tls_dir: str = "/run/decnet/tls",
) -> dict[str, Any]:
    """The ``opencanary.conf`` content for ``service``: that module only, on its port, with mapped config keys."""
    if service not in SERVICE_PORTS:
        raise ConfigError(f"DECNET_SERVICE={service!r} is not served by this image ({', '.join(SERVICE_PORTS)})")
    port, _transport = SERVICE_PORTS[service]
    conf: dict[str, Any] = {
        "device.node_id": decky,
        "device.listen_addr": "",
        "ip.ignorelist": [],
        "logtype.ignorelist": [],
        f"{service}.enabled": True,
        f"{service}.port": port,
        "logger": {
            "class": "PyLogger",
            "kwargs": {
                "formatters": {"plain": {"format": "%(message)s"}},
                "handlers": {
                    "events": {"class": "logging.StreamHandler", "stream": "ext://sys.__stdout__", "formatter": "plain"}
                },
            },
        },
    }
    if service == "ftp":
        conf["ftp.banner"] = _text(cfg, "banner", DEFAULT_FTP_BANNER)
    elif service in ("http", "https"):
        skin = skin_name(cfg)
        conf.update(
            {
                "http.banner": _text(cfg, "server_header", DEFAULT_HTTP_SERVER),
                "http.skin": skin,
                "http.skindir": skin_dir,
                "http.log_unimplemented_method_requests": True,
                "http.log_redirect_request": True,
            }
        )
        if service == "https":
            conf.update(
                {
                    "https.skin": skin,
                    "https.domain_name": _text(cfg, "tls_cn", hostname),
                    "https.certificate": f"{tls_dir}/server.crt",
                    "https.key": f"{tls_dir}/server.key",
                }
            )
    elif service == "mysql":
        version = mysql_version(cfg)
        conf["mysql.banner"] = version if OPENCANARY_MYSQL_BANNER.match(version) else "5.7.44"
        conf["mysql.log_connection_made"] = True
    elif service == "mssql":
        conf["mssql.version"] = mssql_version(cfg)
    return conf


# --- run time (inside the image) ----------------------------------------------------------------------------


def _opencanary_skin(name: str) -> Path:
    spec = importlib.util.find_spec("opencanary")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("OpenCanary is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "modules" / "data" / "http" / "skin" / name


def prepare_skin(cfg: dict[str, Any]) -> Path:
    """Assemble the skin directory OpenCanary serves (login page + error pages); returns its path."""
    skin = skin_name(cfg)
    if skin == NAS_SKIN:
        return _opencanary_skin(NAS_SKIN)
    target = RUN_DIR / "skin"
    shutil.rmtree(target, ignore_errors=True)
    (target / "static").mkdir(parents=True)
    for page in (SKINS_DIR / "_common").iterdir():
        shutil.copyfile(page, target / page.name)
    body = cfg.get("custom_body")
    if skin == "custom" and isinstance(body, str):
        index = body
    else:
        index = (SKINS_DIR / skin / "index.html").read_text(encoding="utf-8")
    (target / "index.html").write_text(index, encoding="utf-8")
    return target


def prepare_tls(cfg: dict[str, Any], tls_dir: Path, common_name: str) -> None:
    """Install config ``tls_cert``/``tls_key`` (PEM), or make a self-signed pair for ``common_name``.

    The self-signed certificate looks like Debian's ``ssl-cert`` snakeoil one: subject ``CN=<name>`` only, a
    matching DNS subject alternative name, RSA 2048, ten years.
    """
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert, key = tls_dir / "server.crt", tls_dir / "server.key"
    cert_pem, key_pem = cfg.get("tls_cert"), cfg.get("tls_key")
    if isinstance(cert_pem, str) and isinstance(key_pem, str) and cert_pem.strip() and key_pem.strip():
        cert_bytes, key_bytes = (cert_pem.strip() + "\n").encode(), (key_pem.strip() + "\n").encode()
    else:
        cert_bytes, key_bytes = self_signed_certificate(common_name)
    key.unlink(missing_ok=True)
    key.touch(mode=0o600)
    key.write_bytes(key_bytes)
    cert.write_bytes(cert_bytes)


def self_signed_certificate(common_name: str) -> tuple[bytes, bytes]:
    """A fresh self-signed certificate and its RSA key for ``common_name``, both PEM."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name[:253])]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def drop_privileges(user: str) -> None:
    """Switch to ``user`` (and its group, no supplementary groups) when running as root."""
    if os.getuid() != 0:
        return
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ["HOME"] = entry.pw_dir


def install_http_overrides(headers: list[tuple[str, str]], code: int | None) -> None:
    """Add ``headers`` to every HTTP response and answer the login page with ``code`` (OpenCanary has neither)."""
    if not headers and code is None:
        return
    from twisted.web.server import Request

    original = Request.process

    def process(self: Request) -> None:
        for name, value in headers:
            self.setHeader(name, value)
        if code is not None and self.path == b"/index.html":
            self.setResponseCode(code)
        original(self)

    Request.process = process  # type: ignore[method-assign]


def _resp_bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _resp_array(items: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(_resp_bulk(item) for item in items)


def redis_info(version: str, os_string: str, *, started: float, pid: int, run_id: str) -> bytes:
    """The ``INFO`` reply body of an idle, password-less Redis ``version`` on ``os_string``."""
    import time

    uptime = int(time.time() - started)
    sections = {
        "Server": [
            f"redis_version:{version}",
            "redis_git_sha1:00000000",
            "redis_git_dirty:0",
            "redis_mode:standalone",
            f"os:{os_string}",
            "arch_bits:64",
            "multiplexing_api:epoll",
            "gcc_version:12.2.0",
            f"process_id:{pid}",
            f"run_id:{run_id}",
            "tcp_port:6379",
            f"uptime_in_seconds:{uptime}",
            f"uptime_in_days:{uptime // 86400}",
            "hz:10",
            "executable:/usr/bin/redis-server",
            "config_file:/etc/redis/redis.conf",
        ],
        "Clients": ["connected_clients:1", "blocked_clients:0"],
        "Memory": ["used_memory:875432", "used_memory_human:854.91K", "maxmemory:0", "maxmemory_policy:noeviction"],
        "Persistence": ["loading:0", "rdb_changes_since_last_save:0", "rdb_bgsave_in_progress:0", "aof_enabled:0"],
        "Replication": ["role:master", "connected_slaves:0"],
        "Keyspace": [],
    }
    lines: list[str] = []
    for title, fields in sections.items():
        lines += [f"# {title}", *fields, ""]
    return "\r\n".join(lines).encode()


def redis_reply(command: bytes, args: list[bytes], info: bytes) -> bytes:
    """What an open (password-less) Redis answers to a valid ``command``; writes are acknowledged and dropped."""
    name = command.upper()
    if name == b"PING":
        return _resp_bulk(args[0]) if args else b"+PONG\r\n"
    if name == b"ECHO":
        return _resp_bulk(args[0])
    if name == b"INFO":
        return _resp_bulk(info)
    if name == b"AUTH":
        return (
            b"-ERR AUTH <password> called without any password configured for the default user. "
            b"Are you sure your configuration is correct?\r\n"
        )
    if name == b"CONFIG GET":
        known = {b"dir": b"/var/lib/redis", b"dbfilename": b"dump.rdb", b"appendonly": b"no", b"save": b""}
        pattern = args[0].lower() if args else b""
        return _resp_array([item for key, value in known.items() if pattern in (key, b"*") for item in (key, value)])
    if name in (b"GET", b"HGET", b"LPOP", b"RPOP", b"SPOP", b"RANDOMKEY"):
        return b"$-1\r\n"
    if name in (b"DEL", b"UNLINK", b"EXISTS", b"DBSIZE", b"LLEN", b"SCARD", b"HLEN", b"INCR", b"DECR"):
        return b":1\r\n" if name in (b"INCR",) else b":0\r\n"
    if name in (b"TTL", b"PTTL"):
        return b":-2\r\n"
    if name in (b"KEYS", b"COMMAND", b"HGETALL", b"SMEMBERS", b"LRANGE", b"MGET"):
        return b"*0\r\n"
    if name in (b"SCAN", b"HSCAN", b"SSCAN", b"ZSCAN"):
        return b"*2\r\n$1\r\n0\r\n*0\r\n"
    if name == b"TYPE":
        return b"+none\r\n"
    if name == b"BGSAVE":
        return b"+Background saving started\r\n"
    if name == b"MODULE LOAD":
        return b"-ERR Error loading the extension. Please check the server logs.\r\n"
    return b"+OK\r\n"


def install_redis_responses(version: str, os_string: str) -> None:
    """Answer like an open Redis (PING, INFO, ...) where OpenCanary's module answers NOAUTH to everything.

    OpenCanary's validation (unknown command, argument count) and its one event per command are kept.
    """
    import random
    import time

    from opencanary.modules import redis as canary_redis

    protocol = canary_redis.RedisProtocol
    started = time.time() - random.randint(3 * 86400, 60 * 86400)
    pid, run_id = random.randint(400, 2000), os.urandom(20).hex()

    def respond(self: Any, command: bytes, args: list[bytes]) -> None:
        upper = command.upper()
        self._logAlert(command, args)
        spec = self.COMMANDS.get(upper)
        if spec is None:
            self.transport.write(canary_redis.UnknownCommandError(command, args).message)
            return
        if len(args) < spec.arg_min_count or (spec.arg_max_count is not None and len(args) > spec.arg_max_count):
            self.transport.write(canary_redis.ArgumentCountError(command).message)
            return
        info = redis_info(version, os_string, started=started, pid=pid, run_id=run_id)
        self.transport.write(redis_reply(upper, args, info))
        if upper == b"QUIT":
            self.transport.loseConnection()

    protocol._buildResponseAndSend = respond


def rdp_negotiation_response(request: bytes, *, nla: bool) -> bytes:
    """The X.224 Connection Confirm a Windows server sends for the Connection Request ``request``.

    It selects CredSSP (NLA) when ``nla`` and the client offers it, TLS when NLA is off and the client offers
    TLS, and standard RDP security otherwise; a client without CredSSP facing NLA gets a negotiation failure.
    """
    requested = 0
    if len(request) >= 19 and request[-8] == 0x01 and request[-6:-4] == b"\x08\x00":
        requested = int.from_bytes(request[-4:], "little")
    header = b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00"
    if nla and not requested & 0x2:
        return header + b"\x03\x00\x08\x00" + (5).to_bytes(4, "little")  # HYBRID_REQUIRED_BY_SERVER
    selected = 2 if nla else (1 if requested & 0x1 else 0)
    return header + b"\x02\x1f\x08\x00" + selected.to_bytes(4, "little")


def install_rdp_negotiation(canary: Any, *, nla: bool) -> None:
    """Replace OpenCanary's fixed RDP answer by :func:`rdp_negotiation_response`; the event is unchanged."""
    from opencanary.modules import rdp as canary_rdp

    class NegotiatingRDP(canary_rdp.RemoteDesktopProtocol):  # type: ignore[misc, name-defined]
        def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
            found = re.search(rb"mstshash=([A-Za-z0-9_@.\\-]*)", data)
            self.factory.log(logdata={"USERNAME": found.group(1).decode() if found else None}, transport=self.transport)
            if self.initial_connection:
                self.initial_connection = False
                self.transport.write(rdp_negotiation_response(data, nla=nla))
            else:
                self.transport.loseConnection()

    canary.protocol = NegotiatingRDP


def sip_response(request: Any, *, server: str) -> Any:
    """The response an Asterisk-like registrar gives ``request``: 200 to OPTIONS, a digest challenge otherwise."""
    from twisted.protocols import sip as twisted_sip

    method = str(request.method).upper()
    code = 200 if method == "OPTIONS" else 401
    response = twisted_sip.Response(code)
    for header in ("via", "from", "to", "call-id", "cseq"):
        for value in request.headers.get(header, []):
            if header == "to" and ";tag=" not in value:
                value = f"{value};tag=as{os.urandom(4).hex()}"
            response.addHeader(header, value)
    response.addHeader("server", server)
    response.addHeader("allow", "INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE")
    response.addHeader("supported", "replaces, timer")
    if code == 401:
        response.addHeader("www-authenticate", f'Digest algorithm=MD5, realm="asterisk", nonce="{os.urandom(4).hex()}"')
    response.addHeader("content-length", "0")
    return response


def install_sip_responses(server: str) -> None:
    """Answer SIP requests (OpenCanary's SIP module only logs them); ACKs stay unanswered."""
    from opencanary.modules import sip as canary_sip

    original = canary_sip.SIPServer.handle_request

    def handle_request(self: Any, request: Any, addr: tuple[str, int]) -> None:
        original(self, request, addr)
        if str(getattr(request, "method", "ACK")).upper() == "ACK":
            return
        with contextlib.suppress(Exception):
            self.transport.write(sip_response(request, server=server).toString().encode("utf-8"), addr)

    canary_sip.SIPServer.handle_request = handle_request


def install_snmp_responses(community: str, sys_descr: str, sys_name: str) -> None:
    """Answer SNMP v1/v2c GET and GETNEXT on the system group for ``community``; other communities get silence.

    OpenCanary's SNMP module only logs; its event per request is kept.
    """
    import time

    from opencanary.modules import snmp as canary_snmp
    from scapy.all import SNMP, SNMPnext, SNMPresponse, SNMPvarbind
    from scapy.asn1.asn1 import ASN1_OID, ASN1_STRING, ASN1_TIME_TICKS

    started = time.time()
    system = "1.3.6.1.2.1.1"
    table: dict[str, Any] = {
        f"{system}.1.0": lambda: ASN1_STRING(sys_descr.encode()),
        f"{system}.2.0": lambda: ASN1_OID("1.3.6.1.4.1.8072.3.2.10"),
        f"{system}.3.0": lambda: ASN1_TIME_TICKS(int((time.time() - started) * 100)),
        f"{system}.4.0": lambda: ASN1_STRING(DEFAULT_SNMP_CONTACT.encode()),
        f"{system}.5.0": lambda: ASN1_STRING(sys_name.encode()),
        f"{system}.6.0": lambda: ASN1_STRING(DEFAULT_SNMP_LOCATION.encode()),
    }

    def oid_key(oid: str) -> tuple[int, ...]:
        return tuple(int(part) for part in oid.strip(".").split(".") if part.isdigit())

    ordered = sorted(table, key=oid_key)
    original = canary_snmp.MiniSNMP.datagramReceived

    def datagram_received(self: Any, data: bytes, addr: tuple[str, int]) -> None:
        original(self, data, addr)
        with contextlib.suppress(Exception):
            request = SNMP(data)
            if request.community.val != community.encode():
                return
            pdu = request.PDU
            getnext = isinstance(pdu, SNMPnext)
            bindings = []
            for index, binding in enumerate(pdu.varbindlist, start=1):
                oid = binding.oid.val
                if getnext:
                    oid = next((o for o in ordered if oid_key(o) > oid_key(oid)), "")
                if oid not in table:
                    error = SNMPresponse(id=pdu.id, error=2, error_index=index, varbindlist=pdu.varbindlist)
                    self.transport.write(
                        bytes(SNMP(version=request.version, community=request.community, PDU=error)), addr
                    )
                    return
                bindings.append(SNMPvarbind(oid=ASN1_OID(oid), value=table[oid]()))
            answer = SNMP(
                version=request.version, community=request.community, PDU=SNMPresponse(id=pdu.id, varbindlist=bindings)
            )
            self.transport.write(bytes(answer), addr)

    canary_snmp.MiniSNMP.datagramReceived = datagram_received


def serve(service: str, cfg: dict[str, Any], hostname: str) -> int:
    """Start the OpenCanary module of ``service`` from ``CONFIG_PATH`` and run the reactor until stopped."""
    from twisted.application import service as app_service
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)

    from opencanary.config import config  # reads and validates CONFIG_PATH (exits on errors)
    from opencanary.logger import getLogger

    logger = getLogger(config)
    module_name, class_name = MODULE_CLASSES[service]
    canary = getattr(importlib.import_module(module_name), class_name)(config=config, logger=logger)
    if service == "mysql":
        canary.banner = mysql_version(cfg).encode()
    if service in ("http", "https"):
        install_http_overrides(extra_headers(cfg), response_code(cfg))
    elif service == "redis":
        install_redis_responses(_text(cfg, "version", DEFAULT_REDIS_VERSION), _text(cfg, "os_string", DEFAULT_REDIS_OS))
    elif service == "rdp":
        install_rdp_negotiation(canary, nla=nla_required(cfg))
    elif service == "vnc":
        canary.protocol = functools.partial(canary.protocol, version=vnc_version(cfg).encode())
    elif service == "sip":
        install_sip_responses(_text(cfg, "user_agent", DEFAULT_SIP_SERVER))
    elif service == "snmp":
        install_snmp_responses(
            _text(cfg, "community", DEFAULT_SNMP_COMMUNITY),
            _text(cfg, "sys_descr", f"Linux {hostname} 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 x86_64"),
            hostname,
        )
    services = canary.getService()
    application = app_service.Application("opencanaryd")
    for svc in services if isinstance(services, list) else [services]:
        svc.setServiceParent(application)
    top = app_service.IService(application)
    top.privilegedStartService()
    drop_privileges(RUN_AS)
    top.startService()
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)  # type: ignore[attr-defined]
    port, transport = SERVICE_PORTS[service]
    print(f"decnet_canary: {service} listening on {port}/{transport} as {RUN_AS}", file=sys.stderr, flush=True)
    reactor.run()  # type: ignore[attr-defined]
    return 0


def main() -> int:
    """Validate the environment, write ``opencanary.conf`` and serve; returns the process exit status."""
    service = os.environ.get("DECNET_SERVICE", "").strip().lower()
    decky = os.environ.get("DECNET_DECKY", "").strip() or socket.gethostname()
    hostname = os.environ.get("DECNET_HOSTNAME", "").strip() or decky
    try:
        cfg = load_service_config(os.environ.get("DECNET_SERVICE_CONFIG"))
        if service not in SERVICE_PORTS:
            raise ConfigError(f"DECNET_SERVICE={service!r} is not served by this image ({', '.join(SERVICE_PORTS)})")
        # OpenCanary prints banners and notices on stdout: stdout is for events only.
        sys.stdout = sys.stderr
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        skin_dir = str(prepare_skin(cfg)) if service in ("http", "https") else ""
        tls_dir = RUN_DIR / "tls"
        if service == "https":
            prepare_tls(cfg, tls_dir, _text(cfg, "tls_cn", hostname))
        conf = canary_config(service, decky, hostname, cfg, skin_dir=skin_dir, tls_dir=str(tls_dir))
    except ConfigError as exc:
        print(f"decnet_canary: {exc}", file=sys.stderr)
        return 2
    CONFIG_PATH.parent.mkdir(parents=True, exist_ok=True)
    CONFIG_PATH.write_text(json.dumps(conf, indent=2, sort_keys=True), encoding="utf-8")
    return serve(service, cfg, hostname)


if __name__ == "__main__":
    sys.exit(main())
