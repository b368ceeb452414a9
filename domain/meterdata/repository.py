"""Queries of meter data. Batch-shaped: the receiver stores many deliveries per transaction, so
every lookup takes the whole batch's keys and answers in one statement."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, text, tuple_
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.devices.models import Gateway, Meter
from domain.locations.models import MeteringPoint
from domain.meterdata.models import LAYERS, GridMeasurement, MeterDay, MeterDelivery, MeterReading, MeterSeries
from domain.partners.models import MarketPartner
from domain.tariffs.models import TafOrder
from domain.topology.models import MeterGateway, MeterMeteringPoint

SERIES_LOCK_SPACE = 7301  # the first key of pg_advisory_xact_lock(int, int) for meter series


@dataclass(frozen=True, kw_only=True)
class Period:
    """A validity period ``[valid_from, valid_to)``; ``valid_to`` None: open."""

    valid_from: dt.datetime
    valid_to: dt.datetime | None

    def covers(self, first: dt.datetime, last: dt.datetime) -> bool:
        """Whether the period holds ``first`` .. ``last``; the end counts as inside, so a closing
        reading taken at the moment an assignment ends still belongs to it."""
        return self.valid_from <= first and (self.valid_to is None or last <= self.valid_to)


@dataclass(frozen=True, kw_only=True)
class GatewayRow:
    pk: int
    state: str
    network_segment: str | None


@dataclass(frozen=True, kw_only=True)
class MeteringPointOfMeter:
    meter_id: str
    metering_point_id: int
    melo: str
    direction: str
    period: Period


@dataclass(frozen=True, kw_only=True)
class DayRow:
    """The fields of a ``meter_days`` version the ingest and VEE work with."""

    series_id: int
    day: dt.date
    version: int
    layer: int
    values: list[int | None]
    quality: bytes
    status_slots: list[int] | None
    status_words: list[int] | None
    notes: dict[str, Any] | None
    status_common: int = 0

    def statuses(self) -> list[int]:
        """The status word of every slot."""
        return full_status(len(self.values), self.status_common, self.status_slots, self.status_words)


def full_status(n: int, common: int, slots: Sequence[int] | None, words: Sequence[int] | None) -> list[int]:
    status = [common] * n
    for slot, word in zip(slots or [], words or [], strict=True):
        status[slot] = word
    return status


def sparse_status(status: Sequence[int]) -> tuple[int, list[int] | None, list[int] | None]:
    """A day's status words as stored: the most frequent one, and the slots that differ from it.
    DS Tab. 15.1 words are never 0 (type and presence bits), so storing each slot's word would cost
    ten bytes a value; a day usually has one word with a few exceptions."""
    if not status:
        return 0, None, None
    counts: dict[int, int] = {}
    for word in status:
        counts[word] = counts.get(word, 0) + 1
    common = max(counts, key=lambda w: (counts[w], -w))
    slots = [i for i, w in enumerate(status) if w != common]
    return common, slots or None, [status[i] for i in slots] or None


async def stored_hashes(session: AsyncSession, hashes: Iterable[str]) -> set[str]:
    wanted = sorted(set(hashes))
    if not wanted:
        return set()
    rows = await session.scalars(select(MeterDelivery.sha256).where(
        MeterDelivery.sha256.in_(wanted), MeterDelivery.outcome.in_(("stored", "conflict"))))
    return set(rows)


async def gateways(session: AsyncSession, device_ids: Iterable[str]) -> dict[str, GatewayRow]:
    wanted = sorted(set(device_ids))
    if not wanted:
        return {}
    rows = await session.execute(select(Gateway.device_id, Gateway.id, Gateway.state, Gateway.network_segment)
                                 .where(Gateway.device_id.in_(wanted)))
    return {d: GatewayRow(pk=pk, state=s, network_segment=seg) for d, pk, s, seg in rows}


async def meter_gateway_periods(session: AsyncSession, pairs: Iterable[tuple[str, int]]
                                ) -> dict[tuple[str, int], list[Period]]:
    """(meter device ID, gateway pk) -> the periods the meter was assigned to that gateway."""
    wanted = sorted(set(pairs))
    if not wanted:
        return {}
    rows = await session.execute(
        select(Meter.device_id, MeterGateway.gateway_id, MeterGateway.valid_from, MeterGateway.valid_to)
        .join(Meter, Meter.id == MeterGateway.meter_id)
        .where(tuple_(Meter.device_id, MeterGateway.gateway_id).in_(wanted)))
    found: dict[tuple[str, int], list[Period]] = {}
    for meter, gw, start, end in rows:
        found.setdefault((meter, gw), []).append(Period(valid_from=start, valid_to=end))
    return found


async def metering_points_of_meters(session: AsyncSession, meter_ids: Iterable[str]
                                    ) -> dict[str, list[MeteringPointOfMeter]]:
    wanted = sorted(set(meter_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(Meter.device_id, MeteringPoint.id, MeteringPoint.melo, MeteringPoint.direction,
               MeterMeteringPoint.valid_from, MeterMeteringPoint.valid_to)
        .join(MeterMeteringPoint, MeterMeteringPoint.meter_id == Meter.id)
        .join(MeteringPoint, MeteringPoint.id == MeterMeteringPoint.metering_point_id)
        .where(Meter.device_id.in_(wanted)))
    found: dict[str, list[MeteringPointOfMeter]] = {}
    for meter, mp_pk, melo, direction, start, end in rows:
        found.setdefault(meter, []).append(MeteringPointOfMeter(
            meter_id=meter, metering_point_id=mp_pk, melo=melo, direction=direction,
            period=Period(valid_from=start, valid_to=end)))
    return found


async def order_periods(session: AsyncSession, recipient: str, keys: Iterable[tuple[int, int]]
                        ) -> dict[tuple[int, int], list[Period]]:
    """(metering point pk, TAF) -> the periods ``recipient`` (market partner ID) had such an order,
    terminated ones included for the time they were valid."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await session.execute(
        select(TafOrder.metering_point_id, TafOrder.taf, TafOrder.valid_from,
               func.coalesce(TafOrder.terminated_at, TafOrder.valid_to))
        .join(MarketPartner, MarketPartner.id == TafOrder.emt_id)
        .where(MarketPartner.mp_id == recipient, tuple_(TafOrder.metering_point_id, TafOrder.taf).in_(wanted)))
    found: dict[tuple[int, int], list[Period]] = {}
    for mp_pk, taf, start, end in rows:
        found.setdefault((mp_pk, taf), []).append(Period(valid_from=start, valid_to=end))
    return found


