"""Kubernetes API server: 6443 with TLS (anonymous requests are forbidden, tokens unauthorized) and the legacy
insecure port 8080 (open: empty resource lists, creations accepted and logged).

``/version`` reports the configured ``version`` (default v1.28.4); ``/healthz``-style probes answer ``ok``.
Authorization headers and request bodies (pod specs!) are logged.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from . import httpd, tls
from .config import Settings
from .server import Listener, Session

_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_HEALTH = ("/healthz", "/livez", "/readyz", "/healthz/ping")
_PATHS = [
    "/api",
    "/api/v1",
    "/apis",
    "/apis/apps",
    "/apis/apps/v1",
    "/apis/batch",
    "/apis/batch/v1",
    "/apis/rbac.authorization.k8s.io",
    "/apis/rbac.authorization.k8s.io/v1",
    "/healthz",
    "/livez",
    "/metrics",
    "/openapi/v2",
    "/readyz",
    "/version",
]
_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class ApiServer:
    """Route logic for both ports; ``secure`` is the TLS port's behaviour."""

    def __init__(self, settings: Settings, secure: bool) -> None:
        self.secure = secure
        self.version = settings.text("version", "v1.28.4")
        if not self.version.startswith("v"):
            self.version = "v" + self.version
        self.flow_uid = str(uuid.UUID(bytes=hashlib.md5(settings.hostname.encode()).digest()))

    def response(self, status: int, value: Any, indent: int | None = None) -> httpd.Response:
        """A JSON response with the API server's headers."""
        headers = [
            ("Audit-Id", str(uuid.uuid4())),
            ("Cache-Control", "no-cache, private"),
            ("Content-Type", "application/json"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Kubernetes-Pf-Flowschema-Uid", self.flow_uid),
            ("X-Kubernetes-Pf-Prioritylevel-Uid", self.flow_uid),
        ]
        body = httpd.json_body(value, indent=indent)
        return httpd.Response(status, body, headers)

    def status(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> httpd.Response:
        """A ``kind: Status`` failure."""
        return self.response(
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "details": details or {},
                "code": code,
            },
        )

    def version_document(self) -> dict[str, str]:
        """``/version``."""
        major, minor = ([*self.version[1:].split("."), "0"])[:2]
        return {
            "major": major,
            "minor": minor,
            "gitVersion": self.version,
            "gitCommit": hashlib.sha1(self.version.encode()).hexdigest(),
            "gitTreeState": "clean",
            "buildDate": "2023-11-15T16:48:54Z",
            "goVersion": "go1.20.11",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def route(self, request: httpd.Request) -> httpd.Response:
        """Dispatch one request."""
        path = request.path.rstrip("/") or "/"
        if path == "/version":
            return self.response(200, self.version_document(), indent=2)
        if path in _HEALTH:
            return httpd.Response(
                200,
                b"ok",
                [
                    ("Cache-Control", "no-cache, private"),
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("X-Content-Type-Options", "nosniff"),
                ],
            )
        if self.secure:
            if request.headers.get("authorization"):
                return self.status(401, "Unauthorized", "Unauthorized")
            return self.forbidden(request, path)
        return self.insecure(request, path)

    def forbidden(self, request: httpd.Request, path: str) -> httpd.Response:
        """What the apiserver tells ``system:anonymous``."""
        verb = _VERBS.get(request.method, request.method.lower())
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"] and len(parts) > 2:
            rest = parts[2:]
            namespace = rest[1] if rest[0] == "namespaces" and len(rest) > 2 else None
            resource_parts = rest[2:] if namespace else rest
            resource = resource_parts[0]
            if verb == "get" and len(resource_parts) == 1:
                verb = "list"
            where = f' in the namespace "{namespace}"' if namespace else ""
            message = (
                f'{resource} is forbidden: User "system:anonymous" cannot {verb} resource "{resource}" '
                f'in API group ""{where}'
            )
            return self.status(403, "Forbidden", message, {"kind": resource})
        return self.status(403, "Forbidden", f'forbidden: User "system:anonymous" cannot {verb} path "{path}"')

    def insecure(self, request: httpd.Request, path: str) -> httpd.Response:
        """The unauthenticated port: discovery documents, empty lists, accepted creations."""
        if path == "/":
            return self.response(200, {"paths": _PATHS}, indent=2)
        if path == "/api":
            return self.response(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.96.0.1:6443"}],
                },
            )
        if path == "/apis":
            return self.response(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        parts = path.strip("/").split("/")
        if parts[:2] != ["api", "v1"] or len(parts) < 3:
            return self.status(404, "NotFound", "the server could not find the requested resource")
        rest = parts[2:]
        if rest == ["namespaces"] and request.method == "GET":
            items = [
                {"metadata": {"name": n, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, n))}, "status": {"phase": "Active"}}
                for n in _NAMESPACES
            ]
            return self.response(
                200,
                {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": "48213"}, "items": items},
            )
        if rest[0] == "namespaces" and len(rest) == 2 and request.method == "GET" and rest[1] in _NAMESPACES:
            return self.response(
                200,
                {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": rest[1]}, "status": {"phase": "Active"}},
            )
        resource = rest[2] if rest[0] == "namespaces" and len(rest) > 2 else rest[0]
        kind = resource[:1].upper() + resource[1:].rstrip("s")
        if request.method == "POST":
            body = request.json_object()
            metadata = httpd.as_object(body.get("metadata"))
            created = {
                **body,
                "metadata": {
                    **metadata,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": "48214",
                    "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            }
            return self.response(201, created)
        if request.method == "GET" and len(rest) in (1, 3):
            return self.response(
                200, {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {"resourceVersion": "48213"}, "items": []}
            )
        name = rest[-1]
        return self.status(404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource})


def handle(session: Session, server: ApiServer) -> None:
    """Serve one HTTP connection."""
    httpd.serve(session, server.route)


def listeners(settings: Settings) -> list[Listener]:
    """6443 (TLS, when a certificate could be made) and 8080 (plain, insecure)."""
    specs = [Listener(settings.port(8080), functools.partial(handle, server=ApiServer(settings, secure=False)))]
    context = tls.server_context(
        "kube-apiserver",
        (
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            settings.hostname,
        ),
    )
    if context is not None:
        handler = functools.partial(handle, server=ApiServer(settings, secure=True))
        specs.append(Listener(settings.port(6443), handler, tls=context))
    return specs
