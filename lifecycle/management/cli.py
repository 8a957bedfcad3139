"""What the management commands share besides tables: error mapping, progress lines and the lifecycle summary.

Nothing here decides anything: commands parse their arguments, call services, and use these to print.
"""

from __future__ import annotations

import contextlib
import getpass
import time
from collections.abc import Iterator, Sequence
from typing import Any

from django.core.management.base import CommandError, OutputWrapper
from django.core.management.color import Style

from decnet_site.exceptions import DomainError
from decnet_site.tables import render_table
from lifecycle.models import DeckyLifecycle
from lifecycle.signals import lifecycle_changed


def actor() -> str:
    """Who a command acts as, for logs and events: ``cli:<OS user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no passwd entry (containers): still attributable to the CLI
        return "cli"


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """Turn the services' domain errors into :class:`CommandError` (exit code 1, message kept)."""
    try:
        yield
    except DomainError as exc:
        raise CommandError(str(exc)) from exc


def status_text(row: DeckyLifecycle, style: Style) -> str:
    """A lifecycle status, coloured: succeeded green, failed red, open statuses plain."""
    if row.status == "succeeded":
        return style.SUCCESS(row.status)
    if row.status == "failed":
        return style.ERROR(row.status)
    return row.status


@contextlib.contextmanager
def lifecycle_progress(stdout: OutputWrapper, style: Style) -> Iterator[None]:
    """Print one line per lifecycle status change while the block runs (inline operations report this way)."""
    started = time.monotonic()

    def receiver(sender: Any, row: DeckyLifecycle, **kwargs: Any) -> None:
        line = f"[{time.monotonic() - started:6.1f}s] {row.operation} {row.decky_name}: {status_text(row, style)}"
        if row.error or row.message:
            line += f" ({row.error or row.message})"
        stdout.write(line)
        stdout.flush()

    lifecycle_changed.connect(receiver, dispatch_uid=f"cli-progress-{id(stdout)}", weak=False)
    try:
        yield
    finally:
        lifecycle_changed.disconnect(dispatch_uid=f"cli-progress-{id(stdout)}")


def lifecycle_table(rows: Sequence[DeckyLifecycle], style: Style) -> str:
    """Lifecycle rows as a table: decky, operation, status, id, and what happened (the error when it failed)."""
    return render_table(
        ["DECKY", "OPERATION", "STATUS", "LIFECYCLE ID", "OUTCOME"],
        [
            [row.decky_name, row.operation, status_text(row, style), str(row.pk), row.error or row.message]
            for row in rows
        ],
    )


def report_rows(
    rows: Sequence[DeckyLifecycle], stdout: OutputWrapper, style: Style, *, inline: bool, verb: str
) -> None:
    """Print what a request did: the rows, then either the ``wait`` hint (queued) or a verdict (inline).

    Inline runs that left a row failed end in :class:`CommandError` so scripts see a non-zero exit.
    """
    fresh = {row.pk: row for row in DeckyLifecycle.objects.filter(pk__in=[row.pk for row in rows])}
    rows = [fresh.get(row.pk, row) for row in rows]
    stdout.write(lifecycle_table(rows, style))
    if not inline:
        ids = " ".join(str(row.pk) for row in rows)
        stdout.write(f"{len(rows)} {verb} operation(s) queued; follow them with: manage.py wait {ids}")
        return
    failed = [row for row in rows if row.status == "failed"]
    if failed:
        raise CommandError(f"{len(failed)} of {len(rows)} {verb} operation(s) failed")
    stdout.write(style.SUCCESS(f"{len(rows)} {verb} operation(s) succeeded"))
