"""Typed engine errors. Each maps to an HTTP status through :mod:`decnet_site.exceptions`."""

from __future__ import annotations

from decnet_site.exceptions import (
    ConflictError,
    DomainError,
    InvalidInputError,
    ServiceUnavailableError,
    UnprocessableError,
)


class EngineError(DomainError):
    """Base of every engine failure: a Docker or compose call that did not do what was asked."""

    status_code = 500
    code = "engine_error"


class EngineUnavailableError(ServiceUnavailableError, EngineError):
    """The Docker engine of a host cannot be reached (503)."""

    code = "engine_unavailable"


class ImageMissingError(EngineError):
    """An image a container needs is not on the host; run ``manage.py build_images``."""

    status_code = 503
    code = "image_missing"


class ComposeCommandError(EngineError):
    """``docker compose`` exited non-zero or timed out; ``stderr_tail`` holds the end of its error output."""

    status_code = 502
    code = "compose_failed"

    def __init__(self, detail: str, *, stderr_tail: str = "", returncode: int | None = None) -> None:
        super().__init__(detail, stderr_tail=stderr_tail, returncode=returncode)
        self.stderr_tail = stderr_tail
        self.returncode = returncode


class ContainerRefusedError(ConflictError, EngineError):
    """A running container refused a request (file write, exec) or is not running (409)."""

    code = "container_refused"


class InvalidPathError(InvalidInputError, EngineError):
    """A path for a file drop is not absolute or contains ``..`` (400)."""

    code = "invalid_path"


class RenderError(UnprocessableError, EngineError):
    """The desired state cannot be rendered into a compose file (no address, name clash, unknown service) (422)."""

    code = "render_failed"


class EngineConfigError(EngineError):
    """The engine is misconfigured on this machine (e.g. the compose binary cannot be found) (500)."""

    code = "engine_misconfigured"
