"""DNS on 53 (UDP and TCP): an authoritative-only BIND 9 for the decky's domain.

Names of the zone (apex, ``ns1``, ``mail``, ``www``, the decky's own hostname, plus ``extra_records``) resolve
to the decky's address; unknown names in the zone get NXDOMAIN with the SOA; other zones are REFUSED (or
SERVFAIL with recursion advertised in ``recursive``/``open`` mode; nothing is ever forwarded).
``version.bind`` answers ``bind_version``; ``hostname.bind``/``id.server`` and EDNS NSID answer ``nsid``.
Every query is logged. Config: ``zone_mode``, ``domain``, ``bind_version``, ``nsid``, ``extra_records``
(zone-file lines: ``name [ttl] [IN] TYPE value``), ``address`` (default: the decky's own address). The
forwarding keys (``real_recursive``, ``upstream``, ``forward_*``, ``state_path``) are ignored on purpose.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from . import dnswire as wire
from .config import Settings, local_ip
from .events import warn
from .server import Closed, Datagram, Listener, Session, UdpListener

DEFAULT_TTL = 3600
MAX_TCP_QUERIES = 100
MAX_ANSWERS = 20
_POINTER_TO_QNAME = b"\xc0\x0c"


class Zone:
    """The records of the decky's domain, keyed by (lower-case name, type)."""

    def __init__(self, settings: Settings, address: str) -> None:
        self.origin = settings.domain
        self.records: dict[tuple[str, int], list[tuple[int, bytes]]] = defaultdict(list)
        ns, hostmaster = f"ns1.{self.origin}", f"hostmaster.{self.origin}"
        serial = int(datetime.now(UTC).strftime("%Y%m%d01"))
        soa = wire.encode_name(ns) + wire.encode_name(hostmaster) + struct.pack("!5I", serial, 3600, 900, 1209600, 300)
        self.soa = wire.record(wire.encode_name(self.origin), wire.TYPES["SOA"], wire.CLASS_IN, DEFAULT_TTL, soa)
        self.add(self.origin, wire.TYPES["SOA"], soa)
        self.add(self.origin, wire.TYPES["NS"], wire.encode_name(ns))
        self.add(self.origin, wire.TYPES["MX"], wire.rdata_for(wire.TYPES["MX"], f"10 mail.{self.origin}"))
        self.add(self.origin, wire.TYPES["TXT"], wire.txt("v=spf1 mx -all"))
        for host in ("", "ns1", "mail", "www", settings.short_hostname.lower()):
            self.add(f"{host}.{self.origin}" if host else self.origin, wire.TYPES["A"], wire.rdata_for(1, address))
        reverse = ipaddress.IPv4Address(address).reverse_pointer
        self.add(reverse, wire.TYPES["PTR"], wire.encode_name(f"{settings.short_hostname.lower()}.{self.origin}"))
        self.reverse_zone = reverse.split(".", 1)[1]
        for line in settings.text("extra_records", "").splitlines():
            self.add_line(line)

    def add(self, name: str, rtype: int, rdata: bytes, ttl: int = DEFAULT_TTL) -> None:
        """Add one record."""
        self.records[(name.lower().strip("."), rtype)].append((ttl, rdata))

    def add_line(self, line: str) -> None:
        """Add a record from a zone-file-style line (``@`` is the origin; relative names are under it)."""
        fields = line.split(";", 1)[0].split()
        if len(fields) < 3 or line.lstrip().startswith("#"):
            return
        name = fields.pop(0)
        ttl = int(fields.pop(0)) if fields[0].isdigit() else DEFAULT_TTL
        if fields[0].upper() == "IN":
            fields.pop(0)
        rtype = wire.TYPES.get(fields[0].upper())
        if rtype is None or len(fields) < 2:
            warn(f"dns: ignoring extra record {line.strip()!r}")
            return
        if name == "@":
            name = self.origin
        elif not name.endswith("."):
            name = f"{name}.{self.origin}"
        try:
            self.add(name, rtype, wire.rdata_for(rtype, " ".join(fields[1:])), ttl)
        except (ValueError, wire.DnsError) as exc:
            warn(f"dns: ignoring extra record {line.strip()!r}: {exc}")

    def contains(self, name: str) -> bool:
        """Whether this server is authoritative for ``name``."""
        return any(name == zone or name.endswith("." + zone) for zone in (self.origin, self.reverse_zone))

    def exists(self, name: str) -> bool:
        """Whether any record exists at ``name``."""
        return any(key[0] == name for key in self.records)


