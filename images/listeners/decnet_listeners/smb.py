"""SMB on 445 (direct TCP) and 139 (NetBIOS session service): a Windows Server 2012 R2 file server up to logon.

SMB1 NEGOTIATE offering SMB2 dialects is answered with an SMB2 response (0x02FF, or 0x0202), as Windows
does; an SMB1-only NEGOTIATE gets a Windows "NT LM 0.12" response (with the workgroup and host name, which
is how scanners fingerprint the OS). SMB2 NEGOTIATE selects 2.0.2-3.0.2 and offers NTLMSSP through SPNEGO;
SESSION_SETUP answers NTLM NEGOTIATE with a real CHALLENGE and logs the AUTHENTICATE message (domain, user,
workstation, NetNTLM hash) before refusing it with STATUS_LOGON_FAILURE. Anonymous (null) sessions are
accepted and then denied everything. Config: ``domain``, ``workgroup``, ``os_name``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import struct

from . import ntlm
from .config import Settings
from .server import Closed, Listener, Session

MAX_FRAME = 256 * 1024
MAX_MESSAGES = 200
SUCCESS, MORE_PROCESSING, INVALID_PARAMETER = 0x00000000, 0xC0000016, 0xC000000D
ACCESS_DENIED, LOGON_FAILURE, NOT_SUPPORTED, SESSION_DELETED = 0xC0000022, 0xC000006D, 0xC00000BB, 0xC0000203
NEGOTIATE, SESSION_SETUP, LOGOFF, TREE_CONNECT, ECHO = 0x0000, 0x0001, 0x0002, 0x0003, 0x000D
SMB2_DIALECTS = (0x0302, 0x0300, 0x0210, 0x0202)
_SMB2_CAPS = {0x0202: 0x01, 0x0210: 0x07, 0x02FF: 0x07, 0x0300: 0x2F, 0x0302: 0x2F}
_SMB1_CAPS = 0x0001F3FC
_EXTENDED_SECURITY = 0x0800
_UNICODE = 0x8000
_SMB2_HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")
_SMB1_HEADER = struct.Struct("<4sBIBHH8sHHHHH")


def _utf16z(text: str) -> bytes:
    return text.encode("utf-16-le") + b"\x00\x00"


def read_strings(buf: bytes, unicode: bool, count: int) -> list[str]:
    """Up to ``count`` NUL-terminated strings (UTF-16LE or 8-bit) from ``buf``."""
    out, pos = [], 0
    for _ in range(count):
        if unicode:
            end = pos
            while end + 1 < len(buf) and buf[end : end + 2] != b"\x00\x00":
                end += 2
            out.append(buf[pos:end].decode("utf-16-le", "replace"))
            pos = end + 2
        else:
            end = buf.find(b"\x00", pos)
            end = len(buf) if end < 0 else end
            out.append(buf[pos:end].decode("latin-1"))
            pos = end + 1
    return out


class SmbServer:
    """One SMB connection's state: dialect, session, NTLM challenge."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.s = session
        self.identity = ntlm.Identity.from_settings(settings)
        self.os_name = settings.text("os_name", "Windows Server 2012 R2 Standard")
        self.guid = hashlib.md5(settings.hostname.encode()).digest()
        self.challenge = os.urandom(8)
        self.session_id = 0
        self.uid = 0
        self.null_session = False
        self.boot_time = settings.boot_time

    def send(self, payload: bytes) -> None:
        """One direct-TCP / NBSS session message."""
        self.s.send(b"\x00" + len(payload).to_bytes(3, "big") + payload)

    def serve(self, netbios: bool) -> None:
        """Read frames until the peer leaves; on 139 the first frame must be a NetBIOS session request."""
        if netbios and not self.session_request():
            return
        for _ in range(MAX_MESSAGES):
            head = self.s.recv_exact(4)
            length = int.from_bytes(head[1:], "big")
            if head[0] == 0x85:
                continue
            if head[0] != 0x00 or length > MAX_FRAME:
                raise Closed
            frame = self.s.recv_exact(length)
            if frame[:4] == b"\xffSMB" and len(frame) >= 35:
                self.smb1(frame)
            elif frame[:4] == b"\xfeSMB" and len(frame) >= 64:
                self.smb2(frame)
            else:
                raise Closed

    def session_request(self) -> bool:
        """NBSS: accept a SESSION REQUEST (0x81); anything else gets Windows' negative response."""
        head = self.s.recv_exact(4)
        if head[0] != 0x81:
            self.s.send(b"\x83\x00\x00\x01\x8f")
            return False
        body = self.s.recv_exact(min(int.from_bytes(head[1:], "big"), 1024))
        called = _netbios_name(body[1:33]) if len(body) >= 34 else ""
        calling = _netbios_name(body[35:67]) if len(body) >= 68 else ""
        self.s.emit("command", command="NBSS session request", called_name=called, calling_name=calling)
        self.s.send(b"\x82\x00\x00\x00")
        return True

    # ---- SMB1 -----------------------------------------------------------------------------------------------

    def smb1(self, frame: bytes) -> None:
        """Dispatch an SMB1 message."""
        _, command, _, _, flags2, pid_high, _, _, tid, pid, _, mid = _SMB1_HEADER.unpack_from(frame)
        reply = functools.partial(self.smb1_reply, command, flags2, (pid_high, tid, pid, mid))
        if command == 0x72:
            self.smb1_negotiate(frame, flags2, reply)
        elif command == 0x73:
            self.smb1_session_setup(frame, flags2, reply)
        else:
            self.s.emit("command", command=f"SMB1 {command:#04x}")
            reply(ACCESS_DENIED if self.uid else NOT_SUPPORTED, b"", b"")

    def smb1_reply(
        self, command: int, flags2: int, ids: tuple[int, int, int, int], status: int, words: bytes, data: bytes
    ) -> None:
        """Send an SMB1 response with the request's PID/TID/MID."""
        pid_high, tid, pid, mid = ids
        out_flags2 = 0x4001 | (flags2 & (_UNICODE | _EXTENDED_SECURITY))
        header = _SMB1_HEADER.pack(
            b"\xffSMB", command, status, 0x88, out_flags2, pid_high, b"\x00" * 8, 0, tid, pid, self.uid, mid
        )
        self.send(header + bytes([len(words) // 2]) + words + struct.pack("<H", len(data)) + data)

    def smb1_negotiate(self, frame: bytes, flags2: int, reply: functools.partial[None]) -> None:
        """Prefer SMB2 when offered; else NT LM 0.12 like Windows; else "no dialect"."""
        count = struct.unpack_from("<H", frame, 33)[0]
        dialects = [d[1:].decode("latin-1") for d in frame[35 : 35 + count].split(b"\x00") if d[:1] == b"\x02"]
        self.s.emit("command", command="SMB1 negotiate", dialects=dialects)
        if "SMB 2.???" in dialects or "SMB 2.002" in dialects:
            dialect = 0x02FF if "SMB 2.???" in dialects else 0x0202
            self.smb2_send(self.negotiate_response(dialect), NEGOTIATE, 0, SUCCESS, credits=1)
            return
        if "NT LM 0.12" not in dialects:
            reply(SUCCESS, struct.pack("<H", 0xFFFF), b"")
            return
        extended = bool(flags2 & _EXTENDED_SECURITY)
        words = struct.pack(
            "<HBHHIIII",
            dialects.index("NT LM 0.12"),
            0x03,
            50,
            1,
            16644,
            65536,
            0,
            _SMB1_CAPS | (0x80000000 if extended else 0),
        )
        words += struct.pack("<QhB", ntlm.filetime(), 0, 0 if extended else 8)
        if extended:
            data = self.guid + ntlm.spnego_init()
        else:
            data = self.challenge + _utf16z(self.identity.netbios_domain) + _utf16z(self.identity.netbios_computer)
        reply(SUCCESS, words, data)

    def smb1_session_setup(self, frame: bytes, flags2: int, reply: functools.partial[None]) -> None:
        """Extended security: the NTLM exchange; otherwise plain LM/NT responses (anonymous is let in)."""
        word_count = frame[32]
        params = frame[33 : 33 + word_count * 2]
        data_start = 35 + word_count * 2
        data = frame[data_start : data_start + struct.unpack_from("<H", frame, 33 + word_count * 2)[0]]
        unicode = bool(flags2 & _UNICODE)
        native = _utf16z(f"{self.os_name} {self.identity.build}") + _utf16z(f"{self.os_name} 6.3")
        if word_count == 12:
            blob = data[: struct.unpack_from("<H", params, 14)[0]]
            status, token, _ = self.auth_step(blob, "SMB1")
            if status == SUCCESS and not self.uid:
                self.uid = random.randint(0x800, 0xFFFE)
            words = struct.pack("<BBHHH", 0xFF, 0, 0, 0, len(token or b""))
            # The response's data starts at offset 43 (header, word count, 4 words, byte count); strings align to 2.
            body = (token or b"") + (b"\x00" if (43 + len(token or b"")) % 2 else b"") + native
            reply(status, words, body if status in (SUCCESS, MORE_PROCESSING) else b"")
            return
        if word_count != 13:
            reply(INVALID_PARAMETER, b"", b"")
            return
        oem_len, uni_len = struct.unpack_from("<HH", params, 14)
        lm, nt = data[:oem_len], data[oem_len : oem_len + uni_len]
        rest_offset = data_start + oem_len + uni_len
        rest = data[oem_len + uni_len + (1 if unicode and rest_offset % 2 else 0) :]
        account, domain, native_os, native_lanman = read_strings(rest, unicode, 4)
        anonymous = not account and len(nt) == 0 and lm in (b"", b"\x00")
        details: dict[str, object] = {
            "username": account,
            "domain": domain,
            "native_os": native_os,
            "native_lanman": native_lanman,
            "anonymous": anonymous,
        }
        if len(nt) == 24:
            details["ntlm_hash"] = f"{account}::{domain}:{lm.hex()}:{nt.hex()}:{self.challenge.hex()}"
        self.s.emit("auth", mechanism="SMB1", success=anonymous, **details)
        if not anonymous:
            reply(LOGON_FAILURE, b"", b"")
            return
        self.uid = random.randint(0x800, 0xFFFE)
        pad = b"\x00" if unicode else b""  # data starts at odd offset 41; UTF-16 strings align to 2
        names = (f"{self.os_name} {self.identity.build}", f"{self.os_name} 6.3", self.identity.netbios_domain)
        strings = b"".join(_utf16z(n) if unicode else n.encode("latin-1", "replace") + b"\x00" for n in names)
        reply(SUCCESS, struct.pack("<BBHH", 0xFF, 0, 0, 0), pad + strings)

    # ---- SMB2 -----------------------------------------------------------------------------------------------

    def smb2_send(
        self, body: bytes, command: int, message_id: int, status: int, credits: int = 1, tree_id: int = 0
    ) -> None:
        """Send an SMB2 response."""
        header = _SMB2_HEADER.pack(
            b"\xfeSMB",
            64,
            0,
            status,
            command,
            credits,
            0x00000001,
            0,
            message_id,
            0xFEFF,
            tree_id,
            self.session_id,
            b"\x00" * 16,
        )
        self.send(header + body)

    def smb2_error(self, command: int, message_id: int, status: int, credits: int) -> None:
        """The SMB2 ERROR response body."""
        self.smb2_send(struct.pack("<HBBI", 9, 0, 0, 0) + b"\x00", command, message_id, status, credits)

    def negotiate_response(self, dialect: int) -> bytes:
        """An SMB2 NEGOTIATE response body selecting ``dialect``."""
        blob = ntlm.spnego_init()
        size = 8388608 if dialect != 0x0202 else 65536
        return (
            struct.pack(
                "<HHHH16sIIIIQQHHI",
                65,
                0x01,
                dialect,
                0,
                self.guid,
                _SMB2_CAPS[dialect],
                size,
                size,
                size,
                ntlm.filetime(),
                ntlm.filetime(self.boot_time),
                128,
                len(blob),
                0,
            )
            + blob
        )

    def smb2(self, frame: bytes) -> None:
        """Dispatch an SMB2 message (only the first of a compound chain is answered)."""
        fields = _SMB2_HEADER.unpack_from(frame)
        command, credit_request, message_id, tree_id, session_id = (
            fields[4],
            fields[5],
            fields[8],
            fields[10],
            fields[11],
        )
        credits = max(1, min(credit_request, 64))
        if command == NEGOTIATE:
            count = struct.unpack_from("<H", frame, 66)[0]
            offered = (
                list(struct.unpack_from(f"<{min(count, 64)}H", frame, 100)) if len(frame) >= 100 + 2 * count else []
            )
            self.s.emit("command", command="SMB2 negotiate", dialects=[f"{d:#06x}" for d in offered])
            chosen = next((d for d in SMB2_DIALECTS if d in offered), None)
            if chosen is None:
                self.smb2_error(command, message_id, NOT_SUPPORTED, credits)
                return
            self.smb2_send(self.negotiate_response(chosen), command, message_id, SUCCESS, credits)
        elif command == SESSION_SETUP:
            offset, length = struct.unpack_from("<HH", frame, 76)
            if not self.session_id:
                self.session_id = int.from_bytes(os.urandom(8), "little") & 0x0000FFFFFFFFFFFF | 0x0000040000000000
            status, token, flags = self.auth_step(frame[offset : offset + length], "SMB2")
            if status in (SUCCESS, MORE_PROCESSING):
                blob = token or b""
                self.smb2_send(
                    struct.pack("<HHHH", 9, flags, 72 if blob else 0, len(blob)) + blob,
                    command,
                    message_id,
                    status,
                    credits,
                )
            else:
                self.smb2_error(command, message_id, status, credits)
                self.session_id = 0
        elif command in (ECHO, LOGOFF):
            self.s.emit("command", command="SMB2 echo" if command == ECHO else "SMB2 logoff")
            self.smb2_send(struct.pack("<HH", 4, 0), command, message_id, SUCCESS, credits, tree_id)
        else:
            detail = None
            if command == TREE_CONNECT and len(frame) >= 72:
                path_offset, path_length = struct.unpack_from("<HH", frame, 68)
                detail = frame[path_offset : path_offset + path_length].decode("utf-16-le", "replace")
            self.s.emit("command", command=f"SMB2 {command:#06x}", path=detail)
            status = ACCESS_DENIED if self.null_session and session_id == self.session_id else SESSION_DELETED
            self.smb2_error(command, message_id, status, credits)

    # ---- NTLM -----------------------------------------------------------------------------------------------

    def auth_step(self, blob: bytes, transport: str) -> tuple[int, bytes | None, int]:
        """(status, security token, session flags) for one SESSION_SETUP security blob."""
        message = ntlm.find_message(blob)
        spnego = ntlm.is_spnego(blob)
        if message is None:
            self.s.emit("command", command=f"{transport} session setup", mechanism="non-NTLM (Kerberos?)")
            return MORE_PROCESSING, ntlm.spnego_response(1), 0
        kind = ntlm.message_type(message)
        if kind == ntlm.NEGOTIATE:
            challenge = ntlm.challenge_message(self.identity, ntlm.negotiate_flags(message), self.challenge)
            return MORE_PROCESSING, ntlm.spnego_response(1, challenge) if spnego else challenge, 0
        if kind != ntlm.AUTHENTICATE:
            return INVALID_PARAMETER, None, 0
        details = ntlm.parse_authenticate(message, self.challenge)
        self.s.emit("auth", mechanism=f"{transport}/NTLM", success=bool(details["anonymous"]), **details)
        if details["anonymous"]:
            self.null_session = True
            return SUCCESS, ntlm.spnego_response(0, mech=False) if spnego else None, 0x0002
        return LOGON_FAILURE, None, 0


def _netbios_name(encoded: bytes) -> str:
    """Decode a first-level-encoded NetBIOS name (32 bytes of 'A'-'P' pairs)."""
    pairs = range(0, len(encoded) - 1, 2)
    raw = bytes((((encoded[i] - 0x41) & 0x0F) << 4) | ((encoded[i + 1] - 0x41) & 0x0F) for i in pairs)
    return raw[:15].decode("latin-1", "replace").rstrip()


def handle(session: Session, settings: Settings, netbios: bool) -> None:
    """Serve one SMB connection."""
    try:
        SmbServer(session, settings).serve(netbios)
    except (struct.error, ValueError, IndexError) as exc:
        raise Closed from exc


def listeners(settings: Settings) -> list[Listener]:
    """SMB on 445 and NetBIOS session service on 139."""
    return [
        Listener(settings.port(445), functools.partial(handle, settings=settings, netbios=False)),
        Listener(settings.port(139), functools.partial(handle, settings=settings, netbios=True)),
    ]
