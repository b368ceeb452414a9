"""Field validators shared by the API services and the CSV imports: one definition of what a
valid value is. Each takes the raw text and returns the normalised value or raises
``InvalidInput`` with a reason code."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from core.errors import InvalidInput
from core.ids import DEVICE_ID_RE, parse_device_id, validate_malo, validate_market_partner_id, validate_melo
from domain.versions import validate_version

BERLIN = ZoneInfo("Europe/Berlin")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")
_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,39}$")
_DEVICE_TYPE_CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,59}$")
_POSTCODE_RE = re.compile(r"^\d{5}$")
_HEX_RE = re.compile(r"^(?:[0-9A-Fa-f]{32}|[0-9A-Fa-f]{64})$")
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z]{2,}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


# Imports validate hundreds of thousands of IDs: the common valid case is one regex match, the
# precise reason for a bad ID comes from domain.ids.parse_device_id.
_GATEWAY_SPARTE = frozenset("E")
_METER_SPARTES = frozenset("16789")
_ALL_SPARTES = _GATEWAY_SPARTE | _METER_SPARTES


def gateway_id(value: str) -> str:
    normal = value.strip().upper()
    if DEVICE_ID_RE.fullmatch(normal) and normal[0] in _GATEWAY_SPARTE:
        return normal
    return str(parse_device_id(normal, gateway=True))


def meter_id(value: str) -> str:
    normal = value.strip().upper()
    if DEVICE_ID_RE.fullmatch(normal) and normal[0] in _METER_SPARTES:
        return normal
    return str(parse_device_id(normal, gateway=False))


def device_id(value: str) -> str:
    normal = value.strip().upper()
    if DEVICE_ID_RE.fullmatch(normal) and normal[0] in _ALL_SPARTES:
        return normal
    return str(parse_device_id(normal))


def firmware(value: str) -> str:
    return validate_version(value.strip())


def segment(value: str) -> str:
    if not _SEGMENT_RE.fullmatch(value):
        raise InvalidInput(f"invalid network segment {value!r}: 1-64 of A-Z, a-z, 0-9, '_', '.', ':', '/', '-'",
                           code="invalid_segment")
    return value


def code(value: str, what: str = "connection point code") -> str:
    if not _CODE_RE.fullmatch(value):
        raise InvalidInput(f"invalid {what} {value!r}: 1-40 of A-Z, a-z, 0-9, '_', '.', ':', '/', '-'",
                           code="invalid_code")
    return value


def device_type_code(value: str) -> str:
    if not _DEVICE_TYPE_CODE_RE.fullmatch(value):
        raise InvalidInput(f"invalid device type code {value!r}: lower-case letters, digits, '_', '.', '-'",
                           code="invalid_device_type_code")
    return value


def postcode(value: str) -> str:
    if not _POSTCODE_RE.fullmatch(value):
        raise InvalidInput(f"invalid postcode {value!r}: 5 digits", code="invalid_postcode")
    return value


def text(value: str, max_length: int, what: str = "value") -> str:
    if len(value) > max_length:
        raise InvalidInput(f"{what} is longer than {max_length} characters", code="too_long")
    if _CONTROL_RE.search(value):
        raise InvalidInput(f"{what} contains control characters", code="invalid_text")
    return value


def mp_id(value: str) -> str:
    return validate_market_partner_id(value.strip())


def melo(value: str) -> str:
    return validate_melo(value.strip().upper())


def malo(value: str) -> str:
    return validate_malo(value.strip())


def mk0(value: str) -> bytes:
    """Meter master key MK0 as hex (16 or 32 bytes). The message never repeats the value."""
    cleaned = value.strip().replace(" ", "")
    if not _HEX_RE.fullmatch(cleaned):
        raise InvalidInput("invalid MK0: 32 or 64 hexadecimal characters (a 128- or 256-bit key)",
                           code="invalid_mk0")
    return bytes.fromhex(cleaned)


def email(value: str) -> str:
    if not _EMAIL_RE.fullmatch(value):
        raise InvalidInput(f"invalid e-mail address {value!r}", code="invalid_email")
    return value


def choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise InvalidInput(f"invalid {what} {value!r}: one of {', '.join(choices)}", code=f"invalid_{what}")
    return value


def iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"invalid date {value!r}: YYYY-MM-DD", code="invalid_date") from None


def aware(value: datetime | None) -> datetime | None:
    """A timestamp without offset is German local time (as in import files)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=BERLIN)


def iso_datetime(value: str) -> datetime:
    """ISO 8601 timestamp; a date alone or a time without offset is German local time."""
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), BERLIN)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"invalid timestamp {value!r}: ISO 8601, e.g. 2025-01-01T00:00:00+01:00",
                           code="invalid_datetime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=BERLIN)


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "ja"):
        return True
    if lowered in ("false", "no", "0", "nein"):
        return False
    raise InvalidInput(f"invalid boolean {value!r}: true or false", code="invalid_boolean")
