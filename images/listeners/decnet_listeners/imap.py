"""IMAP on 143 (STARTTLS) and 993 (implicit TLS, only when a certificate could be made): a Dovecot look-alike.

Pre-login only: CAPABILITY, NOOP, ID, STARTTLS, LOGIN and AUTHENTICATE PLAIN/LOGIN (credentials logged, always
refused), LOGOUT. Anything else gets Dovecot's "Error in IMAP command received by server." Config: ``banner``.
"""

from __future__ import annotations

import functools
import re
import ssl

from . import sasl, tls
from .config import Settings
from .server import Closed, Listener, Session

MAX_LINE = 8192
MAX_LITERAL = 65536
MAX_TOKENS = 64
MAX_BAD = 10
MAX_COMMANDS = 200
_LITERAL = re.compile(rb"\{(\d{1,10})(\+?)\}$")
_BAD = b"BAD Error in IMAP command received by server."


def tokenize(text: bytes) -> tuple[list[bytes], tuple[int, bool] | None]:
    """Split one line into atoms and quoted strings; a trailing ``{n}``/``{n+}`` is returned as (n, synchronising)."""
    tokens: list[bytes] = []
    pos, size = 0, len(text)
    while pos < size:
        if text[pos] == 0x20:
            pos += 1
            continue
        if text[pos] == 0x22:
            out, pos = bytearray(), pos + 1
            while pos < size and text[pos] != 0x22:
                if text[pos] == 0x5C and pos + 1 < size:
                    pos += 1
                out.append(text[pos])
                pos += 1
            tokens.append(bytes(out))
            pos += 1
            continue
        literal = _LITERAL.match(text, pos)
        if literal:
            return tokens, (int(literal.group(1)), literal.group(2) != b"+")
        end = text.find(b" ", pos)
        end = size if end < 0 else end
        tokens.append(text[pos:end])
        pos = end
    return tokens, None


def read_command(session: Session) -> list[bytes]:
    """One command's tokens (tag, name, arguments), with literals read from the stream."""
    tokens, pending = tokenize(session.recv_line(MAX_LINE))
    while pending is not None:
        length, synchronising = pending
        if length > MAX_LITERAL or len(tokens) >= MAX_TOKENS:
            session.send(b"* BYE Literal too large.\r\n")
            raise Closed
        if synchronising:
            session.send(b"+ OK\r\n")
        tokens.append(session.recv_exact(length))
        more, pending = tokenize(session.recv_line(MAX_LINE))
        tokens += more
    return tokens


