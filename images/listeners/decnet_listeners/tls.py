"""Server TLS contexts from a self-signed certificate made at start-up with the ``openssl`` binary.

Without ``openssl`` there is no TLS: implicit-TLS ports (993, 995, 636, 6443, 2376) are skipped and STARTTLS
is not offered. The key never touches a persistent path: it lives in a temporary directory that is removed
as soon as the context has loaded it.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path

from .events import warn

_cache: dict[tuple[str, tuple[str, ...]], ssl.SSLContext | None] = {}
_lock = threading.Lock()


def _generate(common_name: str, alt_names: tuple[str, ...]) -> ssl.SSLContext | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        warn("openssl not found: TLS ports are disabled")
        return None
    subject_alt = ",".join(f"DNS:{name}" for name in (common_name, *alt_names))
    with tempfile.TemporaryDirectory(prefix="decnet-tls-") as tmp:
        key, cert = Path(tmp, "key.pem"), Path(tmp, "cert.pem")
        command = [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3650",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            f"/CN={common_name}",
            "-addext",
            f"subjectAltName={subject_alt}",
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=60)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers("DEFAULT:!aNULL:!eNULL:!MD5:!RC4")
            context.load_cert_chain(str(cert), str(key))
        except (OSError, subprocess.SubprocessError, ssl.SSLError) as exc:
            warn(f"cannot create a TLS certificate: {exc}")
            return None
    return context


def server_context(common_name: str, alt_names: tuple[str, ...] = ()) -> ssl.SSLContext | None:
    """A TLS server context for ``common_name`` (made once per name), or ``None`` when TLS is unavailable."""
    key = (common_name, alt_names)
    with _lock:
        if key not in _cache:
            _cache[key] = _generate(common_name, alt_names)
        return _cache[key]