@dataclass(frozen=True, kw_only=True)
class SeriesKey:
    metering_point_id: int
    obis: str
    market_partner: str


@dataclass(frozen=True, kw_only=True)
class SeriesSpec:
    key: SeriesKey
    kind: str
    unit: int
    scaler: int
    period_s: int


async def series_ids(session: AsyncSession, specs: Sequence[SeriesSpec]) -> dict[SeriesKey, int]:
    """The IDs of the series, creating those that do not exist (concurrent creators agree)."""
    if not specs:
        return {}
    keys = {s.key: s for s in specs}

    async def lookup() -> dict[SeriesKey, int]:
        rows = await session.execute(
            select(MeterSeries.metering_point_id, MeterSeries.obis, MeterSeries.market_partner, MeterSeries.id)
            .where(tuple_(MeterSeries.metering_point_id, MeterSeries.obis, MeterSeries.market_partner).in_(
                [(k.metering_point_id, k.obis, k.market_partner) for k in keys])))
        return {SeriesKey(metering_point_id=m, obis=o, market_partner=p): i for m, o, p, i in rows}

    found = await lookup()
    missing = [s for k, s in keys.items() if k not in found]
    if missing:
        await session.execute(pg_insert(MeterSeries).values([{
            "metering_point_id": s.key.metering_point_id, "obis": s.key.obis, "market_partner": s.key.market_partner,
            "kind": s.kind, "unit": s.unit, "scaler": s.scaler, "period_s": s.period_s} for s in missing])
            .on_conflict_do_nothing(constraint="uq_meter_series_key"))
        found = await lookup()
    return found


