"""Lifecycle domain errors."""

from decnet_site.exceptions import ConflictError, NotFoundError


class LifecycleNotFoundError(NotFoundError):
    code = "lifecycle_not_found"


class LifecycleImmutableError(ConflictError):
    """The row is terminal (or the requested move is illegal); a retry must write a new row."""

    code = "lifecycle_immutable"
