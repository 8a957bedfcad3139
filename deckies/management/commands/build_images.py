"""``manage.py build_images``: build (or reuse) DECNET's container images on the local Docker engine."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deckies.catalogue.images import ALL_FAMILIES
from deckies.engine.errors import EngineError
from deckies.engine.images import build_images


class Command(BaseCommand):
    help = (
        "Build DECNET's images (decnet/base, then the service families) on the local Docker engine. "
        "Images whose build context is unchanged are reused; --force rebuilds them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="rebuild the requested images even when they are up to date"
        )
        parser.add_argument(
            "--family",
            action="append",
            choices=ALL_FAMILIES,
            dest="families",
            metavar="NAME",
            help=f"build only this family (repeatable; one of {', '.join(ALL_FAMILIES)}); default: all",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        try:
            results = build_images(force=options["force"], families=options["families"], progress=progress)
        except EngineError as exc:
            raise CommandError(str(exc)) from exc
        built = [r.family for r in results if r.built]
        total = sum(r.seconds for r in results)
        summary = f"{len(results)} image(s) ready in {total:.1f}s" + (f"; built: {', '.join(built)}" if built else "")
        self.stdout.write(self.style.SUCCESS(summary))
