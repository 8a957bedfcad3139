"""SASL PLAIN and LOGIN decoding shared by the mail protocols (SMTP AUTH, IMAP AUTHENTICATE, POP3 AUTH)."""

from __future__ import annotations

import base64
import binascii

#: Base64 of "Username:" and "Password:", the LOGIN mechanism's prompts.
LOGIN_USER_PROMPT = b"VXNlcm5hbWU6"
LOGIN_PASS_PROMPT = b"UGFzc3dvcmQ6"


def b64decode(data: bytes) -> bytes | None:
    """Base64-decode a client response; ``None`` when it is not valid base64."""
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def text(data: bytes | None) -> str:
    """Bytes from the wire as text (UTF-8, invalid bytes replaced)."""
    return (data or b"").decode("utf-8", "replace")


def parse_plain(response: bytes) -> tuple[str, str, str] | None:
    """A decoded PLAIN response ``authzid NUL authcid NUL password`` as (authzid, username, password)."""
    parts = response.split(b"\x00")
    if len(parts) != 3:
        return None
    return text(parts[0]), text(parts[1]), text(parts[2])
