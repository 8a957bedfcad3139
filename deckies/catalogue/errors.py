"""Exceptions raised by the static catalogues.

They are domain errors, so the one exception handler maps them like any other: an unknown service, archetype or
distro is a 422 (``unknown``), a bad per-service config (or a bad bring-your-own service definition) is a 400
(``invalid_config``, with every offending field under ``fields``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from decnet_site.exceptions import DomainError


class CatalogueError(DomainError):
    """Base class of every catalogue error (400 unless a subclass says otherwise)."""

    status_code = 400
    code = "invalid"


class _UnknownSlugError(CatalogueError):
    """A slug that names nothing in one catalogue; ``available`` lists what does (sorted)."""

    kind = "entry"
    status_code = 422
    code = "unknown"

    def __init__(self, slug: str, available: Iterable[str]) -> None:
        self.slug = slug
        self.available: tuple[str, ...] = tuple(sorted(available))
        super().__init__(f"unknown {self.kind} {slug!r}; available: {', '.join(self.available) or '(none)'}")


class UnknownServiceError(_UnknownSlugError):
    """No built-in or registered custom service has this slug."""

    kind = "service"


class UnknownArchetypeError(_UnknownSlugError):
    """No archetype has this slug."""

    kind = "archetype"


class UnknownDistroError(_UnknownSlugError):
    """No distro profile has this slug."""

    kind = "distro"


class ConfigValidationError(CatalogueError):
    """One or more fields failed validation.

    ``errors`` maps each offending field (config key, or definition attribute for a custom service) to all of its
    messages, so a client can show every problem at once.
    """

    code = "invalid_config"

    def __init__(self, errors: Mapping[str, Iterable[str]], *, context: str = "invalid config") -> None:
        self.errors: dict[str, list[str]] = {key: list(messages) for key, messages in errors.items()}
        details = "; ".join(f"{key}: {' '.join(messages)}" for key, messages in sorted(self.errors.items()))
        super().__init__(f"{context}: {details}" if details else context, fields=self.errors)
