"""Plain-text tables and JSON for the management commands of every app.

Nothing here reads or writes the database: commands pass rows in and print what comes out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

EMPTY = "-"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def visible_len(text: str) -> int:
    """Length of ``text`` as shown on a terminal (colour escape codes take no room)."""
    return len(_ANSI.sub("", text))


def cell(value: object) -> str:
    """One value as table text: ``-`` for None/empty, lists comma-joined, datetimes to the second (UTC)."""
    if value is None or value == "" or value == [] or value == ():
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, timedelta):
        return interval(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(cell(item) for item in value)
    return str(value)


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, empty: str = "(none)") -> str:
    """A left-aligned text table: a header line, a dash rule, one line per row. ``empty`` when there is no row."""
    body = [[cell(value) for value in row] for row in rows]
    if not body:
        return empty
    widths = [len(header) for header in headers]
    for row in body:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells for {len(headers)} columns")
        widths = [max(width, visible_len(text)) for width, text in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (text + " " * (width - visible_len(text)) for text, width in zip(cells, widths, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in body)])


def to_json(data: Any) -> str:
    """Stable, indented JSON (datetimes and other objects as strings)."""
    return json.dumps(data, indent=2, sort_keys=True, default=str)


def interval(value: timedelta) -> str:
    """A duration in its shortest whole unit, as fleet files spell it: ``2d``, ``6h``, ``90m``."""
    minutes = int(value.total_seconds() // 60)
    for unit, size in (("y", 525_600), ("d", 1440), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"
