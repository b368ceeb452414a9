"""Reading meter data the way users ask for it: a metering point's series, its values per quarter
hour in a layer (raw | validated | final) as known at a time, data quality per day, the delivery
log, and grid state. Every query takes the market partner scope of the caller (an EMT user sees
its own series only)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput, NotFound
from domain.locations.models import MeteringPoint
from domain.meterdata import repository as repo
from domain.meterdata.days import SLOT, day_start, days_between, local_day, slots_in
from domain.meterdata.models import LAYERS, GridMeasurement, MeterDelivery, MeterReading, MeterSeries
from domain.meterdata.quality import Quality

Layer = Literal["raw", "validated", "final"]
MAX_DAYS = 400  # one request reads at most this many days of one series

# Which stored layers each asked-for layer takes its newest version from.
LAYERS_OF: dict[Layer, tuple[int, ...]] = {
    "raw": (LAYERS["raw"],),
    "validated": (LAYERS["raw"], LAYERS["validated"]),
    "final": (LAYERS["raw"], LAYERS["validated"], LAYERS["edited"]),
}


class MeteringPointNotFound(NotFound):
    code = "metering_point_not_found"


class SeriesNotFound(NotFound):
    code = "series_not_found"


class InvalidRange(InvalidInput):
    code = "invalid_range"


@dataclass(frozen=True, kw_only=True)
class Interval:
    start: dt.datetime
    end: dt.datetime
    value: int | None
    quality: Quality
    status: int
    version: int | None  # the day version the value comes from (None: no version of the day yet)
    note: dict[str, Any] | None


async def metering_point(session: AsyncSession, melo: str) -> MeteringPoint:
    found = await session.scalar(select(MeteringPoint).where(MeteringPoint.melo == melo.strip().upper()))
    if found is None:
        raise MeteringPointNotFound(f"metering point {melo!r} not found")
    return found


async def series_of(session: AsyncSession, melo: str, *, scope: str | None) -> Sequence[MeterSeries]:
    """The series of a metering point; ``scope`` (a market partner ID) limits them to that partner's."""
    mp = await metering_point(session, melo)
    stmt = select(MeterSeries).where(MeterSeries.metering_point_id == mp.id).order_by(MeterSeries.obis,
                                                                                      MeterSeries.market_partner)
    if scope is not None:
        stmt = stmt.where(MeterSeries.market_partner == scope)
    return (await session.scalars(stmt)).all()


async def one_series(session: AsyncSession, melo: str, obis: str, *, market_partner: str | None,
                     scope: str | None) -> MeterSeries:
    """The series of ``obis`` at the metering point; the market partner may be left out when only
    one partner has that series (or the caller's scope names it)."""
    wanted = market_partner or scope
    if scope is not None and market_partner is not None and market_partner != scope:
        raise SeriesNotFound(f"no series {obis} of {market_partner} at {melo}")
    matches = [s for s in await series_of(session, melo, scope=scope) if s.obis == obis
               and (wanted is None or s.market_partner == wanted)]
    if not matches:
        raise SeriesNotFound(f"no series {obis}{f' of {wanted}' if wanted else ''} at metering point {melo}")
    if len(matches) > 1:
        raise InvalidInput(f"{len(matches)} market partners have series {obis} at {melo}: name one "
                           f"(market_partner={', '.join(s.market_partner for s in matches)})",
                           code="market_partner_required")
    return matches[0]


def check_range(first: dt.date, last: dt.date) -> None:
    if last < first:
        raise InvalidRange(f"the range ends ({last}) before it starts ({first})")
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidRange(f"at most {MAX_DAYS} days per request")


async def intervals(session: AsyncSession, series: MeterSeries, first: dt.date, last: dt.date, *,
                    layer: Layer = "final", as_of: dt.datetime | None = None) -> list[Interval]:
    """One entry per quarter hour from the local start of ``first`` to the end of ``last``."""
    check_range(first, last)
    days = days_between(first, last)
    found = await repo.latest_days(session, [(series.id, d) for d in days], layers=LAYERS_OF[layer], as_of=as_of)
    out: list[Interval] = []
    for day in days:
        row = found.get((series.id, day))
        start = day_start(day)
        status = dict(enumerate(row.statuses())) if row else {}
        notes = row.notes or {} if row else {}
        for slot in range(slots_in(day)):
            begin = start + slot * SLOT
            value = row.values[slot] if row else None
            quality = Quality(row.quality[slot]) if row else Quality.MISSING
            out.append(Interval(start=begin, end=begin + SLOT, value=value, quality=quality,
                                status=status.get(slot, 0), version=row.version if row else None,
                                note=notes.get(str(slot))))
    return out


