"""Elasticsearch on 9200: an open single-node cluster's REST API (default 7.10.2, no security).

``GET /`` returns the node banner pretty-printed exactly as Elasticsearch's Jackson printer does; the _cat
and _cluster endpoints describe a few bait indices; searches find nothing; index writes and deletes are
acknowledged. Every request is logged. Config: ``version``, ``cluster_name``, ``node_name``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
from typing import Any

from . import httpd
from .config import Settings
from .server import Listener, Session

_LUCENE = {"6.8": "7.7.3", "7.10": "8.7.0", "7.17": "8.11.3", "8.11": "9.8.0"}
_BUILD_HASH = {"7.10.2": "747e1cc71def077253878a59143c1f785afa92b9"}
#: (name, docs, size) of the indices the cluster pretends to hold.
_INDICES = (("customers", 15234, "4.1mb"), ("orders", 48711, "12.7mb"), ("users", 2281, "833.2kb"))
_JSON = [("content-type", "application/json; charset=UTF-8")]
_TEXT = [("content-type", "text/plain; charset=UTF-8")]


def jackson(value: Any, level: int = 0) -> str:
    """JSON in Jackson's default pretty-printer layout (``"key" : value``, two-space indent, ``[ a, b ]``)."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict):
        if not value:
            return "{ }"
        items = [f"{inner}{json.dumps(k)} : {jackson(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list):
        return "[ ]" if not value else "[ " + ", ".join(jackson(v, level + 1) for v in value) + " ]"
    return json.dumps(value)


class Cluster:
    """The fake cluster's state and its REST routes."""

    def __init__(self, settings: Settings) -> None:
        self.version = settings.text("version", "7.10.2")
        self.cluster_name = settings.text("cluster_name", "elasticsearch")
        self.node_name = settings.text("node_name", settings.short_hostname)
        digest = hashlib.sha256(settings.hostname.encode()).digest()
        self.cluster_uuid = base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")
        self.index_uuids = {
            name: base64.urlsafe_b64encode(hashlib.sha256(f"{settings.hostname}/{name}".encode()).digest()[:16])
            .decode()
            .rstrip("=")
            for name, _, _ in _INDICES
        }

    def respond(self, status: int, value: Any, pretty: bool = False) -> httpd.Response:
        """A JSON response, pretty when asked (``?pretty``)."""
        text = jackson(value) + "\n" if pretty else json.dumps(value, separators=(",", ":"))
        return httpd.Response(status, text.encode(), list(_JSON), style="plain")

    def banner(self) -> dict[str, Any]:
        """The ``GET /`` document."""
        minor = ".".join(self.version.split(".")[:2])
        return {
            "name": self.node_name,
            "cluster_name": self.cluster_name,
            "cluster_uuid": self.cluster_uuid,
            "version": {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "deb",
                "build_hash": _BUILD_HASH.get(self.version, hashlib.sha1(self.version.encode()).hexdigest()),
                "build_date": "2021-01-13T00:42:12.435326Z",
                "build_snapshot": False,
                "lucene_version": _LUCENE.get(minor, "8.7.0"),
                "minimum_wire_compatibility_version": "6.8.0",
                "minimum_index_compatibility_version": "6.0.0-beta1",
            },
            "tagline": "You Know, for Search",
        }

    def cat_indices(self, verbose: bool) -> str:
        """The ``_cat/indices`` table."""
        rows = (
            [
                [
                    "health",
                    "status",
                    "index",
                    "uuid",
                    "pri",
                    "rep",
                    "docs.count",
                    "docs.deleted",
                    "store.size",
                    "pri.store.size",
                ]
            ]
            if verbose
            else []
        )
        rows += [["yellow", "open", n, self.index_uuids[n], "1", "1", str(d), "0", s, s] for n, d, s in _INDICES]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "".join(" ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows)

    def not_found(self, index: str) -> httpd.Response:
        """Elasticsearch's index_not_found_exception."""
        cause = {
            "type": "index_not_found_exception",
            "reason": f"no such index [{index}]",
            "resource.type": "index_or_alias",
            "resource.id": index,
            "index_uuid": "_na_",
            "index": index,
        }
        return self.respond(404, {"error": {"root_cause": [cause], **cause}, "status": 404})

    def route(self, request: httpd.Request) -> httpd.Response:
        """Dispatch one request."""
        path = request.path.rstrip("/") or "/"
        pretty = "pretty" in request.query
        parts = [p for p in path.split("/") if p]
        method = request.method
        if path == "/":
            return self.respond(200, self.banner(), pretty=True)
        if path == "/_cat/indices" or path.startswith("/_cat/indices/"):
            return httpd.Response(200, self.cat_indices("v" in request.query).encode(), list(_TEXT), style="plain")
        if path == "/_cat/health":
            line = f"1700000000 00:00:00 {self.cluster_name} yellow 1 1 3 3 0 0 3 0 - 50.0%\n"
            return httpd.Response(200, line.encode(), list(_TEXT), style="plain")
        if path == "/_cluster/health":
            return self.respond(
                200,
                {
                    "cluster_name": self.cluster_name,
                    "status": "yellow",
                    "timed_out": False,
                    "number_of_nodes": 1,
                    "number_of_data_nodes": 1,
                    "active_primary_shards": 3,
                    "active_shards": 3,
                    "relocating_shards": 0,
                    "initializing_shards": 0,
                    "unassigned_shards": 3,
                    "delayed_unassigned_shards": 0,
                    "number_of_pending_tasks": 0,
                    "number_of_in_flight_fetch": 0,
                    "task_max_waiting_in_queue_millis": 0,
                    "active_shards_percent_as_number": 50.0,
                },
                pretty,
            )
        if parts and parts[-1] in ("_search", "_count", "_msearch"):
            if parts[-1] == "_count":
                return self.respond(
                    200, {"count": 0, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}, pretty
                )
            return self.respond(
                200,
                {
                    "took": 1,
                    "timed_out": False,
                    "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                    "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": None, "hits": []},
                },
                pretty,
            )
        if path in ("/_aliases", "/_mapping", "/_settings", "/_all/_settings"):
            return self.respond(200, {n: {"aliases": {}} for n, _, _ in _INDICES}, pretty)
        if path.startswith("/_nodes"):
            node = {"name": self.node_name, "version": self.version, "roles": ["data", "ingest", "master"]}
            return self.respond(
                200,
                {
                    "_nodes": {"total": 1, "successful": 1, "failed": 0},
                    "cluster_name": self.cluster_name,
                    "nodes": {self.cluster_uuid[:22]: node},
                },
                pretty,
            )
        if parts and not parts[0].startswith("_"):
            return self.index_route(method, parts, pretty)
        return self.respond(
            400,
            {"error": "no handler found for uri [" + request.target + "] and method [" + method + "]", "status": 400},
        )

    def index_route(self, method: str, parts: list[str], pretty: bool) -> httpd.Response:
        """Operations on ``/<index>[/...]``."""
        index = parts[0]
        if method == "PUT" and len(parts) == 1:
            return self.respond(200, {"acknowledged": True, "shards_acknowledged": True, "index": index}, pretty)
        if method == "DELETE" and len(parts) == 1:
            return self.respond(200, {"acknowledged": True}, pretty)
        if method in ("POST", "PUT") and len(parts) >= 2 and parts[1] in ("_doc", "_create"):
            doc_id = parts[2] if len(parts) > 2 else secrets.token_urlsafe(15)[:20]
            return self.respond(
                201,
                {
                    "_index": index,
                    "_type": "_doc",
                    "_id": doc_id,
                    "_version": 1,
                    "result": "created",
                    "_shards": {"total": 2, "successful": 1, "failed": 0},
                    "_seq_no": 0,
                    "_primary_term": 1,
                },
                pretty,
            )
        if index in self.index_uuids and method in ("GET", "HEAD") and len(parts) == 1:
            settings = {
                "index": {
                    "number_of_shards": "1",
                    "number_of_replicas": "1",
                    "uuid": self.index_uuids[index],
                    "provided_name": index,
                    "creation_date": "1700000000000",
                    "version": {"created": "7100299"},
                }
            }
            return self.respond(200, {index: {"aliases": {}, "mappings": {}, "settings": settings}}, pretty)
        return self.not_found(index)


def handle(session: Session, cluster: Cluster) -> None:
    """Serve one HTTP connection."""
    httpd.serve(session, cluster.route)


def listeners(settings: Settings) -> list[Listener]:
    """Elasticsearch REST on 9200."""
    return [Listener(settings.port(9200), functools.partial(handle, cluster=Cluster(settings)))]
