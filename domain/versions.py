"""Firmware version strings and their comparable key.

Vendors write versions as ``3.04.0100``, ``V2.1.0`` or ``2.1.0-rc1``. The comparable key is the
first dotted run of numbers, padded with zeros to four parts: ``2.1`` == ``2.1.0`` < ``2.10``.
A suffix (``-rc1``) does not take part in comparisons. The database computes the same key in a
generated column (``VERSION_KEY_SQL``), so imports and API writes cannot disagree.
"""

from __future__ import annotations

import re

from core.errors import InvalidInput

VERSION_RE = re.compile(r"^[A-Za-z]{0,3}\d{1,6}(?:\.\d{1,6}){0,5}(?:[-+_ ][A-Za-z0-9.\-+_]{1,30})?$")
_NUMBERS_RE = re.compile(r"\d+(?:\.\d+)*")
KEY_PARTS = 4


class InvalidVersion(InvalidInput):
    code = "invalid_firmware_version"


def validate_version(value: str) -> str:
    if not VERSION_RE.fullmatch(value or ""):
        raise InvalidVersion(
            f"invalid firmware version {value!r}: numbers separated by '.', optionally a short prefix "
            "like 'V' and a suffix like '-rc1' (e.g. 2.1.0, V3.04.0100)"
        )
    return value


def version_key(value: str) -> tuple[int, ...]:
    """The comparable key of a version string (or a filter literal like ``2.1``)."""
    m = _NUMBERS_RE.search(value)
    if not m:
        raise InvalidVersion(f"{value!r} is not a version")
    parts = [int(p) for p in m.group(0).split(".")][:KEY_PARTS]
    return tuple(parts + [0] * (KEY_PARTS - len(parts)))


def version_key_sql(column: str) -> str:
    """SQL for the generated key column; immutable, NULL for NULL (array || NULL is not NULL)."""
    return (f"CASE WHEN {column} IS NULL THEN NULL ELSE "
            f"(string_to_array(substring({column} from '[0-9]+(?:\\.[0-9]+)*'), '.')::integer[]"
            f" || '{{0,0,0,0}}'::integer[])[1:{KEY_PARTS}] END")
