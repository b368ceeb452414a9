"""Typed filter fields: how a literal becomes a value of the field's type and how a comparison
becomes a SQL predicate with bind parameters. Field names come from a fixed table per entity
(domain/filters/entities.py); no text of the filter ever reaches SQL except as a bound value."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Integer, and_, any_, false, func, literal, not_, or_, true
from sqlalchemy.dialects.postgresql import ARRAY, array

from domain.filters.errors import InvalidFilter
from domain.filters.parser import Comparison, Value
from domain.versions import version_key

BERLIN = ZoneInfo("Europe/Berlin")


class VK(StrEnum):
    """Value kinds."""

    TEXT = "text"  # names, compared case-insensitively
    CODE = "code"  # codes and keys (segments, grid areas, partner IDs), compared exactly: indexes apply
    ID = "id"  # identifiers, compared upper-case (device IDs, MeLo)
    ENUM = "enum"
    VERSION = "version"  # firmware versions, semantic comparison (2.1 == 2.1.0 < 2.10)
    DATE = "date"
    DATETIME = "datetime"
    INT = "int"
    BOOL = "bool"


ORDERED = {VK.VERSION, VK.DATE, VK.DATETIME, VK.INT}
Builder = Callable[[Any], ColumnElement[bool]]
# Given a predicate builder for a column and the reference time, the field's condition.
Apply = Callable[[Builder, Any], ColumnElement[bool]]


@dataclass(frozen=True)
class Field:
    kind: VK
    apply: Apply
    doc: str
    choices: tuple[str, ...] = ()
    nullable: bool = True  # a plain nullable column: negation must treat NULL as "not equal"
    array: bool = False  # the column is an array: '=' means "contains"


def column(attr: Any, kind: VK, doc: str, *, nullable: bool = True, choices: tuple[str, ...] = (),
           array: bool = False) -> Field:
    return Field(kind, lambda build, at: build(attr), doc, choices, nullable, array)


def related(apply: Apply, kind: VK, doc: str, *, choices: tuple[str, ...] = (), array: bool = False) -> Field:
    """A field of a related row (device type, current assignment). EXISTS/IN are never NULL."""
    return Field(kind, apply, doc, choices, False, array)


# -- literals ---------------------------------------------------------------------------------

_RELATIVE_RE = re.compile(r"^(today|now)(?:([+-])(\d{1,5})([dhm]))?$", re.IGNORECASE)


def _relative(text: str, kind: VK) -> date | datetime | None:
    m = _RELATIVE_RE.fullmatch(text)
    if not m:
        return None
    base_name, sign, amount, unit = m.groups()
    delta = timedelta()
    if amount:
        delta = timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit.lower()]: int(amount)})
        if sign == "-":
            delta = -delta
    if kind == VK.DATE:
        if base_name.lower() != "today" or (unit and unit.lower() != "d"):
            return None
        return datetime.now(BERLIN).date() + delta
    base = (datetime.now(UTC) if base_name.lower() == "now"
            else datetime.combine(datetime.now(BERLIN).date(), time(), BERLIN))
    return base + delta


def parse_datetime(text: str) -> datetime:
    """ISO 8601; a date alone or a time without offset is read as German local time."""
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(), BERLIN)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=BERLIN)


def convert(field_name: str, field: Field, value: Value, text: str) -> Any:
    raw = value.text
    try:
        match field.kind:
            case VK.TEXT | VK.CODE:
                return raw
            case VK.ID:
                return raw.upper()
            case VK.ENUM:
                normal = raw.lower() if all(c == c.lower() for c in field.choices) else raw.upper()
                if normal not in field.choices:
                    raise ValueError(f"{raw!r} is not a {field_name}; one of: {', '.join(field.choices)}")
                return normal
            case VK.VERSION:
                return list(version_key(raw))
            case VK.DATE:
                rel = _relative(raw, VK.DATE)
                return rel if rel is not None else date.fromisoformat(raw)
            case VK.DATETIME:
                rel = _relative(raw, VK.DATETIME)
                return rel if rel is not None else parse_datetime(raw)
            case VK.INT:
                return int(raw)
            case VK.BOOL:
                if raw.lower() in ("true", "yes", "1"):
                    return True
                if raw.lower() in ("false", "no", "0"):
                    return False
                raise ValueError(f"{raw!r} is not true or false")
    except InvalidFilter:
        raise
    except (ValueError, TypeError) as err:
        message = str(err) if field.kind in (VK.ENUM, VK.BOOL) else (
            f"{raw!r} is not a valid {field.kind.value} for {field_name}"
            + (" (ISO 8601, or today/now with +/-Nd)" if field.kind in (VK.DATE, VK.DATETIME) else ""))
        raise InvalidFilter(message, value.pos, text) from None
    raise AssertionError(field.kind)


# -- predicates -------------------------------------------------------------------------------

_NEGATIONS = {"!=": "=", "not_in": "in", "not_like": "like", "is_null": "is_not_null"}
_OP_NAMES = {"not_in": "not in", "not_like": "not like", "is_null": "is null", "is_not_null": "is not null"}


def _like_pattern(raw: str) -> str:
    return raw.replace("*", "%").replace("?", "_")


def predicate(name: str, field: Field, cmp: Comparison, text: str, at: Any) -> ColumnElement[bool]:
    op = cmp.op
    positive_op = _NEGATIONS.get(op, op)
    allowed = {"=", "!=", "in", "not_in", "is_null", "is_not_null"}
    if field.kind in ORDERED:
        allowed |= {"<", "<=", ">", ">="}
    if field.kind in (VK.TEXT, VK.CODE, VK.ID) and not field.array:
        allowed |= {"like", "not_like"}
    if field.kind == VK.BOOL:
        allowed = {"=", "!="}
    if op not in allowed:
        raise InvalidFilter(f"operator '{_OP_NAMES.get(op, op)}' does not apply to {field.kind.value} field "
                            f"{name!r}", cmp.op_pos, text)
    values = [convert(name, field, v, text) for v in cmp.values]

    def build(col: Any) -> ColumnElement[bool]:
        if field.kind == VK.TEXT and not field.array:
            col = func.lower(col)
            vals = [v.lower() for v in values]
        else:
            vals = values
        if field.kind == VK.VERSION:
            vals = [literal(v, ARRAY(Integer)) for v in vals]
        if positive_op == "is_not_null":
            return func.cardinality(col) > 0 if field.array else col.is_not(None)
        if field.array:
            if positive_op == "=":
                return any_(col) == vals[0]
            return col.overlap(array(vals))
        match positive_op:
            case "=":
                return col == vals[0]
            case "in":
                return col.in_(vals) if field.kind != VK.VERSION else or_(*[col == v for v in vals])
            case "like":
                return col.like(_like_pattern(vals[0]))
            case "<":
                return col < vals[0]
            case "<=":
                return col <= vals[0]
            case ">":
                return col > vals[0]
            case ">=":
                return col >= vals[0]
        raise AssertionError(positive_op)

    positive = field.apply(build, at)
    if op == positive_op:
        return positive
    # Negation is the complement: rows where the column is NULL count as "not equal".
    return not_(func.coalesce(positive, false())) if field.nullable else not_(positive)


def constant(value: bool) -> ColumnElement[bool]:
    return true() if value else false()


def both(*items: ColumnElement[bool]) -> ColumnElement[bool]:
    return and_(*items)
