"""LDAP on 389 (StartTLS) and 636 (LDAPS, when a certificate could be made): an Active Directory domain controller.

The rootDSE answers anonymously with AD's attributes (``dsServiceName``, naming contexts, functional levels),
encoded with AD's 4-byte lengths so scanners name the product. Simple binds are logged (DN and password) and
refused with AD's ``data 52e``; NTLM binds (SASL GSS-SPNEGO and Microsoft's "sicily" flavour) get a real
NTLM challenge and the AUTHENTICATE message is logged. Every other operation needs a successful bind.
Config: ``domain`` (DNS domain), ``workgroup`` (NetBIOS domain), ``site``.
"""

from __future__ import annotations

import functools
import os
import ssl
from datetime import UTC, datetime

from . import ber, ntlm, tls
from .config import Settings
from .server import Closed, Listener, Session

MAX_MESSAGE = 256 * 1024
MAX_OPERATIONS = 500
SUCCESS, OPERATIONS_ERROR, PROTOCOL_ERROR, SASL_IN_PROGRESS, INVALID_CREDENTIALS = 0, 1, 2, 14, 49
START_TLS_OID = "1.3.6.1.4.1.1466.20037"
WHOAMI_OID = "1.3.6.1.4.1.4203.1.11.3"
_AD_VERSION = "v1db1"
_BAD_CREDENTIALS = f"80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, {_AD_VERSION}\0"
_NEED_BIND = (
    "000004DC: LdapErr: DSID-0C090728, comment: In order to perform this operation a successful bind must be "
    f"completed on the connection., data 0, {_AD_VERSION}\0"
)
#: Request tag -> response tag for the write operations, all refused for want of a bind.
_WRITE_RESPONSES = {0x66: 0x67, 0x68: 0x69, 0x4A: 0x6B, 0x6C: 0x6D, 0x6E: 0x6F}
_OPERATION_NAMES = {0x66: "modify", 0x68: "add", 0x4A: "delete", 0x6C: "modifyDN", 0x6E: "compare"}


def render_filter(element: ber.Element, depth: int = 0) -> str:
    """An LDAP search filter in RFC 4515 text form (best effort, for the logs)."""
    if depth > 16:
        return "(...)"
    tag = element.tag
    if tag in (0xA0, 0xA1):
        return (
            "(" + ("&" if tag == 0xA0 else "|") + "".join(render_filter(c, depth + 1) for c in element.children()) + ")"
        )
    if tag == 0xA2:
        inner = element.children()
        return "(!" + (render_filter(inner[0], depth + 1) if inner else "") + ")"
    if tag == 0x87:
        return f"({element.text()}=*)"
    if tag in (0xA3, 0xA5, 0xA6, 0xA8):
        attr, value = element.children()[:2]
        op = {0xA3: "=", 0xA5: ">=", 0xA6: "<=", 0xA8: "~="}[tag]
        return f"({attr.text()}{op}{value.text()})"
    if tag == 0xA4:
        attr, parts = element.children()[:2]
        pieces = parts.children()
        initial = "".join(p.text() for p in pieces if p.tag == 0x80)
        middle = "".join(p.text() + "*" for p in pieces if p.tag == 0x81)
        final = "".join(p.text() for p in pieces if p.tag == 0x82)
        return f"({attr.text()}={initial}*{middle}{final})"
    return f"(?{tag:#x})"


