"""NTLMSSP (MS-NLMP) server side and the SPNEGO wrapping around it, shared by SMB and LDAP.

The server never authenticates anyone: it answers NEGOTIATE with a CHALLENGE carrying the host's NetBIOS/DNS
names and Windows version, then reads the AUTHENTICATE message for the domain, user and workstation, and
the NetNTLM response in the format offline crackers expect.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from . import ber
from .config import Settings

SIGNATURE = b"NTLMSSP\x00"
SPNEGO_OID = "1.3.6.1.5.5.2"
NTLM_OID = "1.3.6.1.4.1.311.2.2.10"
NEGOTIATE, CHALLENGE, AUTHENTICATE = 1, 2, 3

_UNICODE, _OEM, _REQUEST_TARGET = 0x00000001, 0x00000002, 0x00000004
_SIGN, _SEAL, _NTLM, _ALWAYS_SIGN = 0x00000010, 0x00000020, 0x00000200, 0x00008000
_TARGET_TYPE_DOMAIN, _EXTENDED_SECURITY = 0x00010000, 0x00080000
_TARGET_INFO, _VERSION = 0x00800000, 0x02000000
_128, _KEY_EXCH, _56 = 0x20000000, 0x40000000, 0x80000000
#: Flags echoed when the client asks for them.
_ECHOED = _SIGN | _SEAL | _EXTENDED_SECURITY | _128 | _KEY_EXCH | _56
_ALWAYS = _REQUEST_TARGET | _NTLM | _ALWAYS_SIGN | _TARGET_TYPE_DOMAIN | _TARGET_INFO | _VERSION
_FILETIME_EPOCH = 11_644_473_600


def filetime(now: float | None = None) -> int:
    """A Windows FILETIME (100 ns ticks since 1601) for ``now`` (default: the current time)."""
    return int(((time.time() if now is None else now) + _FILETIME_EPOCH) * 10_000_000)


@dataclass(frozen=True)
class Identity:
    """The names and version a Windows host reveals in its NTLM challenge."""

    netbios_domain: str
    netbios_computer: str
    dns_domain: str
    dns_computer: str
    major: int = 6
    minor: int = 3
    build: int = 9600

    @classmethod
    def from_settings(cls, settings: Settings) -> Identity:
        """Names from the decky's hostname and domain; ``workgroup`` overrides the NetBIOS domain name."""
        domain = settings.domain
        computer = settings.short_hostname.upper()[:15]
        workgroup = settings.text("workgroup", domain.split(".", 1)[0]).upper()[:15]
        return cls(workgroup, computer, domain, f"{settings.short_hostname.lower()}.{domain}")


def _av(av_id: int, value: bytes) -> bytes:
    return struct.pack("<HH", av_id, len(value)) + value


def challenge_message(identity: Identity, client_flags: int, server_challenge: bytes) -> bytes:
    """A CHALLENGE message answering a NEGOTIATE that carried ``client_flags``."""
    unicode = bool(client_flags & _UNICODE) or not client_flags & _OEM
    flags = _ALWAYS | (client_flags & _ECHOED) | (_UNICODE if unicode else _OEM)

    def enc(text: str) -> bytes:
        """Encode a name in the negotiated character set."""
        return text.encode("utf-16-le") if unicode else text.encode("ascii", "replace")

    target_name = enc(identity.netbios_domain)
    target_info = b"".join(
        (
            _av(2, identity.netbios_domain.encode("utf-16-le")),
            _av(1, identity.netbios_computer.encode("utf-16-le")),
            _av(4, identity.dns_domain.encode("utf-16-le")),
            _av(3, identity.dns_computer.encode("utf-16-le")),
            _av(5, identity.dns_domain.encode("utf-16-le")),
            _av(7, struct.pack("<Q", filetime())),
            _av(0, b""),
        )
    )
    header_size = 56
    version = struct.pack("<BBH3xB", identity.major, identity.minor, identity.build, 0x0F)
    return (
        SIGNATURE
        + struct.pack("<I", CHALLENGE)
        + struct.pack("<HHI", len(target_name), len(target_name), header_size)
        + struct.pack("<I", flags)
        + server_challenge
        + b"\x00" * 8
        + struct.pack("<HHI", len(target_info), len(target_info), header_size + len(target_name))
        + version
        + target_name
        + target_info
    )


