"""A minimal HTTP/1.x server for the JSON-API honeypots (Elasticsearch, Docker, Kubernetes, the conpot HMI).

Each application is a function from :class:`Request` to :class:`Response`. Requests are bounded (request
line, header count and size, body size), keep-alive follows HTTP/1.0 and 1.1 defaults, and every request is
logged with its method, path, User-Agent and a body excerpt; Basic and Bearer credentials are logged as
``auth`` events.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .server import Closed, Session

MAX_REQUEST_LINE = 8192
MAX_HEADERS = 100
MAX_HEADER_LINE = 8192
MAX_BODY = 1024 * 1024
BODY_EXCERPT = 4096
MAX_REQUESTS = 100


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        """The decoded path, without the query string."""
        return unquote(urlsplit(self.target).path) or "/"

    @property
    def query(self) -> dict[str, list[str]]:
        """The query string's parameters."""
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def json(self) -> Any:
        """The body parsed as JSON, or ``None``."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; ``{}`` when it is anything else."""
        return as_object(self.json())


def as_object(value: Any) -> dict[str, Any]:
    """``value`` if it is a dict, else an empty one (attacker JSON has any shape)."""
    return value if isinstance(value, dict) else {}


@dataclass
class Response:
    """An HTTP response; ``headers`` are sent in order, then ``Date``/``Content-Length`` per ``style``."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: "go": headers sorted like Go's net/http, then Date and Content-Length; "plain": headers as given, then
    #: Content-Length only (Netty, as in Elasticsearch).
    style: str = "go"
    close: bool = False
    #: Exact bytes to send instead (for devices whose header layout no generic renderer reproduces).
    raw: bytes | None = None


App = Callable[[Request], Response]

#: What Go's net/http writes for an unparsable request.
GO_BAD_REQUEST = Response(
    400,
    raw=b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"400 Bad Request",
)


def json_body(value: Any, indent: int | None = None) -> bytes:
    """Compact JSON plus a newline, as Go's json.Encoder writes it (or indented)."""
    text = json.dumps(value, indent=indent, separators=None if indent else (",", ":"))
    return text.encode() + b"\n"


def read_request(session: Session) -> Request | None:
    """The next request, or ``None`` if the peer closed between requests; raises ValueError when malformed."""
    try:
        line = session.recv_line(MAX_REQUEST_LINE)
        while not line:  # tolerate blank lines between pipelined requests
            line = session.recv_line(MAX_REQUEST_LINE)
    except Closed:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError("bad request line")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        header = session.recv_line(MAX_HEADER_LINE)
        if not header:
            break
        name, sep, value = header.decode("latin-1").partition(":")
        if not sep:
            raise ValueError("bad header")
        headers[name.strip().lower()] = value.strip()
    else:
        raise ValueError("too many headers")
    body = b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _read_chunked(session)
    elif headers.get("content-length"):
        length = int(headers["content-length"])
        if not 0 <= length <= MAX_BODY:
            raise ValueError("body too large")
        body = session.recv_exact(length)
    return Request(parts[0].upper(), parts[1], parts[2], headers, body)


def _read_chunked(session: Session) -> bytes:
    body = bytearray()
    while True:
        size = int(session.recv_line(64).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while session.recv_line(MAX_HEADER_LINE):
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY:
            raise ValueError("body too large")
        body += session.recv_exact(size)
        session.recv_line(8)


def render(request: Request | None, response: Response, keep_alive: bool) -> bytes:
    """The response bytes: status line in the request's HTTP version, headers, body (none for HEAD)."""
    if response.raw is not None:
        return response.raw
    version = "HTTP/1.0" if request is not None and request.version == "HTTP/1.0" else "HTTP/1.1"
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    headers = list(response.headers)
    if response.style == "go":
        headers.sort(key=lambda item: item[0].lower())
        headers.append(("Date", formatdate(usegmt=True)))
    if response.status not in (204, 304):
        headers.append(("Content-Length" if response.style == "go" else "content-length", str(len(response.body))))
    if not keep_alive and version == "HTTP/1.1":
        headers.append(("Connection", "close"))
    head = f"{version} {response.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    body = b"" if request is not None and request.method == "HEAD" else response.body
    return head.encode("latin-1", "replace") + body


def _log_request(session: Session, request: Request) -> None:
    session.emit(
        "request",
        method=request.method,
        path=request.path,
        target=request.target,
        version=request.version,
        host=request.headers.get("host"),
        user_agent=request.headers.get("user-agent"),
        content_type=request.headers.get("content-type"),
        body=request.body[:BODY_EXCERPT] or None,
        body_size=len(request.body) or None,
    )
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            username, _, password = (
                base64.b64decode(credentials, validate=True).decode("utf-8", "replace").partition(":")
            )
        except (binascii.Error, ValueError):
            username, password = credentials, ""
        session.emit("auth", mechanism="basic", username=username, password=password, path=request.path, success=False)
    elif scheme:
        session.emit("auth", mechanism=scheme.lower(), token=credentials, path=request.path, success=False)


def serve(session: Session, app: App, bad_request: Response | None = None) -> None:
    """Serve requests on one connection until it closes, a request is malformed, or keep-alive ends."""
    for _ in range(MAX_REQUESTS):
        try:
            request = read_request(session)
        except ValueError:
            session.send(render(None, bad_request or GO_BAD_REQUEST, keep_alive=False))
            return
        if request is None:
            return
        _log_request(session, request)
        response = app(request)
        connection = request.headers.get("connection", "").lower()
        keep_alive = not response.close and (
            connection == "keep-alive" if request.version == "HTTP/1.0" else connection != "close"
        )
        session.send(render(request, response, keep_alive))
        if not keep_alive:
            return
