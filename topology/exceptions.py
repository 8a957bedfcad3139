"""Topology domain errors."""

from __future__ import annotations

from typing import Any

from decnet_site.exceptions import ConflictError, InvalidInputError, NotFoundError


class TopologyNotFoundError(NotFoundError):
    code = "topology_not_found"


class TopologyNotEditableError(ConflictError):
    """Child rows can only change while the topology is pending."""

    code = "not_editable"


class VersionConflict(ConflictError):  # noqa: N818 - the name the API and DECNET use
    """A write carried a stale ``expected_version``: someone else changed the topology since it was read."""

    code = "version_conflict"

    def __init__(self, *, current: int, expected: int) -> None:
        super().__init__(
            f"Version conflict: expected {expected}, current is {current}", current=current, expected=expected
        )
        self.current = current
        self.expected = expected


class TopologyValidationError(InvalidInputError):
    """Deploy-time validation found errors; ``issues`` lists them all."""

    code = "validation_failed"

    def __init__(self, issues: list[dict[str, Any]]) -> None:
        super().__init__(f"topology has {len(issues)} validation error(s)", issues=issues)
        self.issues = issues
