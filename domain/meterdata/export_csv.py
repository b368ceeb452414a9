"""A series as CSV: one row per quarter hour of the period, in the layer asked for as known at a
time. [choice] RFC 4180 with a comma, a header row, UTF-8, "\\n" line ends; times in UTC (ISO 8601,
``Z``); the value in the series' unit with its scaler applied, "." as decimal point; quality as the
MSCONS qualifier (a quarter hour no version holds a value for is empty with ``Z30``); method and
reason from the value's note, as written there."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from domain.meterdata.days import SLOT, day_start, days_between, slots_in
from domain.meterdata.export_repository import Due
from domain.meterdata.export_webhook import UNIT_SYMBOLS
from domain.meterdata.quality import Quality

HEADER = ("start", "end", "value", "unit", "quality", "method", "reason")
CONTENT_TYPE = "text/csv; charset=utf-8"


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def amount(value: int | None, scaler: int) -> str:
    if value is None:
        return ""
    if scaler == 0:
        return str(value)
    return format(Decimal(value).scaleb(scaler), "f")


def _note(notes: Mapping[str, Any] | None, slot: int) -> Mapping[str, Any]:
    found = notes.get(str(slot)) if notes else None
    return found if isinstance(found, Mapping) else {}


def rows(days: Mapping[dt.date, Due], first: dt.date, last: dt.date, *, unit: int, scaler: int
         ) -> Iterable[tuple[str, ...]]:
    symbol = UNIT_SYMBOLS.get(unit, str(unit))
    for day in days_between(first, last):
        found = days.get(day)
        start = day_start(day)
        for slot in range(slots_in(day)):
            begin = start + slot * SLOT
            if found is None or slot >= len(found.values):
                yield _iso(begin), _iso(begin + SLOT), "", symbol, Quality.MISSING.mscons, "", ""
                continue
            note = _note(found.notes, slot)
            yield (_iso(begin), _iso(begin + SLOT), amount(found.values[slot], scaler), symbol,
                   Quality(found.quality[slot]).mscons, str(note.get("method") or ""), str(note.get("reason") or ""))


def write(days: Mapping[dt.date, Due], first: dt.date, last: dt.date, *, unit: int, scaler: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows(days, first, last, unit=unit, scaler=scaler))
    return out.getvalue().encode()
