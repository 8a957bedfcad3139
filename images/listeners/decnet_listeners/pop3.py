"""POP3 on 110 (STLS) and 995 (implicit TLS, only when a certificate could be made): a Dovecot look-alike.

Authorization state only: CAPA, USER/PASS and AUTH PLAIN/LOGIN (credentials logged, always refused), APOP
(logged), STLS, QUIT. Config: ``banner``.
"""

from __future__ import annotations

import functools
import ssl

from . import sasl, tls
from .config import Settings
from .server import Listener, Session

MAX_LINE = 2048
MAX_BAD = 10
MAX_COMMANDS = 200


class Pop3Session:
    """One POP3 connection in the AUTHORIZATION state."""

    def __init__(self, session: Session, settings: Settings, context: ssl.SSLContext | None) -> None:
        self.s = session
        self.context = context
        self.banner = settings.text("banner", "Dovecot (Debian) ready.")
        self.user: str | None = None
        self.bad = 0

    def ok(self, text: str = "") -> None:
        """A +OK line."""
        self.s.send(f"+OK{' ' if text else ''}{text}\r\n".encode())

    def err(self, text: str) -> None:
        """A -ERR line, counted towards the hang-up threshold."""
        self.bad += 1
        self.s.send(f"-ERR {text}\r\n".encode())

    def run(self) -> None:
        """Greet, then serve commands until QUIT or too many errors."""
        self.ok(self.banner)
        for _ in range(MAX_COMMANDS):
            line = self.s.recv_line(MAX_LINE).decode("utf-8", "replace").strip()
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb not in ("PASS", "AUTH", "APOP"):
                self.s.emit("command", command=verb, args=arg or None)
            handler = self.COMMANDS.get(verb)
            if handler is None:
                self.err("Unknown command.")
            elif handler(self, arg) is False:
                return
            if self.bad >= MAX_BAD:
                self.err("Too many bad commands.")
                return

    def do_capa(self, arg: str) -> None:
        """CAPA: Dovecot's pre-login capabilities."""
        stls = "STLS\r\n" if self.context is not None and not self.s.tls else ""
        capabilities = (
            f"CAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n{stls}USER\r\nSASL PLAIN LOGIN\r\n"
        )
        self.s.send(f"+OK\r\n{capabilities}.\r\n".encode())

    def do_user(self, arg: str) -> None:
        """USER: remember the name for PASS."""
        if not arg:
            self.err("USER: Missing argument.")
            return
        self.user = arg
        self.ok()

    def do_pass(self, arg: str) -> None:
        """PASS: log the credentials, refuse them."""
        if self.user is None:
            self.err("No username given.")
            return
        self.failed_login("USER", self.user, arg)
        self.user = None

    def do_apop(self, arg: str) -> None:
        """APOP: log the name and digest, refuse."""
        name, _, digest = arg.partition(" ")
        self.s.emit("auth", mechanism="APOP", username=name, digest=digest, success=False)
        self.err("[AUTH] Authentication failed.")

    def do_auth(self, arg: str) -> None:
        """AUTH: list mechanisms, or run PLAIN/LOGIN and refuse."""
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        if not mechanism:
            self.s.send(b"+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n")
            return
        if mechanism == "PLAIN":
            response = initial.encode() if initial and initial != "=" else self.challenge(b"")
            decoded = sasl.parse_plain(sasl.b64decode(response) or b"") if response is not None else None
            if decoded is None:
                self.err("Authentication aborted by client.")
                return
            self.failed_login("PLAIN", decoded[1], decoded[2])
        elif mechanism == "LOGIN":
            user = initial.encode() if initial else self.challenge(sasl.LOGIN_USER_PROMPT)
            password = self.challenge(sasl.LOGIN_PASS_PROMPT) if user is not None else None
            if user is None or password is None:
                self.err("Authentication aborted by client.")
                return
            self.failed_login("LOGIN", sasl.text(sasl.b64decode(user)), sasl.text(sasl.b64decode(password)))
        else:
            self.err("Unsupported authentication mechanism.")

    def challenge(self, prompt: bytes) -> bytes | None:
        """Send a SASL continuation and read the answer; ``None`` if the client cancelled."""
        self.s.send(b"+ " + prompt + b"\r\n")
        answer = self.s.recv_line(MAX_LINE).strip()
        return None if answer == b"*" else answer

    def failed_login(self, mechanism: str, username: str, password: str) -> None:
        """Log the attempt and refuse it as Dovecot does."""
        self.s.emit("auth", mechanism=mechanism, username=username, password=password, success=False)
        self.err("[AUTH] Authentication failed.")

    def do_stls(self, arg: str) -> None:
        """STLS when a certificate exists."""
        if self.context is None or self.s.tls:
            self.err("Unknown command.")
            return
        self.ok("Begin TLS negotiation now.")
        self.s.start_tls(self.context)

    def do_quit(self, arg: str) -> bool:
        """QUIT."""
        self.ok("Logging out.")
        return False

    COMMANDS = {
        "CAPA": do_capa,
        "USER": do_user,
        "PASS": do_pass,
        "APOP": do_apop,
        "AUTH": do_auth,
        "STLS": do_stls,
        "QUIT": do_quit,
    }


def handle(session: Session, settings: Settings, context: ssl.SSLContext | None) -> None:
    """Serve one POP3 connection."""
    Pop3Session(session, settings, context).run()


def listeners(settings: Settings) -> list[Listener]:
    """POP3 on 110, and POP3S on 995 when TLS is available."""
    context = tls.server_context(settings.hostname)
    handler = functools.partial(handle, settings=settings, context=context)
    specs = [Listener(settings.port(110), handler)]
    if context is not None:
        specs.append(Listener(settings.port(995), handler, tls=context))
    return specs
