"""Delivery periods of evaluation profiles in German local time (Europe/Berlin), and the simulated
clock that paces deliveries (``--time-scale``, ``--backfill-days``).

Days are local days: 96 quarter hours, 92 on the last Sunday of March, 100 on the last Sunday of
October. Local midnight is always a UTC quarter-hour boundary, so a period that starts at local
midnight and lasts a multiple of 15 minutes has its entries on UTC quarter hours.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Europe/Berlin")
DAY = 86400
QUARTER = 900
ORIGIN = dt.date(2020, 1, 1)  # periods of whole days count from this local date unless a profile names one


def local_date(t: float) -> dt.date:
    return dt.datetime.fromtimestamp(t, LOCAL_TZ).date()


def midnight(day: dt.date) -> float:
    """Unix time of local midnight opening ``day``."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ).timestamp()


def floor_quarter(t: float) -> float:
    return math.floor(t / QUARTER) * QUARTER


def ceil_quarter(t: float) -> float:
    return math.ceil(t / QUARTER) * QUARTER


def period_bounds(t: float, period_s: int, origin: dt.date = ORIGIN) -> tuple[float, float]:
    """The delivery period [a, b) containing ``t``. Whole days: ``period_s / 86400`` local days
    counted from ``origin``; shorter: steps of ``period_s`` from local midnight, the last one of a
    day ending at the next midnight."""
    day = local_date(t)
    if period_s % DAY == 0:
        days = period_s // DAY
        first = day - dt.timedelta(days=(day - origin).days % days)
        return midnight(first), midnight(first + dt.timedelta(days=days))
    start, end = midnight(day), midnight(day + dt.timedelta(days=1))
    a = start + (t - start) // period_s * period_s
    return a, min(a + period_s, end)


def quarters_of_day(day: dt.date) -> int:
    """92, 96 or 100."""
    return int((midnight(day + dt.timedelta(days=1)) - midnight(day)) // QUARTER)


@dataclass(frozen=True)
class Pace:
    """The simulated clock deliveries follow: it starts ``backfill_s`` before the real clock at
    ``start`` and runs ``scale`` times as fast until it has caught up, then it is the real clock.
    It never runs ahead of the real clock, so no period in the future is ever delivered."""

    start: float
    backfill_s: float = 0.0
    scale: float = 1.0

    def now(self, real: float) -> float:
        return min(real, self.start - self.backfill_s + self.scale * (real - self.start))

    def caught_up(self, real: float) -> bool:
        return self.now(real) >= real
