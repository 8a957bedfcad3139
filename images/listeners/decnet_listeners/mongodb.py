"""MongoDB on 27017: an unauthenticated ``mongod`` that answers the handshake and logs every command.

Speaks OP_MSG and legacy OP_QUERY. ``hello``/``isMaster``, ``buildInfo``, ``serverStatus`` and friends return
plausible documents for the configured ``version`` (default 7.0.14); reads return empty results, writes are
acknowledged and logged with their documents (ransom notes included), SASL/SCRAM attempts are logged and
refused. Config: ``version``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import bson
from .config import Settings
from .server import Closed, Listener, Session

OP_REPLY, OP_UPDATE, OP_INSERT, OP_QUERY, OP_GET_MORE, OP_DELETE, OP_KILL_CURSORS = (
    1,
    2001,
    2002,
    2004,
    2005,
    2006,
    2007,
)
OP_COMPRESSED, OP_MSG = 2012, 2013
MAX_MESSAGE = 4 * 1024 * 1024
MAX_MESSAGES = 1000
_WIRE_VERSIONS = {"3.6": 6, "4.0": 7, "4.2": 8, "4.4": 9, "5.0": 13, "6.0": 17, "7.0": 21, "8.0": 25}
_connection_ids = itertools.count(1)
Reply = dict[str, Any]


def _error(code: int, name: str, message: str) -> Reply:
    return {"ok": 0.0, "errmsg": message, "code": code, "codeName": name}


def _cursor(namespace: str) -> Reply:
    return {"cursor": {"firstBatch": [], "id": bson.Int64(0), "ns": namespace}, "ok": 1.0}


class MongoServer:
    """One client connection to the fake ``mongod``."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.s = session
        self.settings = settings
        self.version = settings.text("version", "7.0.14")
        self.connection_id = next(_connection_ids)
        self.request_ids = itertools.count(int.from_bytes(os.urandom(2), "big"))

    def run(self) -> None:
        """Serve messages until the peer leaves or sends something this server does not speak."""
        for _ in range(MAX_MESSAGES):
            length, request_id, _, opcode = struct.unpack("<iiii", self.s.recv_exact(16))
            if not 16 < length <= MAX_MESSAGE:
                raise Closed
            body = self.s.recv_exact(length - 16)
            if opcode == OP_MSG:
                self.on_msg(request_id, body)
            elif opcode == OP_QUERY:
                self.on_query(request_id, body)
            elif opcode in (OP_UPDATE, OP_INSERT, OP_DELETE, OP_GET_MORE, OP_KILL_CURSORS):
                self.s.emit("command", command=f"legacy opcode {opcode}", size=length)
            else:
                self.s.emit("command", command=f"unsupported opcode {opcode}", size=length)
                raise Closed

    def on_msg(self, request_id: int, body: bytes) -> None:
        """OP_MSG: a body section plus optional document sequences; replies unless moreToCome is set."""
        (flags,) = struct.unpack_from("<I", body, 0)
        end = len(body) - 4 if flags & 1 else len(body)
        pos, document = 4, None
        sequences: dict[str, list[Any]] = {}
        while pos < end:
            kind = body[pos]
            if kind == 0:
                document, pos = bson.decode_prefix(body[:end], pos + 1)
            elif kind == 1:
                (size,) = struct.unpack_from("<i", body, pos + 1)
                section_end = pos + 1 + size
                name_end = body.index(b"\x00", pos + 5)
                identifier = body[pos + 5 : name_end].decode("utf-8", "replace")
                docs: list[dict[str, Any]] = []
                cursor = name_end + 1
                while cursor < section_end and len(docs) < 1000:
                    item, cursor = bson.decode_prefix(body[:section_end], cursor)
                    docs.append(item)
                sequences[identifier] = docs
                pos = section_end
            else:
                raise Closed
        if document is None:
            raise Closed
        document.update(sequences)
        reply = self.command(str(document.get("$db", "admin")), document)
        if not flags & 2:
            payload = struct.pack("<I", 0) + b"\x00" + bson.encode(reply)
            self.send(OP_MSG, request_id, payload)

    def on_query(self, request_id: int, body: bytes) -> None:
        """Legacy OP_QUERY: commands on ``<db>.$cmd``; queries on collections find nothing."""
        name_end = body.index(b"\x00", 4)
        namespace = body[4:name_end].decode("utf-8", "replace")
        query, _ = bson.decode_prefix(body, name_end + 9)
        database, _, collection = namespace.partition(".")
        if collection == "$cmd":
            if isinstance(query.get("$query"), dict):
                query = query["$query"]
            documents = [self.command(database, query)]
        else:
            self.s.emit("command", command="find", database=database, collection=collection, query=query)
            documents = []
        payload = struct.pack("<iqii", 8, 0, 0, len(documents)) + b"".join(bson.encode(d) for d in documents)
        self.send(OP_REPLY, request_id, payload)

    def send(self, opcode: int, response_to: int, payload: bytes) -> None:
        """Frame and send one reply."""
        header = struct.pack("<iiii", 16 + len(payload), next(self.request_ids), response_to, opcode)
        self.s.send(header + payload)

    def command(self, database: str, document: dict[str, Any]) -> Reply:
        """Log a command and compute its reply."""
        if not document:
            return _error(59, "CommandNotFound", "no such command: ''")
        name = next(iter(document))
        argument = document[name]
        details = {k: v for k, v in document.items() if k not in ("$db", "lsid", "$clusterTime", "$readPreference")}
        self.s.emit("command", command=name, database=database, document=details)
        handler = self.COMMANDS.get(name.lower())
        if handler is None:
            return _error(59, "CommandNotFound", f"no such command: '{name}'")
        return handler(self, database, argument, document)

    def wire_version(self) -> int:
        """maxWireVersion for the configured server version."""
        return _WIRE_VERSIONS.get(".".join(self.version.split(".")[:2]), 21)

    def hello(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """``hello`` / ``isMaster``: a writable standalone primary."""
        reply: Reply = {
            "isWritablePrimary": True,
            "topologyVersion": {
                "processId": bson.ObjectId(hashlib.sha1(self.settings.hostname.encode()).digest()[:12]),
                "counter": bson.Int64(0),
            },
            "maxBsonObjectSize": 16777216,
            "maxMessageSizeBytes": 48000000,
            "maxWriteBatchSize": 100000,
            "localTime": datetime.now(UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": self.connection_id,
            "minWireVersion": 0,
            "maxWireVersion": self.wire_version(),
            "readOnly": False,
            "ok": 1.0,
        }
        if "hello" not in {k.lower() for k in document}:
            reply = {"ismaster": True, **{k: v for k, v in reply.items() if k != "isWritablePrimary"}}
        if document.get("helloOk"):
            reply = {"helloOk": True, **reply}
        return reply

    def build_info(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """``buildInfo`` for the configured version."""
        parts = [int(p) if p.isdigit() else 0 for p in [*self.version.split("."), "0", "0"][:3]]
        return {
            "version": self.version,
            "gitVersion": hashlib.sha1(f"mongo-r{self.version}".encode()).hexdigest(),
            "modules": [],
            "allocator": "tcmalloc",
            "javascriptEngine": "mozjs",
            "sysInfo": "deprecated",
            "versionArray": [*parts, 0],
            "openssl": {"running": "OpenSSL 3.0.15 3 Sep 2024", "compiled": "OpenSSL 3.0.15 3 Sep 2024"},
            "buildEnvironment": {
                "distmod": "debian12",
                "distarch": "x86_64",
                "cc": "/opt/mongodbtoolchain/v4/bin/gcc",
                "target_arch": "x86_64",
                "target_os": "linux",
            },
            "bits": 64,
            "debug": False,
            "maxBsonObjectSize": 16777216,
            "storageEngines": ["devnull", "wiredTiger"],
            "ok": 1.0,
        }

    def server_status(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """``serverStatus`` (what nmap's probe asks for)."""
        uptime = time.time() - self.settings.boot_time
        return {
            "host": self.settings.short_hostname,
            "version": self.version,
            "process": "mongod",
            "pid": bson.Int64(os.getpid() + 1200),
            "uptime": float(int(uptime)),
            "uptimeMillis": bson.Int64(int(uptime * 1000)),
            "uptimeEstimate": bson.Int64(int(uptime)),
            "localTime": datetime.now(UTC),
            "connections": {"current": 3, "available": 838857, "totalCreated": 2 + self.connection_id, "active": 1},
            "ok": 1.0,
        }

    def list_databases(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """``listDatabases``: only the default databases."""
        names = [("admin", 40960), ("config", 110592), ("local", 73728)]
        databases = [{"name": n, "sizeOnDisk": bson.Int64(s), "empty": False} for n, s in names]
        if document.get("nameOnly"):
            databases = [{"name": n} for n, _ in names]
        return {"databases": databases, "totalSize": bson.Int64(225280), "totalSizeMb": bson.Int64(0), "ok": 1.0}

    def writes(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """``insert``/``update``/``delete``: acknowledged (the command event holds the documents)."""
        for key in ("documents", "updates", "deletes"):
            if isinstance(document.get(key), list):
                return {"n": len(document[key]) if key == "documents" else 0, "ok": 1.0}
        return {"n": 0, "ok": 1.0}

    def cursor(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """Read commands: an exhausted, empty cursor."""
        return _cursor(f"{database}.{argument if isinstance(argument, str) else '$cmd.aggregate'}")

    def sasl(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """``saslStart``/``authenticate``: log the user name from the SCRAM payload and refuse."""
        payload = document.get("payload", b"")
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
        username = next((p[2:] for p in text.split(",") if p.startswith("n=")), None)
        self.s.emit(
            "auth", mechanism=document.get("mechanism", "SCRAM"), username=username, database=database, success=False
        )
        return _error(18, "AuthenticationFailed", "Authentication failed.")

    def ok(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """Commands that just succeed."""
        return {"ok": 1.0}

    def whatsmyuri(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """``whatsmyuri``: the client's own address."""
        return {"you": f"{self.s.src_ip}:{self.s.src_port}", "ok": 1.0}

    def drop(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """``drop``: there is never such a collection."""
        return _error(26, "NamespaceNotFound", "ns not found")

    def get_more(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """``getMore``: no cursor ever survives."""
        return _error(43, "CursorNotFound", f"cursor id {argument} not found")

    def count(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """``count``: always zero."""
        return {"n": 0, "ok": 1.0}

    def cmd_line(self, database: str, argument: Any, document: dict[str, Any]) -> Reply:
        """``getCmdLineOpts``: a packaged mongod's command line."""
        return {
            "argv": ["/usr/bin/mongod", "--config", "/etc/mongod.conf"],
            "parsed": {
                "config": "/etc/mongod.conf",
                "net": {"bindIp": "0.0.0.0", "port": 27017},
                "storage": {"dbPath": "/var/lib/mongodb"},
                "systemLog": {"destination": "file", "logAppend": True, "path": "/var/log/mongodb/mongod.log"},
            },
            "ok": 1.0,
        }

    COMMANDS: dict[str, Callable[[MongoServer, str, Any, dict[str, Any]], Reply]] = {
        "hello": hello,
        "ismaster": hello,
        "buildinfo": build_info,
        "serverstatus": server_status,
        "listdatabases": list_databases,
        "insert": writes,
        "update": writes,
        "delete": writes,
        "find": cursor,
        "aggregate": cursor,
        "listcollections": cursor,
        "listindexes": cursor,
        "saslstart": sasl,
        "authenticate": sasl,
        "ping": ok,
        "endsessions": ok,
        "killcursors": ok,
        "create": ok,
        "dropdatabase": ok,
        "createindexes": ok,
        "getparameter": ok,
        "logout": ok,
        "whatsmyuri": whatsmyuri,
        "drop": drop,
        "getmore": get_more,
        "count": count,
        "getcmdlineopts": cmd_line,
    }


def handle(session: Session, settings: Settings) -> None:
    """Serve one MongoDB connection."""
    try:
        MongoServer(session, settings).run()
    except (bson.BsonError, struct.error, ValueError, IndexError) as exc:
        raise Closed from exc


def listeners(settings: Settings) -> list[Listener]:
    """MongoDB on 27017."""
    return [Listener(settings.port(27017), functools.partial(handle, settings=settings))]
