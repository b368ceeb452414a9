"""Queries of exports: what is due for a recipient (keyset pages over the final versions, with the
version it had before), claiming items, the export rows, and what was sent to whom and when.

A selection goes a page of series at a time (``next_series``, keyset on the series ID) and reads
those series' days or readings in one statement (``due_days``, ``due_readings``): the final version
of each, the metering point and OBIS code, and the version the recipient already has. The work of
a page is bounded by its series and the period, whatever lies behind the cursor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    Integer,
    Select,
    SQLColumnExpression,
    String,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from domain.locations.models import MarketLocation, MeteringPoint
from domain.meterdata.days import day_start, local_day
from domain.meterdata.export_models import MeterExport, MeterExportItem, WebhookReceiver
from domain.meterdata.models import MeterDay, MeterReading, MeterSeries
from domain.topology.models import MeteringPointMarketLocation

ZONE = "Europe/Berlin"
ONE_DAY = text("interval '1 day'")


@dataclass(frozen=True, kw_only=True)
class Audience:
    """Whose series go where. ``route_to``: a market partner ID that gets a series' day when master
    data makes it the metering point's grid operator or metering point operator, or the supplier
    of a market location assigned to it during that day. ``series_ids``: only these series."""

    sender: str  # the market partner the series belong to
    route_to: str | None = None
    series_ids: tuple[int, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class Due:
    """The final version of a (series, day or reading), and what a recipient had of it before."""

    series_id: int
    day: dt.date
    at: dt.datetime  # the reading's time, or the day's start
    version: int
    layer: int
    melo: str
    obis: str
    unit: int
    scaler: int
    values: list[int | None]  # a day's values; a reading: [value] (empty where ``current``)
    quality: bytes  # one byte per value
    notes: dict[str, Any] | None
    sent_version: int | None  # the newest version this recipient had before
    sent_document: str | None  # the document (BGM DE1004) that carried it
    meter_id: str | None = None  # readings
    reason: str | None = None  # readings
    current: bool = False  # the recipient has this version already


def _local_start(day: SQLColumnExpression[dt.date]) -> ColumnElement[dt.datetime]:
    return func.timezone(ZONE, cast(day, DateTime))


def _local_end(day: SQLColumnExpression[dt.date]) -> ColumnElement[dt.datetime]:
    return func.timezone(ZONE, cast(day, DateTime) + ONE_DAY)


async def next_series(session: AsyncSession, audience: Audience, *, kind: str | None, from_id: int | None,
                      limit: int) -> list[int]:
    """The IDs of the audience's series from ``from_id`` on (inclusive), in ID order: the keyset
    pages of a selection go series by series."""
    s = MeterSeries
    stmt = select(s.id).where(s.market_partner == audience.sender).order_by(s.id).limit(limit)
    if kind is not None:
        stmt = stmt.where(s.kind == kind)
    if audience.series_ids is not None:
        stmt = stmt.where(s.id.in_(audience.series_ids))
    if from_id is not None:
        stmt = stmt.where(s.id >= from_id)
    return list((await session.scalars(stmt)).all())


def _routing(audience: Audience, lo: SQLColumnExpression[dt.datetime], hi: SQLColumnExpression[dt.datetime],
             *, point: bool = False) -> list[ColumnElement[bool]]:
    """Conditions on ``MeterSeries`` for ``audience.route_to`` over ``lo`` .. ``hi`` (a day), or at
    ``lo`` = ``hi`` (a reading: an assignment that ends at that moment still holds it)."""
    if audience.route_to is None:
        return []
    s, a, ml, mp, to = MeterSeries, MeteringPointMarketLocation, MarketLocation, MeteringPoint, audience.route_to
    operator = exists().where(mp.id == s.metering_point_id, or_(mp.grid_operator == to, mp.msb == to))
    during = ((a.valid_from <= hi, or_(a.valid_to.is_(None), a.valid_to >= lo)) if point
              else (a.valid_from < hi, or_(a.valid_to.is_(None), a.valid_to > lo)))
    supplier = exists().where(a.metering_point_id == s.metering_point_id, ml.id == a.market_location_id,
                              ml.supplier == to, *during)
    return [or_(operator, supplier)]


def _previous(recipient: str, kind: str, item: str, series: ColumnElement[int], at: ColumnElement[dt.datetime]
              ) -> Any:
    i = MeterExportItem
    return (select(i.version, i.document)
            .where(i.recipient == recipient, i.kind == kind, i.item == item, i.series_id == series, i.at == at)
            .order_by(i.version.desc()).limit(1).lateral())


async def due_days(session: AsyncSession, audience: Audience, *, recipient: str, kind: str,
                   series_ids: Sequence[int], first: dt.date, last: dt.date,
                   after: tuple[int, dt.date] | None) -> list[Due]:
    """Of ``series_ids`` (interval series), every day in ``first`` .. ``last`` after the cursor
    that the audience gets: its final version (the newest validated or edited one, raw where none)
    and the version ``recipient`` had before, in (series, day) order."""
    d, s, mp = MeterDay, MeterSeries, MeteringPoint
    start = _local_start(d.day)
    inner = (select(d.series_id, d.day, d.version, d.layer, d.values, d.quality, d.notes, start.label("at"))
             .join(s, s.id == d.series_id)
             .where(d.series_id.in_(list(series_ids)), s.kind == "interval", d.day >= first, d.day <= last,
                    *_routing(audience, start, _local_end(d.day)))
             .ext(distinct_on(d.series_id, d.day))
             .order_by(d.series_id, d.day, (d.layer > 0).desc(), d.version.desc()))
    if after is not None:
        inner = inner.where(tuple_(d.series_id, d.day) > tuple_(literal(after[0]), literal(after[1])))
    final = inner.subquery()
    before = _previous(recipient, kind, "day", final.c.series_id, final.c.at)
    current = func.coalesce(before.c.version >= final.c.version, False)
    stmt = (select(final.c.series_id, final.c.day, final.c.version, final.c.layer, final.c.at,
                   case((current, None), else_=final.c["values"]).label("values"), final.c.quality, final.c.notes,
                   current.label("current"), s.obis, s.unit, s.scaler, mp.melo,
                   before.c.version.label("sent_version"), before.c.document.label("sent_document"))
            .join(s, s.id == final.c.series_id).join(mp, mp.id == s.metering_point_id)
            .outerjoin(before, true())
            .order_by(final.c.series_id, final.c.day))
    rows = await (await session.connection()).execute(stmt)  # Core rows: no ORM loading
    return [Due(series_id=r.series_id, day=r.day, at=r.at, version=r.version, layer=r.layer, melo=r.melo,
                obis=r.obis, unit=r.unit, scaler=r.scaler, values=list(r.values or ()), quality=bytes(r.quality),
                notes=r.notes, sent_version=r.sent_version, sent_document=r.sent_document, current=r.current)
            for r in rows]


async def due_readings(session: AsyncSession, audience: Audience, *, recipient: str, kind: str,
                       series_ids: Sequence[int], first: dt.date, last: dt.date,
                       after: tuple[int, dt.datetime] | None) -> list[Due]:
    """As ``due_days`` for the register readings of ``series_ids`` taken in ``first`` .. ``last``
    (local days)."""
    r, s, mp = MeterReading, MeterSeries, MeteringPoint
    lo = func.timezone(ZONE, cast(literal(first), DateTime))
    hi = func.timezone(ZONE, cast(literal(last), DateTime) + ONE_DAY)
    inner = (select(r.series_id, r.at, r.version, r.layer, r.value, r.quality, r.notes, r.meter_id, r.reason)
             .join(s, s.id == r.series_id)
             .where(r.series_id.in_(list(series_ids)), r.at >= lo, r.at < hi,
                    *_routing(audience, r.at, r.at, point=True))
             .ext(distinct_on(r.series_id, r.at))
             .order_by(r.series_id, r.at, (r.layer > 0).desc(), r.version.desc()))
    if after is not None:
        inner = inner.where(tuple_(r.series_id, r.at) > tuple_(literal(after[0]), literal(after[1])))
    final = inner.subquery()
    before = _previous(recipient, kind, "reading", final.c.series_id, final.c.at)
    current = func.coalesce(before.c.version >= final.c.version, False)
    stmt = (select(final, current.label("current"), s.obis, s.unit, s.scaler, mp.melo,
                   before.c.version.label("sent_version"), before.c.document.label("sent_document"))
            .join(s, s.id == final.c.series_id).join(mp, mp.id == s.metering_point_id)
            .outerjoin(before, true())
            .order_by(final.c.series_id, final.c.at))
    rows = await (await session.connection()).execute(stmt)  # Core rows: no ORM loading
    return [Due(series_id=x.series_id, day=local_day(x.at), at=x.at, version=x.version,
                layer=x.layer, melo=x.melo, obis=x.obis, unit=x.unit, scaler=x.scaler, values=[x.value],
                quality=bytes([x.quality]), notes=x.notes, sent_version=x.sent_version,
                sent_document=x.sent_document, meter_id=x.meter_id, reason=x.reason, current=x.current)
            for x in rows]


async def days_of_series(session: AsyncSession, series_id: int, first: dt.date, last: dt.date, *,
                         layers: Sequence[int], as_of: dt.datetime | None) -> list[Due]:
    """Per day of one series, the newest version among ``layers`` as known at ``as_of``, the
    non-raw ones first (``validated``: a validated version over a raw one, ...)."""
    d, s, mp = MeterDay, MeterSeries, MeteringPoint
    stmt = (select(d.series_id, d.day, d.version, d.layer, d.values, d.quality, d.notes, s.obis, s.unit, s.scaler,
                   mp.melo)
            .join(s, s.id == d.series_id).join(mp, mp.id == s.metering_point_id)
            .where(d.series_id == series_id, d.day >= first, d.day <= last, d.layer.in_(list(layers)))
            .ext(distinct_on(d.series_id, d.day))
            .order_by(d.series_id, d.day, (d.layer > 0).desc(), d.version.desc()))
    if as_of is not None:
        stmt = stmt.where(d.recorded_at <= as_of)
    rows = await session.execute(stmt)
    return [Due(series_id=r.series_id, day=r.day, at=day_start(r.day), version=r.version, layer=r.layer, melo=r.melo,
                obis=r.obis, unit=r.unit, scaler=r.scaler, values=list(r.values), quality=bytes(r.quality),
                notes=r.notes, sent_version=None, sent_document=None) for r in rows]


async def series_info(session: AsyncSession, series_id: int) -> tuple[MeterSeries, str] | None:
    found = (await session.execute(select(MeterSeries, MeteringPoint.melo)
                                   .join(MeteringPoint, MeteringPoint.id == MeterSeries.metering_point_id)
                                   .where(MeterSeries.id == series_id))).first()
    return (found[0], found[1]) if found else None


async def next_export_id(session: AsyncSession) -> int:
    value: int = (await session.execute(select(func.nextval("meter_exports_id_seq")))).scalar_one()
    return value


async def export_by_key(session: AsyncSession, key: str) -> MeterExport | None:
    return await session.scalar(select(MeterExport).where(MeterExport.key == key))


async def export_by_id(session: AsyncSession, export_id: int, *, for_update: bool = False) -> MeterExport | None:
    stmt = select(MeterExport).where(MeterExport.id == export_id)
    return await session.scalar(stmt.with_for_update() if for_update else stmt)


async def add_export(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(pg_insert(MeterExport).values(row))


async def update_export(session: AsyncSession, export_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(MeterExport).where(MeterExport.id == export_id).values(**values))


async def delete_export(session: AsyncSession, export_id: int) -> None:
    await session.execute(delete(MeterExport).where(MeterExport.id == export_id))


@dataclass(frozen=True, kw_only=True)
class Claim:
    series_id: int
    day: dt.date
    at: dt.datetime
    version: int
    corrects: int | None = None
    document: str | None = None


async def claim(session: AsyncSession, *, export_id: int, recipient: str, kind: str, item: str,
                claims: Sequence[Claim]) -> set[tuple[int, dt.datetime, int]]:
    """Record the items of an export; those another export already claimed are skipped. Returns
    (series, at, version) of the ones recorded here. One statement (arrays unnested), whatever the
    number of items."""
    if not claims:
        return set()
    arrays = func.unnest(
        bindparam("series_ids", [c.series_id for c in claims], type_=ARRAY(BigInteger)),
        bindparam("days", [c.day for c in claims], type_=ARRAY(Date)),
        bindparam("ats", [c.at for c in claims], type_=ARRAY(DateTime(timezone=True))),
        bindparam("versions", [c.version for c in claims], type_=ARRAY(Integer)),
        bindparam("corrects", [c.corrects for c in claims], type_=ARRAY(Integer)),
        bindparam("documents", [c.document for c in claims], type_=ARRAY(String)),
    ).table_valued("series_id", "day", "at", "version", "corrects", "document").render_derived(name="claims")
    i = MeterExportItem
    rows = select(literal(export_id, BigInteger), literal(recipient, String), literal(kind, String),
                  literal(item, String), arrays.c.series_id, arrays.c.day, arrays.c.at, arrays.c.version,
                  arrays.c.corrects, arrays.c.document)
    claimed = await session.execute(
        pg_insert(i).from_select(["export_id", "recipient", "kind", "item", "series_id", "day", "at", "version",
                                  "corrects", "document"], rows)
        .on_conflict_do_nothing().returning(i.series_id, i.at, i.version))
    return {(s, at, v) for s, at, v in claimed}


async def open_exports(session: AsyncSession, kind: str, recipient: str, limit: int = 100) -> list[int]:
    """Exports recorded for ``recipient`` that were not sent (a crash, a failed delivery)."""
    e = MeterExport
    return list((await session.scalars(select(e.id).where(e.kind == kind, e.recipient == recipient,
                                                         e.state != "sent").order_by(e.id).limit(limit))).all())


async def receiver_by_name(session: AsyncSession, name: str) -> WebhookReceiver | None:
    return await session.scalar(select(WebhookReceiver).where(WebhookReceiver.name == name))


async def receiver_by_id(session: AsyncSession, receiver_id: int) -> WebhookReceiver | None:
    return await session.get(WebhookReceiver, receiver_id)


def _exports_query() -> Select[MeterExport]:
    return select(MeterExport).order_by(MeterExport.id.desc())


async def exports(session: AsyncSession, *, recipient: str | None = None, kind: str | None = None,
                  before_id: int | None = None, limit: int = 100) -> list[MeterExport]:
    """Newest first; ``before_id`` is the keyset cursor of the next page. The content is not loaded."""
    stmt = _exports_query().options(defer(MeterExport.content)).limit(limit)
    if recipient is not None:
        stmt = stmt.where(MeterExport.recipient == recipient)
    if kind is not None:
        stmt = stmt.where(MeterExport.kind == kind)
    if before_id is not None:
        stmt = stmt.where(MeterExport.id < before_id)
    return list((await session.scalars(stmt)).all())


@dataclass(frozen=True, kw_only=True)
class SentItem:
    recipient: str
    kind: str
    item: str
    series_id: int
    day: dt.date
    at: dt.datetime
    version: int
    corrects: int | None
    export_id: int
    state: str
    sent_at: dt.datetime | None
    document: str | None


async def items_of_series(session: AsyncSession, series_id: int, first: dt.date, last: dt.date) -> list[SentItem]:
    i, e = MeterExportItem, MeterExport
    rows = await session.execute(
        select(i.recipient, i.kind, i.item, i.series_id, i.day, i.at, i.version, i.corrects, i.export_id, e.state,
               e.sent_at, i.document)
        .join(e, e.id == i.export_id)
        .where(i.series_id == series_id, i.day >= first, i.day <= last)
        .order_by(i.day, i.at, i.recipient, i.version))
    return [SentItem(recipient=r.recipient, kind=r.kind, item=r.item, series_id=r.series_id, day=r.day, at=r.at,
                     version=r.version, corrects=r.corrects, export_id=r.export_id, state=r.state,
                     sent_at=r.sent_at, document=r.document) for r in rows]


async def items_of_export(session: AsyncSession, export_id: int) -> list[SentItem]:
    i, e = MeterExportItem, MeterExport
    rows = await session.execute(
        select(i.recipient, i.kind, i.item, i.series_id, i.day, i.at, i.version, i.corrects, i.export_id, e.state,
               e.sent_at, i.document)
        .join(e, e.id == i.export_id).where(i.export_id == export_id).order_by(i.series_id, i.at))
    return [SentItem(recipient=r.recipient, kind=r.kind, item=r.item, series_id=r.series_id, day=r.day, at=r.at,
                     version=r.version, corrects=r.corrects, export_id=r.export_id, state=r.state,
                     sent_at=r.sent_at, document=r.document) for r in rows]


async def mark_sent(session: AsyncSession, export_id: int, at: dt.datetime) -> None:
    e = MeterExport
    await session.execute(update(e).where(e.id == export_id, e.state != "sent")
                          .values(state="sent", sent_at=at, attempts=e.attempts + 1))


async def record_attempt(session: AsyncSession, export_id: int, error: str, *, failed: bool) -> None:
    e = MeterExport
    values: dict[str, Any] = {"attempts": e.attempts + 1, "last_error": error[:2000]}
    if failed:
        values["state"] = "failed"
    await session.execute(update(e).where(e.id == export_id, e.state != "sent").values(**values))


async def mark_failed(session: AsyncSession, export_id: int, error: str) -> None:
    e = MeterExport
    await session.execute(update(e).where(e.id == export_id, e.state != "sent")
                          .values(state="failed", last_error=error[:2000]))