class NameServer:
    """Answers queries for one zone and the CHAOS identity names."""

    def __init__(self, settings: Settings) -> None:
        self.zone = Zone(settings, settings.text("address", local_ip()))
        self.mode = settings.text("zone_mode", "auth").lower()
        self.version = settings.text("bind_version", "9.18.28-1~deb12u2-Debian")
        self.nsid = settings.text("nsid", "")
        self.hostname = settings.hostname

    def answer(self, data: bytes, transport: str, emit: Callable[..., None]) -> bytes | None:
        """The response to one query (``None`` for garbage), logged through ``emit``."""
        try:
            query = wire.parse_query(data)
        except wire.DnsError:
            emit("request", transport=transport, malformed=True, size=len(data))
            return None
        if query.flags & 0x8000:
            return None  # a response, not a query: never answer those (reflection loops)
        name = query.name.lower().strip(".")
        rcode, answers, authority = self.resolve(query, name)
        emit(
            "request",
            transport=transport,
            query=query.name,
            qtype=query.type_name,
            qclass=query.qclass,
            rcode=rcode,
            answers=len(answers),
        )
        additional = [self.opt_record(query)] if query.edns_size is not None else []
        recursion = self.mode in ("recursive", "open")
        authoritative = rcode in (wire.NOERROR, wire.NXDOMAIN)
        return wire.response(query, rcode, answers, authority, additional, authoritative, recursion)

    def resolve(self, query: wire.Query, name: str) -> tuple[int, list[bytes], list[bytes]]:
        """(rcode, answers, authority) for a query."""
        if query.opcode != 0:
            return wire.NOTIMP, [], []
        if query.qclass == wire.CLASS_CH:
            return self.chaos(query, name)
        if not self.zone.contains(name):
            return (wire.SERVFAIL if self.mode in ("recursive", "open") else wire.REFUSED), [], []
        answers: list[bytes] = []
        types = [query.qtype] if query.qtype != wire.TYPES["ANY"] else [t for (n, t) in self.zone.records if n == name]
        for rtype in types:
            for ttl, rdata in self.zone.records.get((name, rtype), []):
                answers.append(wire.record(_POINTER_TO_QNAME, rtype, wire.CLASS_IN, ttl, rdata))
        if answers:
            return wire.NOERROR, answers[:MAX_ANSWERS], []
        return (wire.NOERROR if self.zone.exists(name) else wire.NXDOMAIN), [], [self.zone.soa]

    def chaos(self, query: wire.Query, name: str) -> tuple[int, list[bytes], list[bytes]]:
        """``version.bind``-style identity queries, answered like BIND."""
        values = {
            "version.bind": self.version,
            "version.server": self.version,
            "hostname.bind": self.nsid or self.hostname,
            "id.server": self.nsid or self.hostname,
        }
        value = values.get(name)
        if value is None or query.qtype not in (wire.TYPES["TXT"], wire.TYPES["ANY"]):
            return wire.REFUSED, [], []
        answer = wire.record(_POINTER_TO_QNAME, wire.TYPES["TXT"], wire.CLASS_CH, 0, wire.txt(value))
        authority = wire.record(_POINTER_TO_QNAME, wire.TYPES["NS"], wire.CLASS_CH, 0, _POINTER_TO_QNAME)
        return wire.NOERROR, [answer], [authority]

    def opt_record(self, query: wire.Query) -> bytes:
        """The EDNS OPT record of a response, with NSID when asked for and configured."""
        options = b""
        if query.nsid_requested and self.nsid:
            options = struct.pack("!HH", 3, len(self.nsid.encode())) + self.nsid.encode()
        return wire.record(b"\x00", wire.TYPES["OPT"], 1232, 0x8000 if query.edns_do else 0, options)

    def udp(self, packet: Datagram) -> bytes | None:
        """Answer a UDP query, truncating (TC) anything over the client's buffer size."""
        reply = self.answer(packet.data, "udp", packet.emit)
        if reply is None:
            return None
        query = wire.parse_query(packet.data)
        limit = max(512, min(query.edns_size or 512, 1232))
        if len(reply) > limit:
            flags = struct.unpack_from("!H", reply, 2)[0] | 0x0200
            reply = reply[:2] + struct.pack("!H", flags) + struct.pack("!4H", 1, 0, 0, 0) + query.question
        return reply

    def tcp(self, session: Session) -> None:
        """Answer length-prefixed queries on one TCP connection."""
        for _ in range(MAX_TCP_QUERIES):
            (length,) = struct.unpack("!H", session.recv_exact(2))
            reply = self.answer(session.recv_exact(length), "tcp", session.emit)
            if reply is None:
                raise Closed
            session.send(struct.pack("!H", len(reply)) + reply)


def listeners(settings: Settings) -> list[Listener | UdpListener]:
    """DNS on 53/udp and 53/tcp."""
    server = NameServer(settings)
    return [UdpListener(settings.port(53), server.udp), Listener(settings.port(53), server.tcp)]
