"""Meter data of the MDM (docs/mdm.md): series of a metering point, their values per quarter hour in
a layer as known at a time (JSON or CSV), data quality per day, point readings, the delivery log
with refusals, and grid state data. An EMT user sees the series of its own market partner only."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import MeterDataReader, TenantAccess
from api.schemas import Page
from domain.meterdata import queries
from domain.meterdata.queries import Layer

router = APIRouter(prefix="/api/v1/tenants/{tenant}/meter-data", tags=["meter data"])

Melo = Annotated[str, Path(description="metering point (Zählpunkt, MeLo), 33 characters", max_length=33)]
Obis = Annotated[str, Query(description="OBIS code of the series, e.g. 1-1:1.29.0 (quarter-hour energy)",
                            max_length=20)]
First = Annotated[dt.date, Query(alias="from", description="first day (local German day)")]
Segment = Annotated[str, Path(max_length=64, description="network segment of the gateways")]
Last = Annotated[dt.date | None, Query(alias="to", description="last day, included (default: the first)")]


def _scope(access: TenantAccess) -> str | None:
    """The market partner whose data an EMT user may see; None: every partner's."""
    return access.market_partner_id if access.role == "emt" else None


class SeriesOut(BaseModel):
    obis: str
    market_partner: str
    kind: str
    unit: int
    scaler: int
    period_s: int


class IntervalOut(BaseModel):
    start: dt.datetime
    end: dt.datetime
    value: int | None
    quality: str  # MSCONS qualifier: 220 true, 67 substitute, Z18 provisional, Z30 missing, ...
    status: str  # 64-bit status word, hex (DS Tab. 15.1)
    version: int | None
    note: dict[str, object] | None


class ValuesOut(BaseModel):
    metering_point: str
    series: SeriesOut
    layer: str
    as_of: dt.datetime | None
    intervals: list[IntervalOut]


class DayQualityOut(BaseModel):
    day: dt.date
    slots: int
    with_value: int
    missing: int
    substitutes: int
    completeness: float
    version: int | None
    layer: str | None


class ReadingOut(BaseModel):
    at: dt.datetime
    value: int | None
    quality: str
    status: str
    reason: str
    meter_id: str | None
    version: int


class DeliveryOut(BaseModel):
    id: int
    received_at: dt.datetime
    gateway_id: str | None
    recipient: str
    delivery_ref: str | None
    taf: int | None
    profile_id: str | None
    reason: str | None
    outcome: str
    refusal: str | None
    detail: str | None
    values_stored: int
    first_at: dt.datetime | None
    last_at: dt.datetime | None
    size: int


class GridValueOut(BaseModel):
    metering_point: str
    obis: str
    at: dt.datetime
    value: int | None
    scaler: int
    unit: int
    threshold: bool


def _series_out(s: object) -> SeriesOut:
    return SeriesOut.model_validate(s, from_attributes=True)


@router.get("/metering-points/{melo}/series", response_model=list[SeriesOut])
async def series(access: MeterDataReader, melo: Melo) -> list[SeriesOut]:
    """Which quantities of the metering point the MDM holds, per market partner."""
    async with access.transaction() as session:
        return [_series_out(s) for s in await queries.series_of(session, melo, scope=_scope(access))]


@router.get("/metering-points/{melo}/values", response_model=ValuesOut,
            responses={200: {"content": {"text/csv": {}}}})
