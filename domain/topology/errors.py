"""Reason codes of assignments."""

from __future__ import annotations

from gridgate.errors import Conflict, InvalidInput, NotFound


class AssignmentOverlap(Conflict):
    code = "assignment_overlap"


class InvalidPeriod(InvalidInput):
    code = "invalid_period"


class UnknownReference(InvalidInput):
    code = "unknown_reference"


class AssignmentNotFound(NotFound):
    code = "assignment_not_found"


class UnknownAssignmentKind(NotFound):
    code = "unknown_assignment_kind"
