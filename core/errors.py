"""Errors as values: a machine-readable code, a message, and the HTTP status / exit code they map to.

Mapped once to HTTP in api/errors.py and once to CLI exit codes in gridgate/cli.py.
"""

from __future__ import annotations

from typing import Any


class GridgateError(Exception):
    """Base class. ``code`` is stable and machine-readable; ``message`` is for humans."""

    status_code: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class InvalidInput(GridgateError):
    status_code = 400
    code = "invalid_input"


class NotFound(GridgateError):
    status_code = 404
    code = "not_found"


class Conflict(GridgateError):
    status_code = 409
    code = "conflict"


class Unauthorized(GridgateError):
    status_code = 401
    code = "unauthorized"


class Forbidden(GridgateError):
    status_code = 403
    code = "forbidden"


class ServiceUnavailable(GridgateError):
    status_code = 503
    code = "service_unavailable"
