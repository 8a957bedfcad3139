"""Docker Engine API on 2375 (plain) and 2376 (TLS when a certificate could be made): an exposed daemon.

``/_ping``, ``/version`` and ``/info`` describe Docker 24.0.7 on Debian 12; listings are empty; container and
exec creation, starts and image pulls are accepted and logged with the image and command the attacker wanted
to run. Unknown routes get the daemon's own ``page not found``. Config: ``version``, ``api_version``.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import threading
from typing import Any

from . import httpd, tls
from .config import Settings
from .server import Listener, Session

_VERSIONED = re.compile(r"^/v\d+\.\d+(/.*)$")
_NOT_FOUND = httpd.Response(404, b'{"message":"page not found"}\n', [("Content-Type", "application/json")])
_MAX_TRACKED = 1000


class Daemon:
    """The fake engine: a few routes and the ids it has handed out."""

    def __init__(self, settings: Settings) -> None:
        self.version = settings.text("version", "24.0.7")
        self.api_version = settings.text("api_version", "1.43")
        self.hostname = settings.short_hostname
        self.containers: set[str] = set()
        self.execs: set[str] = set()
        self.lock = threading.Lock()

    def headers(self) -> list[tuple[str, str]]:
        """The headers every API response carries."""
        return [
            ("Api-Version", self.api_version),
            ("Docker-Experimental", "false"),
            ("Ostype", "linux"),
            ("Server", f"Docker/{self.version} (linux)"),
        ]

    def json(self, status: int, value: Any) -> httpd.Response:
        """A JSON response with the daemon's headers."""
        return httpd.Response(status, httpd.json_body(value), [*self.headers(), ("Content-Type", "application/json")])

    def empty(self, status: int) -> httpd.Response:
        """A body-less response with the daemon's headers."""
        return httpd.Response(status, b"", self.headers())

    def remember(self, ids: set[str]) -> str:
        """A new 64-hex id, tracked (boundedly) so later calls on it succeed."""
        new_id = secrets.token_hex(32)
        with self.lock:
            if len(ids) >= _MAX_TRACKED:
                ids.clear()
            ids.add(new_id)
        return new_id

    def version_document(self) -> dict[str, Any]:
        """``GET /version``."""
        commit = hashlib.sha1(self.version.encode()).hexdigest()[:7]
        engine = {
            "Version": self.version,
            "ApiVersion": self.api_version,
            "MinAPIVersion": "1.12",
            "GitCommit": commit,
            "GoVersion": "go1.20.10",
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": "6.1.0-13-amd64",
            "BuildTime": "2023-10-26T09:07:41.000000000+00:00",
        }
        return {
            "Platform": {"Name": "Docker Engine - Community"},
            "Components": [{"Name": "Engine", "Version": self.version, "Details": engine}],
            **engine,
        }

    def info_document(self) -> dict[str, Any]:
        """``GET /info``."""
        return {
            "ID": hashlib.sha256(self.hostname.encode()).hexdigest()[:36],
            "Containers": 0,
            "ContainersRunning": 0,
            "ContainersPaused": 0,
            "ContainersStopped": 0,
            "Images": 0,
            "Driver": "overlay2",
            "DockerRootDir": "/var/lib/docker",
            "MemoryLimit": True,
            "SwapLimit": True,
            "CgroupDriver": "systemd",
            "CgroupVersion": "2",
            "NEventsListener": 0,
            "KernelVersion": "6.1.0-13-amd64",
            "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
            "OSVersion": "12",
            "OSType": "linux",
            "Architecture": "x86_64",
            "NCPU": 4,
            "MemTotal": 8331673600,
            "Name": self.hostname,
            "ServerVersion": self.version,
            "DefaultRuntime": "runc",
            "LiveRestoreEnabled": False,
            "Isolation": "",
            "InitBinary": "docker-init",
            "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
            "Warnings": ["WARNING: API is accessible on http://0.0.0.0:2375 without encryption."],
        }

    def route(self, request: httpd.Request, session: Session) -> httpd.Response:
        """Dispatch one request (paths may carry a ``/v1.xx`` prefix)."""
        match = _VERSIONED.match(request.path)
        path = (match.group(1) if match else request.path).rstrip("/") or "/"
        method = request.method
        parts = path.strip("/").split("/")
        if method == "OPTIONS":
            return self.empty(200)
        if path == "/_ping" and method in ("GET", "HEAD"):
            return httpd.Response(
                200,
                b"OK",
                [
                    *self.headers(),
                    ("Cache-Control", "no-cache, no-store, must-revalidate"),
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Pragma", "no-cache"),
                ],
            )
        if method == "GET" and path == "/version":
            return self.json(200, self.version_document())
        if method == "GET" and path == "/info":
            return self.json(200, self.info_document())
        if method == "GET" and path in ("/containers/json", "/images/json", "/networks", "/secrets", "/services"):
            return self.json(200, [])
        if method == "GET" and path == "/volumes":
            return self.json(200, {"Volumes": [], "Warnings": None})
        if method == "POST" and path == "/containers/create":
            spec = request.json_object()
            host = httpd.as_object(spec.get("HostConfig"))
            session.emit(
                "command",
                command="container create",
                image=spec.get("Image"),
                cmd=spec.get("Cmd"),
                entrypoint=spec.get("Entrypoint"),
                binds=host.get("Binds"),
                privileged=host.get("Privileged"),
                name=request.query.get("name", [None])[0],
            )
            return self.json(201, {"Id": self.remember(self.containers), "Warnings": []})
        if method == "POST" and path == "/images/create":
            image = request.query.get("fromImage", [""])[0]
            tag = request.query.get("tag", ["latest"])[0] or "latest"
            session.emit("command", command="image pull", image=f"{image}:{tag}")
            lines = [
                {"status": f"Pulling from library/{image}", "id": tag},
                {"status": f"Digest: sha256:{hashlib.sha256(image.encode()).hexdigest()}"},
                {"status": f"Status: Downloaded newer image for {image}:{tag}"},
            ]
            body = b"".join(httpd.json_body(line).replace(b"\n", b"\r\n") for line in lines)
            return httpd.Response(200, body, [*self.headers(), ("Content-Type", "application/json")])
        if len(parts) == 3 and parts[0] == "containers":
            return self.container_action(request, session, parts[1], parts[2])
        if len(parts) == 3 and parts[0] == "exec" and parts[2] == "start" and method == "POST":
            if parts[1] not in self.execs:
                return self.json(404, {"message": f"No such exec instance: {parts[1]}"})
            return httpd.Response(200, b"", [*self.headers(), ("Content-Type", "application/vnd.docker.raw-stream")])
        if len(parts) == 2 and parts[0] == "containers" and method in ("GET", "DELETE"):
            if parts[1] not in self.containers:
                return self.json(404, {"message": f"No such container: {parts[1]}"})
            if method == "DELETE":
                return self.empty(204)
            return self.json(200, {"Id": parts[1], "State": {"Status": "running", "Running": True}, "Name": "/"})
        return _NOT_FOUND

    def container_action(self, request: httpd.Request, session: Session, cid: str, action: str) -> httpd.Response:
        """``/containers/<id>/<action>``: start/stop/kill/exec/... on containers this daemon created."""
        if cid not in self.containers:
            return self.json(404, {"message": f"No such container: {cid}"})
        if action == "exec" and request.method == "POST":
            spec = request.json_object()
            session.emit("command", command="exec create", container=cid, cmd=spec.get("Cmd"), user=spec.get("User"))
            return self.json(201, {"Id": self.remember(self.execs)})
        if request.method == "POST" and action in ("start", "stop", "kill", "restart", "pause", "unpause", "wait"):
            session.emit("command", command=f"container {action}", container=cid)
            return self.json(200, {"StatusCode": 0}) if action == "wait" else self.empty(204)
        if action in ("logs", "top", "stats", "changes", "export"):
            return httpd.Response(200, b"", [*self.headers(), ("Content-Type", "application/vnd.docker.raw-stream")])
        return _NOT_FOUND


def handle(session: Session, daemon: Daemon) -> None:
    """Serve one API connection."""
    httpd.serve(session, functools.partial(daemon.route, session=session))


def listeners(settings: Settings) -> list[Listener]:
    """The API on 2375, and with TLS on 2376 when a certificate could be made."""
    daemon = Daemon(settings)
    handler = functools.partial(handle, daemon=daemon)
    specs = [Listener(settings.port(2375), handler)]
    context = tls.server_context(settings.hostname)
    if context is not None:
        specs.append(Listener(settings.port(2376), handler, tls=context))
    return specs
