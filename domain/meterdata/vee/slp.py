"""The BDEW standard load profile H0 (households), shipped as data (``data/bdew_h0.csv``, source and
licence named there): the energy it gives each slot of a day, before scaling to a meter."""

from __future__ import annotations

import csv
import datetime as dt
from functools import lru_cache
from pathlib import Path

from domain.meterdata.vee.calendar import day_type, local_quarters, season

DATA = Path(__file__).parent / "data" / "bdew_h0.csv"
PROFILES = ("H0",)


@lru_cache(maxsize=1)
def _table() -> dict[str, tuple[float, ...]]:
    """``<season>_<day type>`` -> 96 mean powers in W for 1,000 kWh a year."""
    with DATA.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    return {col: tuple(float(r[col]) for r in rows) for col in rows[0] if col != "slot"}


def dynamisation(day: dt.date) -> float:
    """The BDEW dynamisation function of H0 (a 4th-degree polynomial in the day of the year)."""
    t = day.timetuple().tm_yday
    return -3.92e-10 * t**4 + 3.2e-7 * t**3 - 7.02e-5 * t**2 + 2.1e-3 * t + 1.24


@lru_cache(maxsize=2048)
def day_profile(day: dt.date, profile: str = "H0") -> tuple[float, ...]:
    """Energy in Wh of each slot of ``day`` (92, 96 or 100) for 1,000 kWh a year: the profile's
    quarter hour of the local clock (the doubled hour of the 100-slot day twice), dynamised."""
    if profile not in PROFILES:
        raise ValueError(f"unknown standard load profile {profile!r}")
    powers = _table()[f"{season(day)}_{day_type(day)}"]
    factor = dynamisation(day) / 4  # W over a quarter hour -> Wh
    return tuple(powers[q] * factor for q in local_quarters(day))