class DirectoryServer:
    """One LDAP connection."""

    def __init__(self, session: Session, settings: Settings, context: ssl.SSLContext | None) -> None:
        self.s = session
        self.context = context
        self.identity = ntlm.Identity.from_settings(settings)
        self.site = settings.text("site", "Default-First-Site-Name")
        self.base = ",".join(f"DC={label}" for label in settings.domain.split("."))
        self.challenge = os.urandom(8)

    def read_message(self) -> list[ber.Element]:
        """The elements (messageID, protocolOp, controls) of the next LDAPMessage."""
        head = self.s.recv_exact(2)
        if head[0] != 0x30:
            raise Closed
        length = head[1]
        if length & 0x80:
            count = length & 0x7F
            if not 1 <= count <= 4:
                raise Closed
            length = int.from_bytes(self.s.recv_exact(count), "big")
        if length > MAX_MESSAGE:
            raise Closed
        return ber.decode_all(self.s.recv_exact(length))

    def send(self, message_id: int, operation: bytes) -> None:
        """Send one LDAPMessage, AD style (4-byte lengths on constructed types)."""
        self.s.send(ber.seq(ber.integer(message_id), operation, wide=True))

    def result(
        self, message_id: int, tag: int, code: int, diagnostic: str = "", matched: bytes = b"", extra: bytes = b""
    ) -> None:
        """Send an LDAPResult-shaped response."""
        body = ber.integer(code, tag=0x0A) + ber.octets(matched) + ber.octets(diagnostic) + extra
        self.send(message_id, ber.tlv(tag, body, wide=True))

    def run(self) -> None:
        """Answer operations until unbind, a malformed message or the operation cap."""
        for _ in range(MAX_OPERATIONS):
            elements = self.read_message()
            if len(elements) < 2:
                raise Closed
            message_id, operation = elements[0].integer(), elements[1]
            if operation.tag == 0x42:
                self.s.emit("command", command="unbind")
                return
            if operation.tag == 0x60:
                self.bind(message_id, operation)
            elif operation.tag == 0x63:
                self.search(message_id, operation)
            elif operation.tag == 0x77:
                self.extended(message_id, operation)
            elif operation.tag in _WRITE_RESPONSES:
                target = operation.children()[0].text() if operation.constructed else operation.text()
                self.s.emit("command", command=_OPERATION_NAMES[operation.tag], dn=target)
                self.result(message_id, _WRITE_RESPONSES[operation.tag], OPERATIONS_ERROR, _NEED_BIND)
            elif operation.tag != 0x50:
                self.s.emit("command", command=f"operation {operation.tag:#x}")
                raise Closed

    def bind(self, message_id: int, operation: ber.Element) -> None:
        """Anonymous binds succeed; simple binds are logged and refused; NTLM binds get a challenge first."""
        version, name, auth = operation.children()[:3]
        dn = name.text()
        if auth.tag == 0x80:
            password = auth.text()
            anonymous = not password
            self.s.emit(
                "auth", mechanism="simple", username=dn, password=password, version=version.integer(), success=anonymous
            )
            if anonymous:
                self.result(message_id, 0x61, SUCCESS)
            else:
                self.result(message_id, 0x61, INVALID_CREDENTIALS, _BAD_CREDENTIALS)
            return
        if auth.tag == 0x89:  # sicily package discovery
            self.result(message_id, 0x61, SUCCESS, matched=b"NTLM")
            return
        if auth.tag in (0x8A, 0x8B):  # sicily negotiate / response: a bare NTLMSSP message
            self.ntlm_step(message_id, "sicily", auth.value, sicily=True)
            return
        if auth.tag == 0xA3:
            parts = auth.children()
            mechanism = parts[0].text()
            credentials = parts[1].value if len(parts) > 1 else b""
            if ntlm.find_message(credentials) is not None:
                self.ntlm_step(message_id, mechanism, credentials, sicily=False)
                return
            self.s.emit("auth", mechanism=mechanism, username=dn, credentials=credentials.hex() or None, success=False)
        self.result(message_id, 0x61, INVALID_CREDENTIALS, _BAD_CREDENTIALS)

    def ntlm_step(self, message_id: int, mechanism: str, blob: bytes, sicily: bool) -> None:
        """One NTLM round trip inside a bind."""
        message = ntlm.find_message(blob)
        kind = ntlm.message_type(message) if message else 0
        if message is not None and kind == ntlm.NEGOTIATE:
            challenge = ntlm.challenge_message(self.identity, ntlm.negotiate_flags(message), self.challenge)
            if sicily:
                self.result(message_id, 0x61, SUCCESS, matched=challenge)
                return
            token = ntlm.spnego_response(1, challenge) if ntlm.is_spnego(blob) else challenge
            self.result(message_id, 0x61, SASL_IN_PROGRESS, extra=ber.octets(token, tag=0x87))
            return
        if message is not None and kind == ntlm.AUTHENTICATE:
            details = ntlm.parse_authenticate(message, self.challenge)
            self.s.emit("auth", mechanism=f"{mechanism}/NTLM", success=False, **details)
        self.result(message_id, 0x61, INVALID_CREDENTIALS, _BAD_CREDENTIALS)

    def search(self, message_id: int, operation: ber.Element) -> None:
        """The rootDSE for base-scope searches of the empty DN; "bind first" for everything else."""
        parts = operation.children()
        base, scope = parts[0].text(), parts[1].integer()
        wanted = [a.text() for a in parts[7].children()] if len(parts) > 7 else []
        self.s.emit(
            "request",
            operation="search",
            base=base,
            scope=scope,
            filter=render_filter(parts[6]),
            attributes=wanted or None,
        )
        if base == "" and scope == 0:
            attributes = self.root_dse()
            names = {w.lower() for w in wanted}
            if names and "*" not in names:
                attributes = [(k, v) for k, v in attributes if k.lower() in names]
            encoded = [
                ber.seq(ber.octets(key), ber.seq(*(ber.octets(v) for v in values), tag=0x31, wide=True), wide=True)
                for key, values in attributes
            ]
            entry = ber.tlv(0x64, ber.octets(b"") + ber.seq(*encoded, wide=True), wide=True)
            self.send(message_id, entry)
            self.result(message_id, 0x65, SUCCESS)
            return
        self.result(message_id, 0x65, OPERATIONS_ERROR, _NEED_BIND)

    def extended(self, message_id: int, operation: ber.Element) -> None:
        """StartTLS when TLS is available; "Who am I?" answers anonymous; anything else is unsupported."""
        name = next((c.text() for c in operation.children() if c.tag == 0x80), "")
        self.s.emit("command", command="extended", oid=name)
        if name == START_TLS_OID and self.context is not None and not self.s.tls:
            self.result(message_id, 0x78, SUCCESS, extra=ber.octets(name, tag=0x8A))
            self.s.start_tls(self.context)
        elif name == WHOAMI_OID:
            self.result(message_id, 0x78, SUCCESS, extra=ber.octets(b"", tag=0x8B))
        else:
            self.result(
                message_id,
                0x78,
                PROTOCOL_ERROR,
                f"0000203D: LdapErr: DSID-0C0C0D1F, comment: Unknown extended request OID, data 0, {_AD_VERSION}\0",
            )

    def root_dse(self) -> list[tuple[str, list[str]]]:
        """The rootDSE attributes of a Windows Server 2012 R2 domain controller, in AD's order."""
        base, site, host = self.base, self.site, self.identity.netbios_computer
        config = f"CN=Configuration,{base}"
        server = f"CN={host},CN=Servers,CN={site},CN=Sites,{config}"
        controls = [
            "1.2.840.113556.1.4.319",
            "1.2.840.113556.1.4.801",
            "1.2.840.113556.1.4.473",
            "1.2.840.113556.1.4.528",
            "1.2.840.113556.1.4.417",
            "1.2.840.113556.1.4.619",
            "1.2.840.113556.1.4.841",
            "1.2.840.113556.1.4.529",
            "1.2.840.113556.1.4.805",
            "1.2.840.113556.1.4.521",
            "1.2.840.113556.1.4.970",
            "1.2.840.113556.1.4.1338",
            "1.2.840.113556.1.4.474",
            "1.2.840.113556.1.4.1339",
            "1.2.840.113556.1.4.1340",
            "1.2.840.113556.1.4.1413",
            "2.16.840.1.113730.3.4.9",
            "2.16.840.1.113730.3.4.10",
            "1.2.840.113556.1.4.1504",
            "1.2.840.113556.1.4.1852",
            "1.2.840.113556.1.4.802",
        ]
        return [
            ("currentTime", [datetime.now(UTC).strftime("%Y%m%d%H%M%S.0Z")]),
            ("subschemaSubentry", [f"CN=Aggregate,CN=Schema,{config}"]),
            ("dsServiceName", [f"CN=NTDS Settings,{server}"]),
            (
                "namingContexts",
                [base, config, f"CN=Schema,{config}", f"DC=DomainDnsZones,{base}", f"DC=ForestDnsZones,{base}"],
            ),
            ("defaultNamingContext", [base]),
            ("rootDomainNamingContext", [base]),
            ("configurationNamingContext", [config]),
            ("schemaNamingContext", [f"CN=Schema,{config}"]),
            ("supportedControl", controls),
            ("supportedLDAPVersion", ["3", "2"]),
            (
                "supportedLDAPPolicies",
                [
                    "MaxPoolThreads",
                    "MaxPercentDirSyncRequests",
                    "MaxDatagramRecv",
                    "MaxReceiveBuffer",
                    "InitRecvTimeout",
                    "MaxConnections",
                    "MaxConnIdleTime",
                    "MaxPageSize",
                    "MaxBatchReturnMessages",
                    "MaxQueryDuration",
                    "MaxTempTableSize",
                    "MaxResultSetSize",
                    "MinResultSets",
                    "MaxResultSetsPerConn",
                    "MaxNotificationPerConn",
                    "MaxValRange",
                ],
            ),
            ("highestCommittedUSN", ["204961"]),
            ("supportedSASLMechanisms", ["GSSAPI", "GSS-SPNEGO", "EXTERNAL", "DIGEST-MD5"]),
            ("dnsHostName", [self.identity.dns_computer]),
            ("ldapServiceName", [f"{self.identity.dns_domain}:{host.lower()}$@{self.identity.dns_domain.upper()}"]),
            ("serverName", [server]),
            (
                "supportedCapabilities",
                [
                    "1.2.840.113556.1.4.800",
                    "1.2.840.113556.1.4.1670",
                    "1.2.840.113556.1.4.1791",
                    "1.2.840.113556.1.4.1935",
                    "1.2.840.113556.1.4.2080",
                    "1.2.840.113556.1.4.2237",
                ],
            ),
            ("isSynchronized", ["TRUE"]),
            ("isGlobalCatalogReady", ["TRUE"]),
            ("domainFunctionality", ["6"]),
            ("forestFunctionality", ["6"]),
            ("domainControllerFunctionality", ["6"]),
        ]


def handle(session: Session, settings: Settings, context: ssl.SSLContext | None) -> None:
    """Serve one LDAP connection."""
    try:
        DirectoryServer(session, settings, context).run()
    except (ber.BerError, IndexError) as exc:
        raise Closed from exc


def listeners(settings: Settings) -> list[Listener]:
    """LDAP on 389, and LDAPS on 636 when TLS is available."""
    fqdn = f"{settings.short_hostname.lower()}.{settings.domain}"
    context = tls.server_context(fqdn, (settings.domain,))
    handler = functools.partial(handle, settings=settings, context=context)
    specs = [Listener(settings.port(389), handler)]
    if context is not None:
        specs.append(Listener(settings.port(636), handler, tls=context))
    return specs
