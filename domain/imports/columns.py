"""Columns of import files: how a cell is validated and how the value is written to the stage
table through COPY (text format)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain import validators as v

NULL = "\\N"


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str  # type of the stage column
    parse: Callable[[str], Any]  # raises InvalidInput (with a reason code) for a bad cell
    required: bool = False  # the header must have it and every row a value
    doc: str = ""


def copy_text(value: Any) -> str:
    """A value in PostgreSQL COPY text format. Text has no control characters (validated), so
    only the backslash needs escaping."""
    if value is None:
        return NULL
    if isinstance(value, str):
        return value.replace("\\", "\\\\") if "\\" in value else value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def text_of(max_length: int, what: str) -> Callable[[str], str]:
    return lambda raw: v.text(raw, max_length, what)


def firmware(raw: str) -> str:
    return v.firmware(raw)


# Columns shared by several kinds.
DEVICE_TYPE = Column("device_type", "text", v.device_type_code, required=True, doc="device type code, e.g. emh-casa")
FIRMWARE = Column("firmware_version", "text", firmware, doc="e.g. 2.1.0")
