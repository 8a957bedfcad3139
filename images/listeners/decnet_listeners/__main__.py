"""Entry point: ``python3 -m decnet_listeners`` serves ``DECNET_SERVICE`` until SIGTERM."""

from __future__ import annotations

import importlib
import os
import sys

from . import SERVICES
from .config import load_settings
from .events import EventLog, warn
from .server import serve


def main() -> int:
    """Start the listeners of the configured service; returns the process exit status."""
    settings = load_settings(os.environ)
    module_name = SERVICES.get(settings.service)
    if module_name is None:
        warn(f"unknown DECNET_SERVICE {settings.service!r}; known: {', '.join(sorted(SERVICES))}")
        return 2
    module = importlib.import_module(f"{__package__}.{module_name}")
    log = EventLog(settings.service, settings.decky)
    return serve(settings, module.listeners(settings), log)


if __name__ == "__main__":
    sys.exit(main())
