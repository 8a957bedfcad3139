"""A tiny BSON codec for the MongoDB listener.

Encodes dict/list/str/bytes/bool/int/float/None/datetime plus :class:`Int64` and :class:`ObjectId`; decodes
every common element type (exotic ones become descriptive strings) with bounds and depth checks.
"""

from __future__ import annotations

import os
import struct
import time
from datetime import UTC, datetime
from typing import Any

_MAX_DEPTH = 32


class BsonError(ValueError):
    """Malformed BSON."""


class Int64(int):
    """An int that must be encoded as a BSON int64 even when it is small."""


class ObjectId(bytes):
    """A 12-byte BSON ObjectId."""

    @classmethod
    def generate(cls) -> ObjectId:
        """A new id: a timestamp followed by random bytes."""
        return cls(struct.pack(">I", int(time.time())) + os.urandom(8))


def _cstring(key: str) -> bytes:
    return key.replace("\x00", "").encode("utf-8") + b"\x00"


def _element(key: str, value: Any) -> bytes:
    name = _cstring(key)
    if isinstance(value, bool):
        return b"\x08" + name + (b"\x01" if value else b"\x00")
    if isinstance(value, Int64):
        return b"\x12" + name + struct.pack("<q", value)
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return b"\x10" + name + struct.pack("<i", value)
        return b"\x12" + name + struct.pack("<q", value)
    if isinstance(value, float):
        return b"\x01" + name + struct.pack("<d", value)
    if isinstance(value, str):
        raw = value.encode("utf-8") + b"\x00"
        return b"\x02" + name + struct.pack("<i", len(raw)) + raw
    if isinstance(value, dict):
        return b"\x03" + name + encode(value)
    if isinstance(value, list | tuple):
        return b"\x04" + name + encode({str(i): v for i, v in enumerate(value)})
    if isinstance(value, ObjectId):
        return b"\x07" + name + bytes(value)
    if isinstance(value, bytes):
        return b"\x05" + name + struct.pack("<iB", len(value), 0) + value
    if isinstance(value, datetime):
        return b"\x09" + name + struct.pack("<q", int(value.timestamp() * 1000))
    if value is None:
        return b"\x0a" + name
    raise TypeError(f"cannot encode {type(value).__name__} as BSON")


def encode(document: dict[str, Any]) -> bytes:
    """A BSON document."""
    body = b"".join(_element(key, value) for key, value in document.items())
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def _read_cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.find(b"\x00", pos)
    if end < 0:
        raise BsonError("unterminated cstring")
    return data[pos:end].decode("utf-8", "replace"), end + 1


def _read_string(data: bytes, pos: int) -> tuple[str, int]:
    (size,) = struct.unpack_from("<i", data, pos)
    if size < 1 or pos + 4 + size > len(data):
        raise BsonError("bad string length")
    return data[pos + 4 : pos + 3 + size].decode("utf-8", "replace"), pos + 4 + size


def _fixed(data: bytes, pos: int, size: int) -> int:
    if pos + size > len(data):
        raise BsonError("truncated value")
    return pos + size


def _value(kind: int, data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if kind == 0x01:
        return struct.unpack_from("<d", data, _fixed(data, pos, 8) - 8)[0], pos + 8
    if kind in (0x02, 0x0D, 0x0E):
        return _read_string(data, pos)
    if kind in (0x03, 0x04):
        (size,) = struct.unpack_from("<i", data, pos)
        document = _decode(data[pos : _fixed(data, pos, size)], depth + 1)
        return (list(document.values()) if kind == 0x04 else document), pos + size
    if kind == 0x05:
        (size,) = struct.unpack_from("<i", data, pos)
        end = _fixed(data, pos + 5, max(size, 0))
        return data[pos + 5 : end], end
    if kind == 0x07:
        return ObjectId(data[pos : _fixed(data, pos, 12)]), pos + 12
    if kind == 0x08:
        return data[pos : _fixed(data, pos, 1)] != b"\x00", pos + 1
    if kind == 0x09:
        millis = struct.unpack_from("<q", data, _fixed(data, pos, 8) - 8)[0]
        try:
            return datetime.fromtimestamp(millis / 1000, UTC), pos + 8
        except (OverflowError, OSError, ValueError):
            return millis, pos + 8
    if kind in (0x06, 0x0A, 0x7F, 0xFF):
        return None, pos
    if kind == 0x0B:
        pattern, pos = _read_cstring(data, pos)
        flags, pos = _read_cstring(data, pos)
        return f"/{pattern}/{flags}", pos
    if kind == 0x10:
        return struct.unpack_from("<i", data, _fixed(data, pos, 4) - 4)[0], pos + 4
    if kind in (0x11, 0x12):
        return struct.unpack_from("<q", data, _fixed(data, pos, 8) - 8)[0], pos + 8
    if kind == 0x13:
        return f"Decimal128({data[pos : _fixed(data, pos, 16)].hex()})", pos + 16
    if kind == 0x0F:
        (size,) = struct.unpack_from("<i", data, pos)
        return "<code with scope>", _fixed(data, pos, size)
    if kind == 0x0C:
        name, pos = _read_string(data, pos)
        return f"DBPointer({name})", _fixed(data, pos, 12)
    raise BsonError(f"unknown BSON type {kind:#x}")


def _decode(data: bytes, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise BsonError("too deep")
    if len(data) < 5:
        raise BsonError("short document")
    (size,) = struct.unpack_from("<i", data, 0)
    if size != len(data) or data[-1] != 0:
        raise BsonError("bad document length")
    document: dict[str, Any] = {}
    pos = 4
    while pos < size - 1:
        kind = data[pos]
        key, pos = _read_cstring(data, pos + 1)
        document[key], pos = _value(kind, data, pos, depth)
    return document


def decode(data: bytes) -> dict[str, Any]:
    """One BSON document that fills ``data`` exactly."""
    try:
        return _decode(data, 0)
    except struct.error as exc:
        raise BsonError(str(exc)) from exc


def decode_prefix(data: bytes, pos: int = 0) -> tuple[dict[str, Any], int]:
    """The document starting at ``pos`` and the position after it."""
    if pos + 4 > len(data):
        raise BsonError("truncated document")
    (size,) = struct.unpack_from("<i", data, pos)
    if size < 5 or pos + size > len(data):
        raise BsonError("bad document length")
    return decode(data[pos : pos + size]), pos + size
