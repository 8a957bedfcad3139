"""LLMNR on 5355/udp and mDNS on 5353/udp: a Windows-like host that logs name-resolution chatter.

Both join their multicast groups (224.0.0.252, 224.0.0.251) when bound to all interfaces. Every query is
logged (name poisoning tools and misconfigured clients show up here); like a real host, the listener only
answers for its own name (``<hostname>`` over LLMNR, ``<hostname>.local`` over mDNS), with the decky's
address. Config: ``respond`` (default true).
"""

from __future__ import annotations

from . import dnswire as wire
from .config import Settings, local_ip
from .server import Datagram, UdpListener

LLMNR_GROUP, MDNS_GROUP = "224.0.0.252", "224.0.0.251"
LLMNR_TTL, MDNS_TTL = 30, 120


class Responder:
    """Logs queries and answers those for this host's own name."""

    def __init__(self, settings: Settings) -> None:
        self.name = settings.short_hostname.lower()
        self.respond = settings.flag("respond", True)
        self.address = wire.rdata_for(wire.TYPES["A"], settings.text("address", local_ip()))

    def handle(self, packet: Datagram, protocol: str) -> bytes | None:
        """Log one packet; the reply for a query about this host, else ``None``."""
        try:
            query = wire.parse_query(packet.data)
        except wire.DnsError:
            packet.emit("request", protocol=protocol, malformed=True, size=len(packet.data))
            return None
        is_response = bool(query.flags & 0x8000)
        packet.emit("request", protocol=protocol, query=query.name, qtype=query.type_name, response=is_response or None)
        wanted = self.name if protocol == "llmnr" else f"{self.name}.local"
        if is_response or not self.respond or query.name.lower().rstrip(".") != wanted:
            return None
        if query.qtype not in (wire.TYPES["A"], wire.TYPES["ANY"]):
            return None
        query.flags &= 0x7800  # keep the opcode; the C, TC and T bits (RD in DNS) are never echoed
        if protocol == "llmnr":
            answer = wire.record(wire.encode_name(query.name), 1, wire.CLASS_IN, LLMNR_TTL, self.address)
            return wire.response(query, wire.NOERROR, [answer], authoritative=False)
        cache_flush = 0x8000 if packet.src_port == 5353 else 0
        answer = wire.record(wire.encode_name(query.name), 1, wire.CLASS_IN | cache_flush, MDNS_TTL, self.address)
        return wire.response(query, wire.NOERROR, [answer], authoritative=True)

    def llmnr(self, packet: Datagram) -> bytes | None:
        """Handle a packet on the LLMNR port."""
        return self.handle(packet, "llmnr")

    def mdns(self, packet: Datagram) -> bytes | None:
        """Handle a packet on the mDNS port."""
        return self.handle(packet, "mdns")


def listeners(settings: Settings) -> list[UdpListener]:
    """LLMNR on 5355/udp and mDNS on 5353/udp."""
    responder = Responder(settings)
    return [
        UdpListener(settings.port(5355), responder.llmnr, multicast=(LLMNR_GROUP,), protocol="llmnr"),
        UdpListener(settings.port(5353), responder.mdns, multicast=(MDNS_GROUP,), protocol="mdns"),
    ]
