"""DNS message parsing and building (RFC 1035 wire format), shared by the DNS and LLMNR/mDNS listeners."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

TYPES = {
    "A": 1,
    "NS": 2,
    "CNAME": 5,
    "SOA": 6,
    "PTR": 12,
    "MX": 15,
    "TXT": 16,
    "AAAA": 28,
    "SRV": 33,
    "OPT": 41,
    "ANY": 255,
}
TYPE_NAMES = {number: name for name, number in TYPES.items()}
CLASS_IN, CLASS_CH = 1, 3
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
MAX_POINTERS = 32


class DnsError(ValueError):
    """A malformed DNS message."""


@dataclass
class Query:
    """The parts of a query a server needs: header, first question, EDNS."""

    id: int
    flags: int
    name: str
    qtype: int
    qclass: int
    question: bytes
    edns_size: int | None = None
    edns_do: bool = False
    nsid_requested: bool = False

    @property
    def opcode(self) -> int:
        """The query's opcode (0 is a standard query)."""
        return (self.flags >> 11) & 0xF

    @property
    def type_name(self) -> str:
        """The query type's mnemonic (``A``, ``MX``...) or its number."""
        return TYPE_NAMES.get(self.qtype, str(self.qtype))


def read_name(data: bytes, pos: int) -> tuple[str, int]:
    """A (possibly compressed) domain name at ``pos`` and the position after it in the original stream."""
    labels: list[str] = []
    end: int | None = None
    for _ in range(MAX_POINTERS + 128):
        if pos >= len(data):
            raise DnsError("name runs past the message")
        length = data[pos]
        if length == 0:
            return ".".join(labels), (pos + 1 if end is None else end)
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(data):
                raise DnsError("truncated pointer")
            if end is None:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | data[pos + 1]
            continue
        if length > 63:
            raise DnsError("bad label")
        labels.append(data[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    raise DnsError("name loop")


def encode_name(name: str) -> bytes:
    """A domain name, uncompressed."""
    out = bytearray()
    for label in name.strip(".").split("."):
        if label:
            raw = label.encode("idna") if not label.isascii() else label.encode()
            out += bytes([min(len(raw), 63)]) + raw[:63]
    return bytes(out) + b"\x00"


def parse_query(data: bytes) -> Query:
    """The header, first question and EDNS OPT record of a query."""
    if len(data) < 12:
        raise DnsError("short header")
    ident, flags, qdcount, ancount, nscount, arcount = struct.unpack_from("!6H", data, 0)
    if qdcount < 1:
        raise DnsError("no question")
    name, pos = read_name(data, 12)
    if pos + 4 > len(data):
        raise DnsError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    query = Query(ident, flags, name, qtype, qclass, data[12 : pos + 4])
    pos += 4
    try:
        for _ in range(ancount + nscount + min(arcount, 8)):
            _, pos = read_name(data, pos)
            rtype, rclass, ttl, rdlength = struct.unpack_from("!HHIH", data, pos)
            pos += 10
            if rtype == TYPES["OPT"]:
                query.edns_size, query.edns_do = rclass, bool(ttl & 0x8000)
                query.nsid_requested = _has_option(data[pos : pos + rdlength], 3)
            pos += rdlength
    except (DnsError, struct.error):
        pass  # a mangled additional section does not make the question unanswerable
    return query


def _has_option(rdata: bytes, code: int) -> bool:
    pos = 0
    while pos + 4 <= len(rdata):
        option, length = struct.unpack_from("!HH", rdata, pos)
        if option == code:
            return True
        pos += 4 + length
    return False


def rdata_for(rtype: int, value: str) -> bytes:
    """Wire rdata from presentation text (A, AAAA, NS/CNAME/PTR, MX ``pref host``, TXT)."""
    if rtype == TYPES["A"]:
        return ipaddress.IPv4Address(value).packed
    if rtype == TYPES["AAAA"]:
        return ipaddress.IPv6Address(value).packed
    if rtype in (TYPES["NS"], TYPES["CNAME"], TYPES["PTR"]):
        return encode_name(value)
    if rtype == TYPES["MX"]:
        preference, _, host = value.partition(" ")
        return struct.pack("!H", int(preference)) + encode_name(host.strip())
    if rtype == TYPES["TXT"]:
        return txt(value.strip('"'))
    raise DnsError(f"unsupported record type {rtype}")


def txt(text: str) -> bytes:
    """TXT rdata: the text in 255-byte character strings."""
    raw = text.encode()
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    return b"".join(bytes([len(c)]) + c for c in chunks)


def record(name: bytes, rtype: int, rclass: int, ttl: int, rdata: bytes) -> bytes:
    """One resource record; ``name`` is already encoded (or a compression pointer)."""
    return name + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def response(
    query: Query,
    rcode: int,
    answers: Sequence[bytes] = (),
    authority: Sequence[bytes] = (),
    additional: Sequence[bytes] = (),
    authoritative: bool = True,
    recursion_available: bool = False,
) -> bytes:
    """A response echoing the query's id, opcode, RD bit and question."""
    flags = 0x8000 | (query.flags & 0x7900) | (rcode & 0xF)
    if authoritative:
        flags |= 0x0400
    if recursion_available:
        flags |= 0x0080
    header = struct.pack("!6H", query.id, flags, 1, len(answers), len(authority), len(additional))
    return header + query.question + b"".join(answers) + b"".join(authority) + b"".join(additional)
