"""PostgreSQL on 5432: the startup and password-authentication phase of a PostgreSQL 15 server.

SSLRequest and GSSENCRequest are declined ('N'); a v3 StartupMessage is logged (user, database, application)
and answered with AuthenticationCleartextPassword; the password is logged and refused with SQLSTATE 28P01.
Unsupported protocol versions get PostgreSQL 15's own error, whose source line tells scanners the version.
"""

from __future__ import annotations

import functools
import struct

from .config import Settings
from .server import Closed, Listener, Session

SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
PROTOCOL_3 = 196608
MAX_STARTUP = 10000
MAX_PASSWORD_MESSAGE = 4096
#: postmaster.c line of ProcessStartupPacket's version check in PostgreSQL 15.
_UNSUPPORTED_LINE = "2194"
_AUTH_LINE = "326"


def error_response(fields: list[tuple[str, str]]) -> bytes:
    """An ErrorResponse ('E') message from (code, value) fields."""
    body = b"".join(code.encode() + value.encode("utf-8", "replace") + b"\x00" for code, value in fields) + b"\x00"
    return b"E" + struct.pack("!I", len(body) + 4) + body


def fatal(code: str, message: str, file: str, line: str, routine: str) -> bytes:
    """A FATAL ErrorResponse in PostgreSQL 15's field order."""
    return error_response(
        [("S", "FATAL"), ("V", "FATAL"), ("C", code), ("M", message), ("F", file), ("L", line), ("R", routine)]
    )


def parse_parameters(payload: bytes) -> dict[str, str]:
    """The NUL-separated key/value pairs of a StartupMessage."""
    items = payload.split(b"\x00")
    pairs = {}
    for index in range(0, len(items) - 1, 2):
        key = items[index].decode("utf-8", "replace")
        if not key:
            break
        pairs[key[:64]] = items[index + 1].decode("utf-8", "replace")
    return pairs


def handle(session: Session, settings: Settings) -> None:
    """Serve one PostgreSQL connection up to the (always failed) password check."""
    for _ in range(3):  # at most SSLRequest, GSSENCRequest, then the real startup packet
        (length,) = struct.unpack("!I", session.recv_exact(4))
        if length < 8 or length > MAX_STARTUP:
            # PostgreSQL reports this to its own log only (COMMERROR) and just hangs up.
            session.emit("command", command="invalid startup packet", length=length)
            return
        (code,) = struct.unpack("!I", session.recv_exact(4))
        payload = session.recv_exact(length - 8)
        if code in (SSL_REQUEST, GSSENC_REQUEST):
            session.emit("command", command="SSLRequest" if code == SSL_REQUEST else "GSSENCRequest")
            session.send(b"N")
            continue
        if code == CANCEL_REQUEST:
            session.emit("command", command="CancelRequest")
            return
        if code != PROTOCOL_3:
            major, minor = code >> 16, code & 0xFFFF
            session.emit("command", command="StartupMessage", protocol=f"{major}.{minor}")
            session.send(
                fatal(
                    "0A000",
                    f"unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0",
                    "postmaster.c",
                    _UNSUPPORTED_LINE,
                    "ProcessStartupPacket",
                )
            )
            return
        params = parse_parameters(payload)
        user = params.get("user", "")
        session.emit(
            "request",
            command="StartupMessage",
            username=user,
            database=params.get("database", user),
            application=params.get("application_name"),
            parameters=params,
        )
        if not user:
            session.send(
                fatal(
                    "28000",
                    "no PostgreSQL user name specified in startup packet",
                    "postmaster.c",
                    "2275",
                    "ProcessStartupPacket",
                )
            )
            return
        session.send(b"R" + struct.pack("!II", 8, 3))
        kind = session.recv_exact(1)
        (size,) = struct.unpack("!I", session.recv_exact(4))
        if kind != b"p" or not 4 < size <= MAX_PASSWORD_MESSAGE:
            raise Closed
        password = session.recv_exact(size - 4).rstrip(b"\x00").decode("utf-8", "replace")
        session.emit(
            "auth",
            username=user,
            password=password,
            database=params.get("database", user),
            mechanism="cleartext",
            success=False,
        )
        session.send(
            fatal("28P01", f'password authentication failed for user "{user}"', "auth.c", _AUTH_LINE, "auth_failed")
        )
        return


def listeners(settings: Settings) -> list[Listener]:
    """PostgreSQL on 5432."""
    return [Listener(settings.port(5432), functools.partial(handle, settings=settings))]
