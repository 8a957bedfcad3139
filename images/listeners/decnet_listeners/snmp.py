"""SNMP v1/v2c agent (161/udp) for the conpot service: the MIB-II system group of a Siemens PLC.

Community strings are credentials, so every request is logged with its community. Only the configured
``community`` (default ``public``) gets answers (GET, GETNEXT, GETBULK over the system group; SET is
refused as read-only); wrong communities are ignored, as real agents do.
"""

from __future__ import annotations

import time

from . import ber
from .config import Settings
from .server import Datagram

GET, GETNEXT, RESPONSE, SET, GETBULK = 0xA0, 0xA1, 0xA2, 0xA3, 0xA5
NO_SUCH_NAME, READ_ONLY, NOT_WRITABLE = 2, 4, 17
NO_SUCH_OBJECT, END_OF_MIB = 0x80, 0x82
MAX_VARBINDS = 16


def _oid_key(dotted: str) -> tuple[int, ...]:
    return tuple(int(part) for part in dotted.split(".") if part.isdigit())


class Agent:
    """The system group and request handling."""

    def __init__(self, settings: Settings) -> None:
        self.community = settings.text("community", "public")
        self.boot_time = settings.boot_time
        self.mib: dict[tuple[int, ...], bytes] = {
            _oid_key("1.3.6.1.2.1.1.1.0"): ber.octets(
                settings.text(
                    "sys_descr", "Siemens, SIMATIC S7, CPU 1215C DC/DC/DC, 6ES7 215-1AG40-0XB0, HW: 5, FW: V4.4.0"
                )
            ),
            _oid_key("1.3.6.1.2.1.1.2.0"): ber.oid("1.3.6.1.4.1.4329.6.1.2"),
            _oid_key("1.3.6.1.2.1.1.3.0"): b"",  # sysUpTime, computed per request
            _oid_key("1.3.6.1.2.1.1.4.0"): ber.octets(settings.text("sys_contact", "")),
            _oid_key("1.3.6.1.2.1.1.5.0"): ber.octets(settings.hostname),
            _oid_key("1.3.6.1.2.1.1.6.0"): ber.octets(settings.text("sys_location", "")),
            _oid_key("1.3.6.1.2.1.1.7.0"): ber.integer(72),
        }
        self.order = sorted(self.mib)

    def value(self, key: tuple[int, ...]) -> bytes:
        """The encoded value of a known OID."""
        if key == _oid_key("1.3.6.1.2.1.1.3.0"):
            return ber.integer(int((time.time() - self.boot_time) * 100) & 0xFFFFFFFF, tag=0x43)
        return self.mib[key]

    def next_key(self, key: tuple[int, ...]) -> tuple[int, ...] | None:
        """The first known OID after ``key``."""
        return next((k for k in self.order if k > key), None)

    def handle(self, packet: Datagram) -> bytes | None:
        """Log a request; answer it when the community matches."""
        try:
            message = ber.decode(packet.data)[0].children()
            version = message[0].integer()
            if version not in (0, 1):
                packet.emit("request", protocol="snmp", version="v3" if version == 3 else str(version))
                return None
            community, pdu = message[1].value, message[2]
            fields = pdu.children()
            request_id = fields[0].integer()
            oids = [ber.oid_text(vb.children()[0].value) for vb in fields[3].children()[:MAX_VARBINDS]]
        except (ber.BerError, IndexError, ValueError):
            packet.emit("request", protocol="snmp", malformed=True, size=len(packet.data))
            return None
        names = {GET: "get", GETNEXT: "getnext", SET: "set", GETBULK: "getbulk"}
        packet.emit(
            "request",
            protocol="snmp",
            version=f"v{version + 1 if version < 2 else 3}",
            community=community.decode("utf-8", "replace"),
            operation=names.get(pdu.tag, hex(pdu.tag)),
            oids=oids,
        )
        if community.decode("utf-8", "replace") != self.community or pdu.tag not in names:
            return None
        v1 = version == 0
        error, error_index, bindings = 0, 0, []
        for index, dotted in enumerate(oids, start=1):
            key = _oid_key(dotted)
            if pdu.tag == SET:
                error, error_index = (NO_SUCH_NAME if v1 else NOT_WRITABLE), index
                bindings.append((key, ber.tlv(0x05, b"")))
                continue
            target = key if pdu.tag == GET else self.next_key(key)
            repeat = min(fields[2].integer(), 10) if pdu.tag == GETBULK else 1
            for _ in range(max(repeat, 1)):
                if target is not None and target in self.mib:
                    bindings.append((target, self.value(target)))
                    target = self.next_key(target) if pdu.tag == GETBULK else None
                    continue
                if v1:
                    error, error_index = NO_SUCH_NAME, index
                bindings.append((target or key, ber.tlv(NO_SUCH_OBJECT if pdu.tag == GET else END_OF_MIB, b"")))
                break
        if v1 and error:
            bindings = [(_oid_key(o), ber.tlv(0x05, b"")) for o in oids]
        varbinds = ber.seq(*(ber.seq(ber.oid(".".join(map(str, k))), v) for k, v in bindings))
        response = ber.tlv(RESPONSE, ber.integer(request_id) + ber.integer(error) + ber.integer(error_index) + varbinds)
        return ber.seq(ber.integer(version), ber.octets(community), response)