def find_message(blob: bytes) -> bytes | None:
    """The NTLMSSP message inside a raw, GSS-API or SPNEGO blob (trailing data such as a MIC is harmless)."""
    start = blob.find(SIGNATURE)
    return blob[start:] if start >= 0 and len(blob) - start >= 12 else None


def message_type(message: bytes) -> int:
    """The NTLMSSP message type (1, 2 or 3)."""
    return struct.unpack_from("<I", message, 8)[0]


def negotiate_flags(message: bytes) -> int:
    """The flags of a NEGOTIATE message (0 if it is too short to carry them)."""
    return struct.unpack_from("<I", message, 12)[0] if len(message) >= 16 else 0


def _field(message: bytes, offset: int) -> bytes:
    length, _, start = struct.unpack_from("<HHI", message, offset)
    if start + length > len(message):
        raise ValueError("NTLM field outside the message")
    return message[start : start + length]


def parse_authenticate(message: bytes, server_challenge: bytes) -> dict[str, object]:
    """Domain, user, workstation and the crackable NetNTLM response of an AUTHENTICATE message."""
    if len(message) < 64:
        raise ValueError("short AUTHENTICATE message")
    flags = struct.unpack_from("<I", message, 60)[0]
    lm, nt = _field(message, 12), _field(message, 20)
    codec = "utf-16-le" if flags & _UNICODE else "latin-1"
    domain, user, workstation = (_field(message, off).decode(codec, "replace") for off in (28, 36, 44))
    details: dict[str, object] = {
        "domain": domain,
        "username": user,
        "workstation": workstation,
        "anonymous": not user and (not nt) and lm in (b"", b"\x00"),
    }
    challenge = server_challenge.hex()
    if len(nt) > 24:
        details["ntlm_version"] = "NTLMv2"
        details["ntlm_hash"] = f"{user}::{domain}:{challenge}:{nt[:16].hex()}:{nt[16:].hex()}"
    elif len(nt) == 24:
        details["ntlm_version"] = "NTLMv1"
        details["ntlm_hash"] = f"{user}::{domain}:{lm.hex()}:{nt.hex()}:{challenge}"
    return details


def spnego_init() -> bytes:
    """The server's SPNEGO NegTokenInit offering NTLMSSP (the security buffer of an SMB negotiate response)."""
    mech_types = ber.tlv(0xA0, ber.seq(ber.oid(NTLM_OID)))
    hints = ber.tlv(0xA3, ber.seq(ber.tlv(0xA0, ber.octets("not_defined_in_RFC4178@please_ignore", tag=0x1B))))
    return ber.tlv(0x60, ber.oid(SPNEGO_OID) + ber.tlv(0xA0, ber.seq(mech_types, hints)))


def spnego_response(state: int, token: bytes | None = None, mech: bool = True) -> bytes:
    """A NegTokenResp: ``state`` 0 accept-completed, 1 accept-incomplete, 2 reject."""
    items = [ber.tlv(0xA0, ber.integer(state, tag=0x0A))]
    if mech:
        items.append(ber.tlv(0xA1, ber.oid(NTLM_OID)))
    if token is not None:
        items.append(ber.tlv(0xA2, ber.octets(token)))
    return ber.tlv(0xA1, ber.seq(*items))


def is_spnego(blob: bytes) -> bool:
    """Whether a security blob is SPNEGO-wrapped rather than a raw NTLMSSP message."""
    return blob[:1] in (b"\x60", b"\xa0", b"\xa1")
