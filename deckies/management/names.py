"""The ``--names`` option of the fleet commands."""

from __future__ import annotations

import re

from django.core.management.base import CommandError

from deckies.models import DECKY_NAME_RE


def split_names(value: str | None) -> list[str] | None:
    """``--names a,b`` → ``["a", "b"]`` (None when the option was not given). Raises CommandError on bad names."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise CommandError("--names needs at least one decky name, e.g. --names web-01,web-02")
    bad = [name for name in names if not re.match(DECKY_NAME_RE, name)]
    if bad:
        raise CommandError(f"invalid decky name(s): {', '.join(bad)} (names match {DECKY_NAME_RE})")
    return list(dict.fromkeys(names))