class ImapSession:
    """One IMAP connection in the not-authenticated state."""

    def __init__(self, session: Session, settings: Settings, context: ssl.SSLContext | None) -> None:
        self.s = session
        self.context = context
        self.banner = settings.text("banner", "Dovecot (Debian) ready.")
        self.bad = 0

    def capabilities(self) -> str:
        """The pre-login capability list, as Dovecot advertises it."""
        starttls = " STARTTLS" if self.context is not None and not self.s.tls else ""
        return f"IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+{starttls} AUTH=PLAIN AUTH=LOGIN"

    def run(self) -> None:
        """Greet, then answer commands until LOGOUT or too many errors."""
        self.s.send(f"* OK [CAPABILITY {self.capabilities()}] {self.banner}\r\n".encode())
        for _ in range(MAX_COMMANDS):
            tokens = read_command(self.s)
            if len(tokens) < 2:
                self.reply(b"*", _BAD)
                continue
            tag, name, args = tokens[0], tokens[1].upper().decode("ascii", "replace"), tokens[2:]
            if name not in ("LOGIN", "AUTHENTICATE"):
                self.s.emit("command", command=name, args=b" ".join(args) or None)
            handler = self.COMMANDS.get(name)
            if handler is None:
                self.reply(tag, _BAD)
            elif handler(self, tag, args) is False:
                return
            if self.bad >= MAX_BAD:
                self.s.send(b"* BYE Too many invalid IMAP commands.\r\n")
                return

    def reply(self, tag: bytes, text: bytes) -> None:
        """A tagged (or ``*``) response line; BAD and NO count towards the hang-up threshold."""
        if text.startswith((b"BAD", b"NO")):
            self.bad += 1
        self.s.send(tag + b" " + text + b"\r\n")

    def do_capability(self, tag: bytes, args: list[bytes]) -> None:
        """CAPABILITY: the pre-login list."""
        self.s.send(f"* CAPABILITY {self.capabilities()}\r\n".encode())
        self.reply(tag, b"OK Pre-login capabilities listed, post-login capabilities have more.")

    def do_noop(self, tag: bytes, args: list[bytes]) -> None:
        """NOOP."""
        self.reply(tag, b"OK NOOP completed.")

    def do_id(self, tag: bytes, args: list[bytes]) -> None:
        """ID (RFC 2971): Dovecot names itself."""
        self.s.send(b'* ID ("name" "Dovecot")\r\n')
        self.reply(tag, b"OK ID completed.")

    def do_logout(self, tag: bytes, args: list[bytes]) -> bool:
        """LOGOUT: BYE, then hang up."""
        self.s.send(b"* BYE Logging out\r\n")
        self.reply(tag, b"OK Logout completed.")
        return False

    def do_starttls(self, tag: bytes, args: list[bytes]) -> None:
        """STARTTLS when a certificate exists."""
        if self.context is None or self.s.tls:
            self.reply(tag, _BAD)
            return
        self.reply(tag, b"OK Begin TLS negotiation now.")
        self.s.start_tls(self.context)

    def do_login(self, tag: bytes, args: list[bytes]) -> None:
        """LOGIN user password: logged, refused."""
        if len(args) != 2:
            self.reply(tag, b"BAD Error in IMAP command LOGIN: Missing arguments.")
            return
        self.failed_login(tag, "LOGIN", sasl.text(args[0]), sasl.text(args[1]))

    def do_authenticate(self, tag: bytes, args: list[bytes]) -> None:
        """AUTHENTICATE PLAIN/LOGIN (with or without SASL-IR): logged, refused."""
        mechanism = args[0].upper().decode("ascii", "replace") if args else ""
        initial = args[1] if len(args) > 1 else None
        if mechanism == "PLAIN":
            response = initial if initial not in (None, b"=") else self.challenge(b"")
            decoded = sasl.parse_plain(sasl.b64decode(response) or b"") if response is not None else None
            if decoded is None:
                self.reply(tag, b"BAD Authentication aborted by client.")
                return
            self.failed_login(tag, "PLAIN", decoded[1], decoded[2])
        elif mechanism == "LOGIN":
            user = initial if initial is not None else self.challenge(sasl.LOGIN_USER_PROMPT)
            password = self.challenge(sasl.LOGIN_PASS_PROMPT) if user is not None else None
            if user is None or password is None:
                self.reply(tag, b"BAD Authentication aborted by client.")
                return
            self.failed_login(tag, "LOGIN", sasl.text(sasl.b64decode(user)), sasl.text(sasl.b64decode(password)))
        else:
            self.reply(tag, b"NO Unsupported authentication mechanism.")

    def challenge(self, prompt: bytes) -> bytes | None:
        """Send a SASL continuation and read the client's answer; ``None`` if it cancelled."""
        self.s.send(b"+ " + prompt + b"\r\n")
        answer = self.s.recv_line(MAX_LINE).strip()
        return None if answer == b"*" else answer

    def failed_login(self, tag: bytes, mechanism: str, username: str, password: str) -> None:
        """Log the attempt and refuse it the way Dovecot does."""
        self.s.emit("auth", mechanism=mechanism, username=username, password=password, success=False)
        self.reply(tag, b"NO [AUTHENTICATIONFAILED] Authentication failed.")

    COMMANDS = {
        "CAPABILITY": do_capability,
        "NOOP": do_noop,
        "ID": do_id,
        "LOGOUT": do_logout,
        "STARTTLS": do_starttls,
        "LOGIN": do_login,
        "AUTHENTICATE": do_authenticate,
    }


def handle(session: Session, settings: Settings, context: ssl.SSLContext | None) -> None:
    """Serve one IMAP connection."""
    ImapSession(session, settings, context).run()


def listeners(settings: Settings) -> list[Listener]:
    """IMAP on 143, and IMAPS on 993 when TLS is available."""
    context = tls.server_context(settings.hostname)
    handler = functools.partial(handle, settings=settings, context=context)
    specs = [Listener(settings.port(143), handler)]
    if context is not None:
        specs.append(Listener(settings.port(993), handler, tls=context))
    return specs