async def values(
    access: MeterDataReader, melo: Melo, obis: Obis, first: First, last: Last = None,
    layer: Annotated[Literal["raw", "validated", "final"], Query(description="raw: as received; validated: after "
                                                                            "VEE; final: with manual edits")] = "final",
    as_of: Annotated[dt.datetime | None, Query(description="as known at this time (ISO 8601 with offset)")] = None,
    market_partner: Annotated[str | None, Query(max_length=13)] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> ValuesOut | Response:
    """The series' values per quarter hour from the local start of ``from`` to the end of ``to``
    (92 or 100 quarter hours on the DST days), with quality, status word and the version each comes
    from."""
    layer_name: Layer = layer
    async with access.transaction() as session:
        s = await queries.one_series(session, melo, obis, market_partner=market_partner, scope=_scope(access))
        rows = await queries.intervals(session, s, first, last or first, layer=layer_name, as_of=as_of)
    items = [IntervalOut(start=r.start, end=r.end, value=r.value, quality=r.quality.mscons,
                         status=f"{r.status:016x}", version=r.version, note=r.note) for r in rows]
    if format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["start", "end", "value", "unit", "scaler", "quality", "status", "version"])
        for i in items:
            writer.writerow([i.start.isoformat(), i.end.isoformat(), "" if i.value is None else i.value, s.unit,
                             s.scaler, i.quality, i.status, "" if i.version is None else i.version])
        return Response(out.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{melo}_{obis}_{first}.csv"'})
    return ValuesOut(metering_point=melo, series=_series_out(s), layer=layer, as_of=as_of, intervals=items)


@router.get("/metering-points/{melo}/quality", response_model=list[DayQualityOut])
async def quality(access: MeterDataReader, melo: Melo, first: First, last: Last = None,
                  obis: Obis = "1-1:1.29.0", market_partner: Annotated[str | None, Query(max_length=13)] = None
                  ) -> list[DayQualityOut]:
    """Per day: completeness, missing and substituted quarter hours of the final version."""
    async with access.transaction() as session:
        s = await queries.one_series(session, melo, obis, market_partner=market_partner, scope=_scope(access))
        days = await queries.day_quality(session, s, first, last or first)
    return [DayQualityOut(day=d.day, slots=d.slots, with_value=d.with_value, missing=d.missing,
                          substitutes=d.substitutes, completeness=round(d.completeness, 4), version=d.version,
                          layer=d.layer) for d in days]


@router.get("/metering-points/{melo}/readings", response_model=list[ReadingOut])
async def readings(access: MeterDataReader, melo: Melo, first: First, last: Last = None,
                   obis: Obis = "1-0:1.8.0", market_partner: Annotated[str | None, Query(max_length=13)] = None
                   ) -> list[ReadingOut]:
    """Register readings at points in time (billing period ends, on-demand, closing and opening
    readings of a meter exchange)."""
    from domain.meterdata.quality import Quality

    start, end = queries.local_range(first, last or first)
    async with access.transaction() as session:
        s = await queries.one_series(session, melo, obis, market_partner=market_partner, scope=_scope(access))
        rows = await queries.readings(session, s, start, end)
    return [ReadingOut(at=r.at, value=r.value, quality=Quality(r.quality).mscons, status=f"{r.status:016x}",
                       reason=r.reason, meter_id=r.meter_id, version=r.version) for r in rows]


@router.get("/deliveries", response_model=Page[DeliveryOut])
async def deliveries(
    access: MeterDataReader,
    outcome: Annotated[Literal["stored", "duplicate", "conflict", "refused"] | None, Query()] = None,
    gateway: Annotated[str | None, Query(max_length=14)] = None,
    after: Annotated[int | None, Query(ge=1, le=2**62, description="`next_after` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[DeliveryOut]:
    """What gateways delivered, newest first, with the reason of every refusal."""
    async with access.transaction() as session:
        rows = (await session.scalars(queries.deliveries(scope=_scope(access), outcome=outcome, gateway=gateway,
                                                         before_id=after, limit=limit))).all()
    items = [DeliveryOut.model_validate(r, from_attributes=True) for r in rows]
    return Page(items=items, next_after=str(items[-1].id) if len(items) == limit else None)


@router.get("/grid/segments/{segment}/latest", response_model=list[GridValueOut])
async def grid_latest(access: MeterDataReader, segment: Segment) -> list[GridValueOut]:
    """The newest grid state value (TAF 10) of each quantity of each metering point in the segment."""
    async with access.transaction() as session:
        rows = await queries.latest_grid_state(session, segment, scope=_scope(access))
    return [GridValueOut(metering_point=g.melo, obis=g.obis, at=g.at, value=g.value, scaler=g.scaler, unit=g.unit,
                         threshold=g.threshold) for g in rows]


@router.get("/metering-points/{melo}/grid", response_model=list[GridValueOut])
async def grid(access: MeterDataReader, melo: Melo, obis: Obis, first: First, last: Last = None,
               market_partner: Annotated[str | None, Query(max_length=13)] = None) -> list[GridValueOut]:
    """Grid state values (TAF 10) of one quantity of the metering point over a range of days."""
    start, end = queries.local_range(first, last or first)
    async with access.transaction() as session:
        s = await queries.one_series(session, melo, obis, market_partner=market_partner, scope=_scope(access))
        rows = await queries.grid_values(session, s, start, end)
    return [GridValueOut(metering_point=melo, obis=obis, at=r.at, value=r.value, scaler=s.scaler, unit=s.unit,
                         threshold=r.threshold) for r in rows]