@dataclass(frozen=True, kw_only=True)
class DayQuality:
    day: dt.date
    slots: int
    with_value: int
    substitutes: int
    missing: int
    version: int | None
    layer: str | None

    @property
    def completeness(self) -> float:
        return self.with_value / self.slots if self.slots else 0.0


async def day_quality(session: AsyncSession, series: MeterSeries, first: dt.date, last: dt.date
                      ) -> list[DayQuality]:
    """Completeness and share of substitutes of each day's final version."""
    check_range(first, last)
    days = days_between(first, last)
    found = await repo.latest_days(session, [(series.id, d) for d in days], layers=LAYERS_OF["final"])
    names = {v: k for k, v in LAYERS.items()}
    out = []
    for day in days:
        row = found.get((series.id, day))
        n = slots_in(day)
        if row is None:
            out.append(DayQuality(day=day, slots=n, with_value=0, substitutes=0, missing=n, version=None, layer=None))
            continue
        with_value = sum(v is not None for v in row.values)
        out.append(DayQuality(day=day, slots=n, with_value=with_value,
                              substitutes=sum(q == Quality.SUBSTITUTE for q in row.quality),
                              missing=n - with_value, version=row.version, layer=names[row.layer]))
    return out


async def readings(session: AsyncSession, series: MeterSeries, first: dt.datetime, last: dt.datetime
                   ) -> Sequence[MeterReading]:
    """Point readings (newest version per time) in ``[first, last]``."""
    latest = (select(MeterReading.series_id, MeterReading.at, func.max(MeterReading.version).label("v"))
              .where(MeterReading.series_id == series.id, MeterReading.at >= first, MeterReading.at <= last)
              .group_by(MeterReading.series_id, MeterReading.at).subquery())
    return (await session.scalars(select(MeterReading).join(
        latest, (latest.c.series_id == MeterReading.series_id) & (latest.c.at == MeterReading.at)
        & (latest.c.v == MeterReading.version)).order_by(MeterReading.at))).all()


def deliveries(*, scope: str | None, outcome: str | None = None, gateway: str | None = None,
               before_id: int | None = None, limit: int = 100) -> Select[MeterDelivery]:
    """The delivery log, newest first (keyset by id)."""
    stmt = select(MeterDelivery).order_by(MeterDelivery.id.desc()).limit(limit)
    if scope is not None:
        stmt = stmt.where(MeterDelivery.recipient == scope)
    if outcome:
        stmt = stmt.where(MeterDelivery.outcome == outcome)
    if gateway:
        stmt = stmt.where(MeterDelivery.gateway_id == gateway)
    if before_id is not None:
        stmt = stmt.where(MeterDelivery.id < before_id)
    return stmt


@dataclass(frozen=True, kw_only=True)
class GridValue:
    melo: str
    obis: str
    at: dt.datetime
    value: int | None
    scaler: int
    unit: int
    threshold: bool


async def latest_grid_state(session: AsyncSession, segment: str, *, scope: str | None) -> list[GridValue]:
    """The newest value of each grid state quantity of each metering point in a network segment."""
    stmt = (select(MeteringPoint.melo, MeterSeries.obis, GridMeasurement.at, GridMeasurement.value,
                   MeterSeries.scaler, MeterSeries.unit, GridMeasurement.threshold)
            .join(MeterSeries, MeterSeries.id == GridMeasurement.series_id)
            .join(MeteringPoint, MeteringPoint.id == MeterSeries.metering_point_id)
            .where(GridMeasurement.segment == segment)
            .ext(distinct_on(GridMeasurement.series_id))
            .order_by(GridMeasurement.series_id, GridMeasurement.at.desc()))
    if scope is not None:
        stmt = stmt.where(MeterSeries.market_partner == scope)
    rows = await session.execute(stmt)
    return sorted((GridValue(melo=m, obis=o, at=at, value=v, scaler=s, unit=u, threshold=th)
                   for m, o, at, v, s, u, th in rows), key=lambda g: (g.melo, g.obis))


async def grid_values(session: AsyncSession, series: MeterSeries, first: dt.datetime, last: dt.datetime
                      ) -> Sequence[GridMeasurement]:
    return (await session.scalars(select(GridMeasurement).where(
        GridMeasurement.series_id == series.id, GridMeasurement.at >= first, GridMeasurement.at <= last)
        .order_by(GridMeasurement.at))).all()


def local_range(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The instants from the local start of ``first`` to the local end of ``last``."""
    return day_start(first), day_start(last + dt.timedelta(days=1))


def today() -> dt.date:
    return local_day(dt.datetime.now(dt.UTC))
