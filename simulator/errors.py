"""Error answers of a gateway (docs/protocol.md section 9): :class:`CommandError`, the HTTP status
of each reason and the ``<error>`` element that carries it."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml

from simulator import xmlcodec as X

ERROR_STATUS = {
    "malformed": 400, "cms_invalid": 403, "rejected": 403, "not_found": 404, "unsupported": 405,
    "command_conflict": 409, "offset_mismatch": 409, "meter_missing": 409, "not_paired": 409,
    "unknown_profile": 409, "unknown_recipient": 409, "certificate_invalid": 422, "invalid_profile": 422,
    "firmware_verification_failed": 422, "firmware_activation_failed": 500, "busy": 503, "internal": 500,
}


class CommandError(Exception):
    """An error answer (docs/protocol.md section 9)."""

    def __init__(self, reason: str, text: str, *, status: int | None = None, **attrs: object) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text
        self.status = status or ERROR_STATUS.get(reason, 500)
        self.attrs = attrs


def error_element(gid: str, err: CommandError) -> ET.Element:
    return X.element("error", {"gateway": gid, "reason": err.reason, **err.attrs}, err.text)