async def latest_days(session: AsyncSession, keys: Iterable[tuple[int, dt.date]], *, layers: Sequence[int],
                      as_of: dt.datetime | None = None) -> dict[tuple[int, dt.date], DayRow]:
    """The newest version among ``layers`` of each (series, day), as known at ``as_of``."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    stmt = (select(MeterDay.series_id, MeterDay.day, MeterDay.version, MeterDay.layer, MeterDay.values,
                   MeterDay.quality, MeterDay.status_slots, MeterDay.status_words, MeterDay.notes,
                   MeterDay.status_common)
            .where(tuple_(MeterDay.series_id, MeterDay.day).in_(wanted), MeterDay.layer.in_(list(layers)))
            .ext(distinct_on(MeterDay.series_id, MeterDay.day))
            .order_by(MeterDay.series_id, MeterDay.day, MeterDay.version.desc()))
    if as_of is not None:
        stmt = stmt.where(MeterDay.recorded_at <= as_of)
    rows = await session.execute(stmt)
    return {(r.series_id, r.day): DayRow(series_id=r.series_id, day=r.day, version=r.version, layer=r.layer,
                                         values=list(r.values), quality=bytes(r.quality),
                                         status_slots=r.status_slots, status_words=r.status_words, notes=r.notes,
                                         status_common=r.status_common)
            for r in rows}


async def last_versions(session: AsyncSession, keys: Iterable[tuple[int, dt.date]]) -> dict[tuple[int, dt.date], int]:
    """The highest version of any layer of each (series, day): the next one is one more."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await session.execute(select(MeterDay.series_id, MeterDay.day, func.max(MeterDay.version))
                                 .where(tuple_(MeterDay.series_id, MeterDay.day).in_(wanted))
                                 .group_by(MeterDay.series_id, MeterDay.day))
    return {(s, d): v for s, d, v in rows}


async def add_days(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(MeterDay), list(rows))


async def latest_readings(session: AsyncSession, keys: Iterable[tuple[int, dt.datetime]]
                          ) -> dict[tuple[int, dt.datetime], tuple[int, int | None]]:
    """(series, at) -> (highest version, raw value of the newest raw version)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await session.execute(
        select(MeterReading.series_id, MeterReading.at, MeterReading.version, MeterReading.layer, MeterReading.value)
        .where(tuple_(MeterReading.series_id, MeterReading.at).in_(wanted))
        .order_by(MeterReading.series_id, MeterReading.at, MeterReading.version))
    found: dict[tuple[int, dt.datetime], tuple[int, int | None]] = {}
    raw: dict[tuple[int, dt.datetime], int | None] = {}
    for s, at, version, layer, value in rows:
        if layer == LAYERS["raw"]:
            raw[(s, at)] = value
        found[(s, at)] = (version, raw.get((s, at)))
    return found


async def add_readings(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(MeterReading), list(rows))


async def add_grid(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert grid measurements; one already stored for the same series and time is kept."""
    if not rows:
        return 0
    inserted = await session.scalars(pg_insert(GridMeasurement).values(list(rows))
                                     .on_conflict_do_nothing(constraint="pk_grid_measurements")
                                     .returning(GridMeasurement.series_id))
    return len(inserted.all())


async def add_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert delivery log rows; their ids in the order of ``rows``."""
    if not rows:
        return []
    result = await session.scalars(insert(MeterDelivery).returning(MeterDelivery.id, sort_by_parameter_order=True),
                                   list(rows))
    return list(result.all())


async def lock_series(session: AsyncSession, series_ids: Sequence[int]) -> None:
    """Transaction-level locks on series, taken in id order: the ingest and VEE compute a day's
    next version from the highest one, so two writers of one series must not overlap."""
    if series_ids:
        await session.execute(text("SELECT pg_advisory_xact_lock(:space, s::int) FROM unnest(:ids) AS s ORDER BY s"),
                              {"space": SERIES_LOCK_SPACE, "ids": list(series_ids)})
