"""MQTT on 1883: a Mosquitto broker (3.1, 3.1.1 and 5.0) that accepts everyone and logs everything.

CONNECT is logged with client id, username, password and will topic, and answered with CONNACK (refused as
"not authorized" when ``require_auth`` is set). PUBLISH payloads, SUBSCRIBE filters and UNSUBSCRIBE are
logged and acknowledged; ``$SYS/#`` subscribers are told the broker version. Config: ``require_auth``,
``version`` (Mosquitto version, default 2.0.11).
"""

from __future__ import annotations

import functools
import struct

from .config import Settings
from .server import Closed, Listener, Session

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
MAX_PACKET = 256 * 1024
MAX_PACKETS = 2000
PAYLOAD_EXCERPT = 2048


class Reader:
    """Sequential decoding of an MQTT packet body; raises ``Closed`` when it runs past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        """The next ``size`` bytes."""
        if self.pos + size > len(self.data):
            raise Closed
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u8(self) -> int:
        """The next byte."""
        return self.take(1)[0]

    def u16(self) -> int:
        """The next big-endian 16-bit integer."""
        return int(struct.unpack("!H", self.take(2))[0])

    def binary(self) -> bytes:
        """A two-byte-length-prefixed field."""
        return self.take(self.u16())

    def string(self) -> str:
        """A length-prefixed UTF-8 string."""
        return self.binary().decode("utf-8", "replace")

    def varint(self) -> int:
        """A variable-length integer (at most 4 bytes)."""
        value = 0
        for shift in range(0, 28, 7):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise Closed

    def skip_properties(self) -> None:
        """Skip an MQTT 5 property block."""
        self.take(self.varint())

    def rest(self) -> bytes:
        """Everything not read yet."""
        return self.take(len(self.data) - self.pos)


def encode_varint(value: int) -> bytes:
    """MQTT's variable-length integer."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def packet(kind: int, body: bytes, flags: int = 0) -> bytes:
    """A framed control packet."""
    return bytes([(kind << 4) | flags]) + encode_varint(len(body)) + body


def read_packet(session: Session) -> tuple[int, int, bytes]:
    """(type, flags, body) of the next packet."""
    first = session.recv_exact(1)[0]
    length = 0
    for shift in range(0, 28, 7):
        byte = session.recv_exact(1)[0]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    else:
        raise Closed
    if length > MAX_PACKET:
        raise Closed
    return first >> 4, first & 0x0F, session.recv_exact(length)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether an MQTT topic filter (with ``+`` and ``#``) matches a topic."""
    filters, levels = topic_filter.split("/"), topic.split("/")
    for index, part in enumerate(filters):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(filters) == len(levels)


class Broker:
    """One client connection."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.s = session
        self.require_auth = settings.flag("require_auth", False)
        self.version = settings.text("version", "2.0.11")
        self.level = 4

    def run(self) -> None:
        """CONNECT first, then publish/subscribe traffic until DISCONNECT."""
        kind, _, body = read_packet(self.s)
        if kind != CONNECT or not self.connect(Reader(body)):
            return
        for _ in range(MAX_PACKETS):
            kind, flags, body = read_packet(self.s)
            reader = Reader(body)
            if kind == PUBLISH:
                self.publish(reader, flags)
            elif kind == PUBREL:
                self.s.send(packet(PUBCOMP, struct.pack("!H", reader.u16())))
            elif kind == SUBSCRIBE:
                self.subscribe(reader)
            elif kind == UNSUBSCRIBE:
                self.unsubscribe(reader)
            elif kind == PINGREQ:
                self.s.send(packet(PINGRESP, b""))
            elif kind == DISCONNECT:
                self.s.emit("command", command="DISCONNECT")
                return
            elif kind not in (PUBACK, PUBREC, PUBCOMP):
                raise Closed

    def connect(self, reader: Reader) -> bool:
        """Log the CONNECT and answer it; ``False`` when the connection must end."""
        protocol = reader.string()
        self.level = reader.u8()
        flags = reader.u8()
        keepalive = reader.u16()
        if self.level == 5:
            reader.skip_properties()
        client_id = reader.string()
        will_topic = None
        if flags & 0x04:
            if self.level == 5:
                reader.skip_properties()
            will_topic = reader.string()
            reader.binary()
        username = reader.string() if flags & 0x80 else None
        password = reader.binary().decode("utf-8", "replace") if flags & 0x40 else None
        refused = self.require_auth or self.level not in (3, 4, 5)
        self.s.emit(
            "auth",
            protocol=protocol,
            protocol_level=self.level,
            client_id=client_id,
            username=username,
            password=password,
            will_topic=will_topic,
            keepalive=keepalive,
            success=not refused,
        )
        if self.level == 5:
            code = 0x87 if self.require_auth else 0
            self.s.send(packet(CONNACK, bytes([0, code, 0])))
        else:
            code = 1 if self.level not in (3, 4) else (5 if self.require_auth else 0)
            self.s.send(packet(CONNACK, bytes([0, code])))
        return not refused

    def publish(self, reader: Reader, flags: int) -> None:
        """Log a PUBLISH and acknowledge it per its QoS."""
        qos = (flags >> 1) & 3
        topic = reader.string()
        packet_id = reader.u16() if qos else None
        if self.level == 5:
            reader.skip_properties()
        payload = reader.rest()
        self.s.emit(
            "command",
            command="PUBLISH",
            topic=topic,
            qos=qos,
            retain=bool(flags & 1),
            payload=payload[:PAYLOAD_EXCERPT],
            payload_size=len(payload),
        )
        if packet_id is not None:
            self.s.send(packet(PUBACK if qos == 1 else PUBREC, struct.pack("!H", packet_id)))

    def subscribe(self, reader: Reader) -> None:
        """Log a SUBSCRIBE, grant QoS 0, and feed ``$SYS`` subscribers the broker version."""
        packet_id = reader.u16()
        if self.level == 5:
            reader.skip_properties()
        filters: list[str] = []
        while reader.pos < len(reader.data) and len(filters) < 64:
            filters.append(reader.string())
            reader.u8()
        self.s.emit("command", command="SUBSCRIBE", topics=filters)
        props = b"\x00" if self.level == 5 else b""
        self.s.send(packet(SUBACK, struct.pack("!H", packet_id) + props + bytes(len(filters))))
        sys_topics = {"$SYS/broker/version": f"mosquitto version {self.version}", "$SYS/broker/clients/connected": "1"}
        for topic, value in sys_topics.items():
            if any(topic_matches(f, topic) for f in filters):
                body = struct.pack("!H", len(topic)) + topic.encode() + props + value.encode()
                self.s.send(packet(PUBLISH, body, flags=0x01))

    def unsubscribe(self, reader: Reader) -> None:
        """Log an UNSUBSCRIBE and acknowledge it."""
        packet_id = reader.u16()
        if self.level == 5:
            reader.skip_properties()
        topics: list[str] = []
        while reader.pos < len(reader.data) and len(topics) < 64:
            topics.append(reader.string())
        self.s.emit("command", command="UNSUBSCRIBE", topics=topics)
        extra = b"\x00" + bytes(len(topics)) if self.level == 5 else b""
        self.s.send(packet(UNSUBACK, struct.pack("!H", packet_id) + extra))


def handle(session: Session, settings: Settings) -> None:
    """Serve one MQTT connection."""
    Broker(session, settings).run()


def listeners(settings: Settings) -> list[Listener]:
    """MQTT on 1883."""
    return [Listener(settings.port(1883), functools.partial(handle, settings=settings))]
