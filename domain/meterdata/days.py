"""The German market day and its quarter hours. A day runs from local midnight to local midnight
(Europe/Berlin): 96 quarter hours, 92 on the day clocks go forward, 100 on the day they go back.
Slot ``i`` of a day is the quarter hour starting ``i`` x 15 minutes (in UTC) after its start."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
SLOT = dt.timedelta(minutes=15)
SLOT_S = 900


@lru_cache(maxsize=4096)
def day_start(day: dt.date) -> dt.datetime:
    """Local midnight of ``day`` in UTC."""
    return dt.datetime.combine(day, dt.time(), BERLIN).astimezone(dt.UTC)


def day_end(day: dt.date) -> dt.datetime:
    return day_start(day + dt.timedelta(days=1))


@lru_cache(maxsize=4096)
def slots_in(day: dt.date) -> int:
    """96, or 92 / 100 on the DST change days."""
    return int((day_end(day) - day_start(day)).total_seconds()) // SLOT_S


def local_day(at: dt.datetime) -> dt.date:
    """The market day ``at`` (an aware time) lies in."""
    return at.astimezone(BERLIN).date()


def slot_of(start: dt.datetime) -> tuple[dt.date, int]:
    """(day, slot index) of the quarter hour that starts at ``start``."""
    day = local_day(start)
    offset = int((start - day_start(day)).total_seconds())
    if offset % SLOT_S:
        raise ValueError(f"{start.isoformat()} is not the start of a quarter hour")
    return day, offset // SLOT_S


def slot_start(day: dt.date, index: int) -> dt.datetime:
    return day_start(day) + index * SLOT


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """``first`` to ``last``, both included."""
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
