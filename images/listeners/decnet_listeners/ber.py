"""A small BER/DER codec: enough for LDAP, SNMP and SPNEGO.

Decoding is defensive (every length is checked against the buffer, nesting is bounded); encoding can use
Active Directory's habit of 4-byte long-form lengths on constructed types (``wide=True``).
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_DEPTH = 32


class BerError(ValueError):
    """Malformed BER."""


@dataclass(frozen=True)
class Element:
    """One decoded TLV: the identifier octet and the raw value."""

    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        """Whether the value holds nested elements."""
        return bool(self.tag & 0x20)

    def children(self) -> list[Element]:
        """The nested elements of a constructed value."""
        return decode_all(self.value)

    def integer(self) -> int:
        """The value as a signed big-endian integer."""
        if not self.value or len(self.value) > 16:
            raise BerError("bad integer")
        return int.from_bytes(self.value, "big", signed=True)

    def text(self) -> str:
        """The value as text (UTF-8, invalid bytes replaced)."""
        return self.value.decode("utf-8", "replace")


def read_header(data: bytes, pos: int = 0) -> tuple[int, int, int]:
    """(tag, value_start, value_length) of the TLV at ``pos``; raises :class:`BerError` if incomplete."""
    if pos + 2 > len(data):
        raise BerError("truncated header")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise BerError("high tag numbers are not supported")
    pos += 2
    if first < 0x80:
        return tag, pos, first
    count = first & 0x7F
    if count == 0 or count > 4 or pos + count > len(data):
        raise BerError("bad length")
    return tag, pos + count, int.from_bytes(data[pos : pos + count], "big")


def decode(data: bytes, pos: int = 0) -> tuple[Element, int]:
    """The element at ``pos`` and the position after it."""
    tag, start, length = read_header(data, pos)
    end = start + length
    if end > len(data):
        raise BerError("truncated value")
    return Element(tag, data[start:end]), end


def decode_all(data: bytes) -> list[Element]:
    """Every element in ``data``, in order."""
    items, pos = [], 0
    while pos < len(data):
        item, pos = decode(data, pos)
        items.append(item)
        if len(items) > 4096:
            raise BerError("too many elements")
    return items


def length_octets(length: int, wide: bool = False) -> bytes:
    """The BER length field: short form when possible, 4-byte long form when ``wide``."""
    if wide:
        return b"\x84" + length.to_bytes(4, "big")
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, value: bytes, wide: bool = False) -> bytes:
    """One TLV."""
    return bytes([tag]) + length_octets(len(value), wide) + value


def seq(*items: bytes, tag: int = 0x30, wide: bool = False) -> bytes:
    """A constructed value (SEQUENCE by default) of already-encoded items."""
    return tlv(tag, b"".join(items), wide)


def integer(value: int, tag: int = 0x02) -> bytes:
    """An INTEGER (or ENUMERATED with ``tag=0x0A``)."""
    size = max(1, (value.bit_length() + 8) // 8)
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def octets(value: bytes | str, tag: int = 0x04) -> bytes:
    """An OCTET STRING (or another primitive string type)."""
    return tlv(tag, value.encode() if isinstance(value, str) else value)


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER from dotted notation."""
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([parts[0] * 40 + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def oid_text(value: bytes) -> str:
    """Dotted notation of an OBJECT IDENTIFIER's value bytes."""
    if not value:
        raise BerError("empty oid")
    parts, current = [value[0] // 40, value[0] % 40], 0
    for byte in value[1:]:
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(current)
            current = 0
    return ".".join(str(p) for p in parts)
