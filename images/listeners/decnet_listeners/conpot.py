"""The ICS decky: Modbus/TCP on 502, SNMP on 161/udp and the PLC's web HMI on 80.

The web pages imitate a SIMATIC S7-1200's built-in web server: ``/`` redirects to ``/Default.mwsl``, a start
page with the station's identity and a login form whose credentials are logged (and always refused).
See :mod:`.modbus` and :mod:`.snmp`.
"""

from __future__ import annotations

import functools
import html
from urllib.parse import parse_qs

from . import httpd, modbus, snmp
from .config import Settings
from .server import Listener, Session, UdpListener

_PAGE = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>{product} {station}</title>
<style>body{{font-family:Arial,sans-serif;font-size:12px;margin:0}}#hdr{{background:#009999;color:#fff;padding:8px}}
td{{padding:2px 12px 2px 0}}#box{{margin:16px}}</style></head>
<body><div id="hdr"><b>SIEMENS</b> &nbsp; {product} &nbsp; {station}</div><div id="box">
<h3>Start page</h3><table>
<tr><td>Station name:</td><td>{station}</td></tr><tr><td>Module type:</td><td>{model}</td></tr>
<tr><td>Article number:</td><td>{code}</td></tr><tr><td>Firmware:</td><td>{revision}</td></tr>
<tr><td>Operating mode:</td><td>RUN</td></tr><tr><td>Status:</td><td>OK</td></tr></table>
{message}<form method="post" action="/FORMS/portal/login">
<table><tr><td>User name</td><td><input type="text" name="Login" size="18"></td></tr>
<tr><td>Password</td><td><input type="password" name="Password" size="18"></td></tr></table>
<input type="hidden" name="Redirection" value=""><input type="submit" value="Login"></form>
</div></body></html>
"""
#: What an S7-1200 answers for "/": a redirect to its start page, in the PLC's own header layout.
_REDIRECT = (
    b"HTTP/1.0 302 Object Moved\r\nContent-Type:text/html\r\nContent-Length: 0\r\nConnection: close\r\n"
    b"Location: /Default.mwsl\r\n\r\n"
)
_NOT_FOUND = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n"


class Hmi:
    """The PLC's web server."""

    def __init__(self, plc: modbus.Plc) -> None:
        self.plc = plc

    def page(self, message: str = "") -> bytes:
        """The start page, with an optional notice above the login form."""
        _, code, revision, _, product, model, station = (html.escape(v) for v in self.plc.identity)
        notice = f'<p style="color:#c00">{html.escape(message)}</p>' if message else ""
        return _PAGE.format(
            product=product, station=station, model=model, code=code, revision=revision, message=notice
        ).encode()

    def route(self, request: httpd.Request, session: Session) -> httpd.Response:
        """Start page, login handling, 404 for the rest."""
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-cache")]
        path = request.path
        if request.method == "POST" and path.lower() == "/forms/portal/login":
            form = parse_qs(request.body.decode("utf-8", "replace"))
            session.emit(
                "auth",
                mechanism="form",
                username=form.get("Login", [""])[0],
                password=form.get("Password", [""])[0],
                path=path,
                success=False,
            )
            return httpd.Response(200, self.page("Login failed: wrong user name or password."), headers, style="plain")
        if request.method in ("GET", "HEAD") and path == "/":
            return httpd.Response(302, raw=_REDIRECT, close=True)
        if request.method in ("GET", "HEAD") and path in ("/Default.mwsl", "/Portal/Portal.mwsl"):
            return httpd.Response(200, self.page(), headers, style="plain")
        return httpd.Response(404, _NOT_FOUND, headers, style="plain")


def handle_http(session: Session, hmi: Hmi) -> None:
    """Serve one web connection."""
    httpd.serve(session, functools.partial(hmi.route, session=session))


def listeners(settings: Settings) -> list[Listener | UdpListener]:
    """Modbus 502/tcp, HTTP 80/tcp, SNMP 161/udp."""
    plc = modbus.Plc(settings)
    agent = snmp.Agent(settings)
    return [
        Listener(settings.port(502), functools.partial(modbus.handle, plc=plc), protocol="modbus"),
        Listener(settings.port(80), functools.partial(handle_http, hmi=Hmi(plc)), protocol="http"),
        UdpListener(settings.port(161), agent.handle, protocol="snmp"),
    ]
