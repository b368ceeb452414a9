"""Days as VEE compares them: German public holidays, day classes for comparable days, the standard
load profile's day types and seasons, and a day's slots on the local clock (DST days included).

Public holidays are the nationwide ones (and the one-off nationwide Reformation Day 2017); regional
holidays are not known per metering point yet. As in the BDEW profiles, 24 and 31 December count as
Saturdays when they fall on a workday."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache
from typing import TypeVar

from domain.meterdata.days import BERLIN, slot_start, slots_in

QUARTERS = 96  # quarter hours of the local clock day
T = TypeVar("T")


def easter(year: int) -> dt.date:
    """Easter Sunday (Gregorian; anonymous algorithm, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


@lru_cache(maxsize=256)
def holidays(year: int) -> frozenset[dt.date]:
    """Nationwide public holidays in Germany."""
    e = easter(year)
    fixed = {dt.date(year, 1, 1), dt.date(year, 5, 1), dt.date(year, 10, 3), dt.date(year, 12, 25),
             dt.date(year, 12, 26)}
    moving = {e - dt.timedelta(days=2), e + dt.timedelta(days=1), e + dt.timedelta(days=39),
              e + dt.timedelta(days=50)}
    once = {dt.date(2017, 10, 31)} if year == 2017 else set()
    return frozenset(fixed | moving | once)


def is_holiday(day: dt.date) -> bool:
    return day in holidays(day.year)


def day_type(day: dt.date) -> str:
    """``workday``, ``saturday`` or ``sunday`` (Sundays and public holidays), as the BDEW profiles
    distinguish them."""
    if day.weekday() == 6 or is_holiday(day):
        return "sunday"
    if day.weekday() == 5 or (day.month == 12 and day.day in (24, 31)):
        return "saturday"
    return "workday"


def day_class(day: dt.date) -> str:
    """What a comparable day must share: the weekday and the day type (a workday is compared with
    the same weekday, a Saturday with Saturdays, a Sunday or holiday with Sundays and holidays)."""
    kind = day_type(day)
    return f"workday{day.weekday()}" if kind == "workday" else kind


def comparable_days(day: dt.date, count: int, *, lookback_weeks: int | None = None) -> list[dt.date]:
    """The ``count`` most recent days before ``day`` of the same class, newest first, looking back at
    most ``lookback_weeks`` (default twice ``count``) weeks."""
    wanted = day_class(day)
    found: list[dt.date] = []
    limit = 7 * (lookback_weeks if lookback_weeks is not None else 2 * count)
    for back in range(1, limit + 1):
        candidate = day - dt.timedelta(days=back)
        if day_class(candidate) == wanted:
            found.append(candidate)
            if len(found) == count:
                break
    return found


def season(day: dt.date) -> str:
    """The BDEW profile season: winter 1 Nov - 20 Mar, summer 15 May - 14 Sep, transition otherwise."""
    md = (day.month, day.day)
    if md >= (11, 1) or md <= (3, 20):
        return "winter"
    if (5, 15) <= md <= (9, 14):
        return "summer"
    return "transition"


@lru_cache(maxsize=4096)
def local_quarters(day: dt.date) -> tuple[int, ...]:
    """For each slot of ``day``, the quarter hour of the local clock it covers (0 = 00:00-00:15):
    ``range(96)`` on most days; on the day clocks go forward 02:00-03:00 is absent (92 slots), on
    the day they go back it is there twice (100 slots)."""
    out = []
    for i in range(slots_in(day)):
        local = slot_start(day, i).astimezone(BERLIN)
        out.append(local.hour * 4 + local.minute // 15)
    return tuple(out)


def by_quarter(day: dt.date, values: Sequence[T | None]) -> list[T | None]:
    """A day's values on the 96 quarter hours of the local clock: on a 92-slot day the missing hour is
    None, on a 100-slot day the first of the doubled hour is kept."""
    quarters = local_quarters(day)
    if len(quarters) == QUARTERS:
        return list(values[:QUARTERS]) + [None] * (QUARTERS - len(values))
    out: list[T | None] = [None] * QUARTERS
    for i in range(min(len(values), len(quarters)) - 1, -1, -1):  # backwards: the first occurrence wins
        out[quarters[i]] = values[i]
    return out
