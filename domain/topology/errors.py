"""Reason codes of assignments (``AssignmentOverlap`` is raised from a constraint violation too, so it
lives with the mapping of those: ``domain.records``)."""

from __future__ import annotations

from core.errors import InvalidInput, NotFound


class InvalidPeriod(InvalidInput):
    code = "invalid_period"


class UnknownReference(InvalidInput):
    code = "unknown_reference"


class AssignmentNotFound(NotFound):
    code = "assignment_not_found"


class UnknownAssignmentKind(NotFound):
    code = "unknown_assignment_kind"
