"""What can go wrong talking to a gateway, as values with a reason code (the activity layer maps
them to ``ApplicationError`` types, docs/protocol.md section 9)."""

from __future__ import annotations

from headend.contract import RETRYABLE_ERRORS

# Gateway <error reason> -> activity error type (docs/protocol.md section 9)
REASON_TO_ERROR = {
    "malformed": "malformed",
    "cms_invalid": "rejected",
    "rejected": "rejected",
    "not_found": "unsupported",
    "unsupported": "unsupported",
    "command_conflict": "command_conflict",
    "meter_missing": "meter_missing",
    "not_paired": "not_paired",
    "unknown_profile": "unknown_profile",
    "unknown_recipient": "unknown_recipient",
    "certificate_invalid": "certificate_invalid",
    "invalid_profile": "invalid_profile",
    "firmware_verification_failed": "firmware_verification_failed",
    "firmware_activation_failed": "firmware_activation_failed",
    "busy": "busy",
    "internal": "gateway_error",
}


class HeadendError(Exception):
    """Base: ``error_type`` is the activity error type, ``retryable`` whether a retry may help."""

    error_type = "gateway_error"

    def __init__(self, detail: str, *, error_type: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if error_type:
            self.error_type = error_type

    @property
    def retryable(self) -> bool:
        return self.error_type in RETRYABLE_ERRORS


class ConnectionLost(HeadendError):
    """The connection dropped, timed out or was closed for a protocol violation while a request
    was outstanding. Retryable: the command ID makes the repeat safe."""

    error_type = "connection_lost"


class Unreachable(HeadendError):
    error_type = "unreachable"


class UnknownGateway(HeadendError):
    error_type = "unknown_gateway"


class CommandFailed(HeadendError):
    """The gateway answered with an error status (and usually an ``<error reason>``)."""

    def __init__(self, status: int, reason: str | None, detail: str, **extra: str) -> None:
        if reason in REASON_TO_ERROR:
            error_type = REASON_TO_ERROR[reason]
        elif status >= 500:
            error_type = "gateway_error"
        else:
            error_type = "rejected"
        super().__init__(f"gateway answered {status} {reason or ''}: {detail}".strip(), error_type=error_type)
        self.status = status
        self.reason = reason or ("internal" if status >= 500 else "rejected")
        self.extra = extra


class ProtocolViolation(HeadendError):
    """The gateway broke the protocol (bad HTTP, oversize, bad CMS, answered for another ID)."""

    error_type = "connection_lost"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
