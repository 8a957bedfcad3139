"""SMTP on 25 and 587: a Postfix (default), Exim or Sendmail look-alike (config ``mta``, ``banner``).

It answers EHLO with the MTA's usual extensions, captures AUTH PLAIN/LOGIN credentials (always refused),
accepts MAIL/RCPT/DATA and logs the envelope and a bounded excerpt of the message. ``smtp`` refuses to relay
to foreign domains like a default Postfix; ``smtp_relay`` plays an open relay and logs every relayed
recipient. STARTTLS is offered when a certificate could be made.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser

from . import sasl, tls
from .config import Settings
from .server import Listener, Session

MAX_LINE = 2048
MAX_DATA_LINE = 8192
#: Message bytes kept for hashing; the rest is counted, not stored.
MAX_BODY = 256 * 1024
#: Postfix's default message_size_limit.
MESSAGE_SIZE_LIMIT = 10_240_000
EXCERPT = 2048
MAX_ERRORS = 20
MAX_COMMANDS = 500
#: Commands that log their own, richer, event.
_SELF_LOGGED = frozenset({"AUTH", "RCPT", "DATA"})
_ADDRESS = re.compile(rb"^(?:FROM|TO):\s*<?([^<>\s]*)>?", re.IGNORECASE)


@dataclass(frozen=True)
class Dialect:
    """The replies that give an MTA away."""

    greeting: str
    ehlo_first: str
    extensions: tuple[str, ...]
    ok: str
    mail_ok: str
    rcpt_ok: str
    relay_denied: str
    data_go: str
    queued: str
    bye: str
    unknown: str
    auth_failed: str
    need_helo: str


def _rfc2822_now() -> str:
    return datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


DIALECTS: dict[str, Dialect] = {
    "postfix": Dialect(
        greeting="{host} ESMTP Postfix (Debian/GNU)",
        ehlo_first="{host}",
        extensions=(
            "PIPELINING",
            "SIZE 10240000",
            "VRFY",
            "ETRN",
            "STARTTLS",
            "AUTH PLAIN LOGIN",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
        ),
        ok="250 2.0.0 Ok",
        mail_ok="250 2.1.0 Ok",
        rcpt_ok="250 2.1.5 Ok",
        relay_denied="454 4.7.1 <{addr}>: Relay access denied",
        data_go="354 End data with <CR><LF>.<CR><LF>",
        queued="250 2.0.0 Ok: queued as {qid}",
        bye="221 2.0.0 Bye",
        unknown="502 5.5.2 Error: command not recognized",
        auth_failed="535 5.7.8 Error: authentication failed: authentication failure",
        need_helo="503 5.5.1 Error: send HELO/EHLO first",
    ),
    "exim": Dialect(
        greeting="{host} ESMTP Exim 4.96 {date}",
        ehlo_first="{host} Hello {helo} [{ip}]",
        extensions=("SIZE 52428800", "8BITMIME", "PIPELINING", "AUTH PLAIN LOGIN", "STARTTLS", "HELP"),
        ok="250 OK",
        mail_ok="250 OK",
        rcpt_ok="250 Accepted",
        relay_denied="550 relay not permitted",
        data_go='354 Enter message, ending with "." on a line by itself',
        queued="250 OK id={qid}",
        bye="221 {host} closing connection",
        unknown="500 unrecognized command",
        auth_failed="535 Incorrect authentication data",
        need_helo="503 HELO or EHLO required",
    ),
    "sendmail": Dialect(
        greeting=(
            "{host} ESMTP Sendmail 8.17.1.9/8.17.1.9/Debian-2+deb12u2; {date}; "
            "(No UCE/UBE) logging access from: [{ip}]-may be forged"
        ),
        ehlo_first="{host} Hello [{ip}], pleased to meet you",
        extensions=(
            "ENHANCEDSTATUSCODES",
            "PIPELINING",
            "EXPN",
            "VERBS",
            "8BITMIME",
            "SIZE",
            "DSN",
            "ETRN",
            "AUTH LOGIN PLAIN",
            "STARTTLS",
            "DELIVERBY",
            "HELP",
        ),
        ok="250 2.0.0 OK",
        mail_ok="250 2.1.0 <{addr}>... Sender ok",
        rcpt_ok="250 2.1.5 <{addr}>... Recipient ok",
        relay_denied="550 5.7.1 <{addr}>... Relaying denied",
        data_go='354 Enter mail, end with "." on a line by itself',
        queued="250 2.0.0 {qid} Message accepted for delivery",
        bye="221 2.0.0 {host} closing connection",
        unknown="500 5.5.1 Command unrecognized",
        auth_failed="535 5.7.0 authentication failed",
        need_helo="503 5.0.0 Polite people say HELO first",
    ),
}


@dataclass
class _Envelope:
    mail_from: str | None = None
    rcpt_to: list[str] = field(default_factory=list)


class SmtpSession:
    """One SMTP conversation."""

    def __init__(self, session: Session, settings: Settings, relay: bool, context: ssl.SSLContext | None) -> None:
        self.s = session
        self.host = settings.hostname
        self.local_domains = {self.host.lower(), settings.domain, "localhost"}
        self.relay = relay
        self.context = context
        self.dialect = DIALECTS.get(settings.text("mta", "postfix").lower(), DIALECTS["postfix"])
        self.banner = settings.text("banner", "")
        self.helo: str | None = None
        self.envelope = _Envelope()
        self.errors = 0

    def fmt(self, template: str, **extra: str) -> str:
        """Fill a dialect template."""
        values = {"host": self.host, "ip": self.s.src_ip, "date": _rfc2822_now(), "helo": self.helo or "", **extra}
        return template.format(**values)

    def reply(self, line: str) -> None:
        """Send one reply line."""
        self.s.send(line.encode("utf-8", "replace") + b"\r\n")

    def greeting(self) -> str:
        """The 220 line: the configured ``banner`` (``{hostname}`` is replaced) or the MTA's own."""
        if self.banner:
            text = self.banner.replace("{hostname}", self.host)
            return text if text.startswith("220") else f"220 {text}"
        return "220 " + self.fmt(self.dialect.greeting)

    def run(self) -> None:
        """Greet, then serve commands until QUIT, too many errors or a dropped connection."""
        self.reply(self.greeting())
        for _ in range(MAX_COMMANDS):
            line = self.s.recv_line(MAX_LINE)
            verb, _, arg = line.decode("utf-8", "replace").strip().partition(" ")
            verb = verb.upper()
            if verb not in _SELF_LOGGED:
                self.s.emit("command", command=verb, args=arg or None)
            handler = self.COMMANDS.get(verb)
            if handler is None:
                self.fail(self.dialect.unknown)
            elif handler(self, arg.strip()) is False:
                return
            if self.errors >= MAX_ERRORS:
                self.reply(f"421 4.7.0 {self.host} Error: too many errors")
                return
        self.reply(f"421 4.7.0 {self.host} Error: too many commands")

    def fail(self, line: str, **extra: str) -> None:
        """An error reply (a dialect template) that counts towards the hang-up threshold."""
        self.errors += 1
        self.reply(self.fmt(line, **extra))

    def do_helo(self, arg: str) -> None:
        """HELO: greet back, reset the envelope."""
        if not arg:
            self.fail("501 Syntax: HELO hostname")
            return
        self.helo, self.envelope = arg, _Envelope()
        self.reply(f"250 {self.host}")

    def do_ehlo(self, arg: str) -> None:
        """EHLO: the MTA's extension list."""
        if not arg:
            self.fail("501 Syntax: EHLO hostname")
            return
        self.helo, self.envelope = arg, _Envelope()
        lines = [self.fmt(self.dialect.ehlo_first)]
        lines += [ext for ext in self.dialect.extensions if ext != "STARTTLS" or (self.context and not self.s.tls)]
        body = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}\r\n"
        self.s.send(body.encode())

    def do_starttls(self, arg: str) -> None:
        """STARTTLS when a certificate exists; the session restarts as after the greeting."""
        if self.context is None or self.s.tls:
            self.fail(self.dialect.unknown)
            return
        self.reply("220 2.0.0 Ready to start TLS")
        self.s.start_tls(self.context)
        self.helo, self.envelope = None, _Envelope()

    def do_auth(self, arg: str) -> None:
        """AUTH PLAIN/LOGIN: log the credentials, refuse them."""
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        self.s.emit("command", command="AUTH", args=mechanism)
        if self.helo is None:
            self.fail(self.dialect.need_helo)
            return
        if mechanism == "PLAIN":
            response = initial.encode() if initial and initial != "=" else self._challenge(b"")
            decoded = sasl.parse_plain(sasl.b64decode(response) or b"") if response is not None else None
            if decoded is None:
                self.fail("501 5.5.2 Syntax error in parameters")
                return
            _, username, password = decoded
        elif mechanism == "LOGIN":
            user_b64 = initial.encode() if initial else self._challenge(sasl.LOGIN_USER_PROMPT)
            pass_b64 = self._challenge(sasl.LOGIN_PASS_PROMPT) if user_b64 is not None else None
            if user_b64 is None or pass_b64 is None:
                self.fail("501 5.7.0 Authentication aborted")
                return
            username, password = sasl.text(sasl.b64decode(user_b64)), sasl.text(sasl.b64decode(pass_b64))
        else:
            self.fail("535 5.7.8 Error: authentication failed: Invalid authentication mechanism")
            return
        self.s.emit("auth", mechanism=mechanism, username=username, password=password, success=False)
        self.fail(self.dialect.auth_failed)

    def _challenge(self, prompt: bytes) -> bytes | None:
        self.s.send(b"334 " + prompt + b"\r\n")
        answer = self.s.recv_line(MAX_LINE).strip()
        return None if answer == b"*" else answer

    def do_mail(self, arg: str) -> None:
        """MAIL FROM."""
        match = _ADDRESS.match(arg.encode())
        if self.helo is None:
            self.fail(self.dialect.need_helo)
        elif self.envelope.mail_from is not None:
            self.fail("503 5.5.1 Error: nested MAIL command")
        elif match is None:
            self.fail("501 5.5.4 Syntax: MAIL FROM:<address>")
        else:
            self.envelope.mail_from = match.group(1).decode("utf-8", "replace")
            self.reply(self.fmt(self.dialect.mail_ok, addr=self.envelope.mail_from))

    def do_rcpt(self, arg: str) -> None:
        """RCPT TO: local recipients always, foreign ones only on the open relay."""
        match = _ADDRESS.match(arg.encode())
        if self.envelope.mail_from is None:
            self.fail("503 5.5.1 Error: need MAIL command")
            return
        if match is None or not match.group(1):
            self.fail("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        address = match.group(1).decode("utf-8", "replace")
        local = self._is_local(address)
        if not local and not self.relay:
            self.s.emit("command", command="RCPT", rcpt_to=address, relay=True, accepted=False)
            self.fail(self.dialect.relay_denied, addr=address)
            return
        if len(self.envelope.rcpt_to) >= 100:
            self.fail("452 4.5.3 Error: too many recipients")
            return
        self.envelope.rcpt_to.append(address)
        self.s.emit("command", command="RCPT", rcpt_to=address, relay=not local, accepted=True)
        self.reply(self.fmt(self.dialect.rcpt_ok, addr=address))

    def do_data(self, arg: str) -> None:
        """DATA: read the message (bounded), log it, queue it nowhere."""
        if not self.envelope.rcpt_to:
            self.fail("503 5.5.1 Error: need RCPT command")
            return
        self.reply(self.dialect.data_go)
        kept, size = bytearray(), 0
        while True:
            line = self.s.recv_line(MAX_DATA_LINE)
            if line == b".":
                break
            if line.startswith(b".."):
                line = line[1:]
            size += len(line) + 2
            if len(kept) < MAX_BODY:
                kept += line[: MAX_BODY - len(kept)] + b"\r\n"
        qid = secrets.token_hex(5).upper()
        headers = BytesHeaderParser().parsebytes(bytes(kept))
        self.s.emit(
            "command",
            command="DATA",
            mail_from=self.envelope.mail_from,
            rcpt_to=self.envelope.rcpt_to,
            relay=any(not self._is_local(r) for r in self.envelope.rcpt_to),
            size=size,
            sha256=hashlib.sha256(kept).hexdigest(),
            truncated=size > len(kept),
            subject=headers.get("Subject"),
            body=bytes(kept[:EXCERPT]),
            queue_id=qid,
        )
        self.envelope = _Envelope()
        if size > MESSAGE_SIZE_LIMIT:
            self.fail("552 5.3.4 Error: message file too big")
            return
        self.reply(self.fmt(self.dialect.queued, qid=qid))

    def _is_local(self, address: str) -> bool:
        """Whether mail for ``address`` stays here; source routes (``%``, ``!``, ``@`` in the local part) never do."""
        local, at, domain = address.strip('"').rpartition("@")
        if not at:
            return not any(c in domain for c in "%!")
        return not any(c in local for c in '@%!"') and domain.lower() in self.local_domains

    def do_rset(self, arg: str) -> None:
        """RSET."""
        self.envelope = _Envelope()
        self.reply(self.dialect.ok)

    def do_noop(self, arg: str) -> None:
        """NOOP."""
        self.reply(self.dialect.ok)

    def do_vrfy(self, arg: str) -> None:
        """VRFY: Postfix's non-committal 252."""
        if not arg:
            self.fail("501 5.5.4 Syntax: VRFY address")
            return
        self.reply(f"252 2.0.0 {arg}")

    def do_quit(self, arg: str) -> bool:
        """QUIT."""
        self.reply(self.fmt(self.dialect.bye))
        return False

    COMMANDS = {
        "HELO": do_helo,
        "EHLO": do_ehlo,
        "STARTTLS": do_starttls,
        "AUTH": do_auth,
        "MAIL": do_mail,
        "RCPT": do_rcpt,
        "DATA": do_data,
        "RSET": do_rset,
        "NOOP": do_noop,
        "VRFY": do_vrfy,
        "QUIT": do_quit,
    }


def handle(session: Session, settings: Settings, relay: bool, context: ssl.SSLContext | None) -> None:
    """Serve one SMTP connection."""
    SmtpSession(session, settings, relay, context).run()


def listeners(settings: Settings) -> list[Listener]:
    """SMTP on 25 and submission on 587; ``smtp_relay`` accepts mail for any domain."""
    relay = settings.service == "smtp_relay" or settings.flag("open_relay", False)
    context = tls.server_context(settings.hostname)
    handler = functools.partial(handle, settings=settings, relay=relay, context=context)
    return [Listener(settings.port(25), handler), Listener(settings.port(587), handler)]
