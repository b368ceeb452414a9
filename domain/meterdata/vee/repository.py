"""Queries of the VEE: chains, runs, findings, and what a batch of (series, day) needs, each answered
for the whole batch in one statement (never per value, never per day)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from sqlalchemy import column, func, literal, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import JSONB, distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.catalogue.models import DeviceType
from domain.devices.models import Meter
from domain.meterdata.days import day_end, day_start
from domain.meterdata.models import LAYERS, MeterDay, MeterDelivery, MeterReading, MeterSeries
from domain.meterdata.repository import full_status
from domain.meterdata.vee.models import VeeChain, VeeFinding, VeeRun
from domain.partners.models import PARTNER_ROLES, MarketPartner
from domain.tariffs.models import TafOrder
from domain.topology.models import MeterMeteringPoint

PROFILE_TAF = 7  # the TAF whose order makes a day of a profile series expected (docs/mdm.md)


@dataclass(frozen=True, kw_only=True)
class SeriesInfo:
    id: int
    metering_point_id: int
    obis: str
    market_partner: str
    kind: str
    unit: int
    scaler: int
    period_s: int
    role: str  # the market role whose chain applies (the partner's first role in PARTNER_ROLES order)


@dataclass(frozen=True, kw_only=True)
class SeriesFilter:
    """Which series a range validation covers; every field given narrows it (all None: every
    profile series)."""

    series_ids: tuple[int, ...] | None = None
    metering_point_ids: tuple[int, ...] | None = None
    market_partner: str | None = None
    obis: str | None = None
    kind: str | None = None


def role_of(roles: Sequence[str]) -> str:
    return next((r for r in PARTNER_ROLES if r in roles), roles[0] if roles else "MSB")


# -- chains ----------------------------------------------------------------------------------------

async def active_chains(session: AsyncSession, roles: Iterable[str]) -> dict[str, VeeChain]:
    wanted = sorted(set(roles))
    if not wanted:
        return {}
    rows = await session.scalars(select(VeeChain).where(VeeChain.role.in_(wanted), VeeChain.active))
    return {c.role: c for c in rows}


async def add_default_chain(session: AsyncSession, role: str, rules: list[dict[str, Any]]) -> None:
    """Version 1 of ``role``'s chain, unless a concurrent first use stored one already."""
    await session.execute(pg_insert(VeeChain).values(role=role, version=1, rules=rules, active=True,
                                                     created_by="system:default", note="shipped default")
                          .on_conflict_do_nothing())


async def chain_versions(session: AsyncSession, role: str) -> list[VeeChain]:
    return list(await session.scalars(select(VeeChain).where(VeeChain.role == role).order_by(VeeChain.version)))


async def lock_role(session: AsyncSession, role: str) -> None:
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"vee_chain:{role}"))))


async def add_chain_version(session: AsyncSession, role: str, rules: list[dict[str, Any]], user: str,
                            note: str | None) -> VeeChain:
    last = (await session.execute(select(func.max(VeeChain.version)).where(VeeChain.role == role))).scalar()
    await session.execute(update(VeeChain).where(VeeChain.role == role, VeeChain.active).values(active=False))
    chain = VeeChain(role=role, version=(last or 0) + 1, rules=rules, active=True, created_by=user, note=note)
    session.add(chain)
    await session.flush()
    return chain


async def activate_chain(session: AsyncSession, role: str, version: int) -> bool:
    await session.execute(update(VeeChain).where(VeeChain.role == role, VeeChain.active).values(active=False))
    result = await session.execute(update(VeeChain).where(VeeChain.role == role, VeeChain.version == version)
                                   .values(active=True).returning(VeeChain.id))
    return result.first() is not None


# -- runs and findings -----------------------------------------------------------------------------

async def open_run(session: AsyncSession, values: dict[str, Any]) -> int:
    """The run of ``values["workflow_id"]``, created on first call (a retried activity gets the same)."""
    if values.get("workflow_id"):
        found = (await session.execute(select(VeeRun.id).where(VeeRun.workflow_id == values["workflow_id"]))
                 ).scalar_one_or_none()
        if found is not None:
            return int(found)
    stmt = pg_insert(VeeRun).values(**values).on_conflict_do_nothing(index_elements=["workflow_id"])
    created = (await session.execute(stmt.returning(VeeRun.id))).scalar_one_or_none()
    if created is None:
        return int((await session.execute(select(VeeRun.id).where(VeeRun.workflow_id == values["workflow_id"]))
                    ).scalar_one())
    return int(created)


async def get_run(session: AsyncSession, run_id: int) -> VeeRun | None:
    return await session.get(VeeRun, run_id)


async def add_to_run(session: AsyncSession, run_id: int, counts: dict[str, int], chains: dict[str, int]) -> None:
    await session.execute(update(VeeRun).where(VeeRun.id == run_id).values(
        **{k: getattr(VeeRun, k) + v for k, v in counts.items()},
        chain_versions=VeeRun.chain_versions.op("||")(literal(chains, JSONB))))


async def close_run(session: AsyncSession, run_id: int, state: str, totals: dict[str, int] | None) -> None:
    await session.execute(update(VeeRun).where(VeeRun.id == run_id).values(
        state=state, finished_at=func.now(), **(totals or {})))


async def replace_findings(session: AsyncSession, run_id: int, keys: Sequence[tuple[int, dt.date]],
                           rows: Sequence[dict[str, Any]]) -> None:
    """The findings of ``run_id`` on ``keys``: those of an earlier attempt of the same batch go."""
    if keys:
        await session.execute(text(
            "DELETE FROM vee_findings f USING unnest(CAST(:sids AS bigint[]), CAST(:days AS date[])) "
            "AS k(series_id, day) WHERE f.run_id = :run AND f.series_id = k.series_id AND f.day = k.day"),
            {"run": run_id, "sids": [k[0] for k in keys], "days": [k[1] for k in keys]})
    if rows:
        pg = await _driver(session)
        sql = f"COPY vee_findings ({', '.join(_FINDING_COLUMNS)}) FROM STDIN"
        async with pg.cursor() as cur, cur.copy(sql) as copy:
            for r in rows:
                await copy.write_row(tuple(Jsonb(r[c]) if c == "data" and r[c] is not None else r[c]
                                           for c in _FINDING_COLUMNS))


async def findings(session: AsyncSession, series_id: int, day: dt.date, run_id: int | None = None
                   ) -> list[VeeFinding]:
    stmt = select(VeeFinding).where(VeeFinding.series_id == series_id, VeeFinding.day == day)
    if run_id is not None:
        stmt = stmt.where(VeeFinding.run_id == run_id)
    return list(await session.scalars(stmt.order_by(VeeFinding.run_id, VeeFinding.id)))


# -- what a batch needs ----------------------------------------------------------------------------

async def series_info(session: AsyncSession, ids: Iterable[int]) -> dict[int, SeriesInfo]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(MeterSeries.id, MeterSeries.metering_point_id, MeterSeries.obis, MeterSeries.market_partner,
               MeterSeries.kind, MeterSeries.unit, MeterSeries.scaler, MeterSeries.period_s, MarketPartner.roles)
        .join(MarketPartner, MarketPartner.mp_id == MeterSeries.market_partner)
        .where(MeterSeries.id.in_(wanted)))
    return {r.id: SeriesInfo(id=r.id, metering_point_id=r.metering_point_id, obis=r.obis,
                             market_partner=r.market_partner, kind=r.kind, unit=r.unit, scaler=r.scaler,
                             period_s=r.period_s, role=role_of(list(r.roles))) for r in rows}


async def sibling_series(session: AsyncSession, wanted: Iterable[tuple[int, str, str]]
                         ) -> dict[tuple[int, str, str], int]:
    """(metering point, OBIS, market partner) -> series ID, for those that exist."""
    keys = sorted(set(wanted))
    if not keys:
        return {}
    rows = await session.execute(
        select(MeterSeries.metering_point_id, MeterSeries.obis, MeterSeries.market_partner, MeterSeries.id)
        .where(tuple_(MeterSeries.metering_point_id, MeterSeries.obis, MeterSeries.market_partner).in_(keys)))
    return {(m, o, p): i for m, o, p, i in rows}


async def readings(session: AsyncSession, series_ids: Iterable[int], first: dt.date, last: dt.date
                   ) -> dict[int, list[tuple[dt.datetime, int]]]:
    """Point readings (newest raw version per time) of the series from the start of ``first`` to the
    end of ``last``."""
    wanted = sorted(set(series_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(MeterReading.series_id, MeterReading.at, MeterReading.value)
        .where(MeterReading.series_id.in_(wanted), MeterReading.layer == LAYERS["raw"],
               MeterReading.at > day_start(first), MeterReading.at <= day_end(last),
               MeterReading.value.is_not(None))
        .ext(distinct_on(MeterReading.series_id, MeterReading.at))
        .order_by(MeterReading.series_id, MeterReading.at, MeterReading.version.desc()))
    found: dict[int, list[tuple[dt.datetime, int]]] = {}
    for s, at, value in rows:
        if value is not None:
            found.setdefault(s, []).append((at, value))
    return found


async def conflicts(session: AsyncSession, keys: Iterable[tuple[int, dt.date]]) -> dict[tuple[int, dt.date],
                                                                                        list[dict[str, Any]]]:
    """The conflicting duplicates the delivery log holds for the (series, day) keys."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    first = min(d for _, d in wanted)
    c = func.jsonb_array_elements(MeterDelivery.conflicts).table_valued(column("value", JSONB)).alias("c")
    rows = await session.execute(
        select(c.c.value, MeterDelivery.id, MeterDelivery.received_at).select_from(MeterDelivery)
        .join(c, c.c.value.has_key("day"))
        .where(MeterDelivery.outcome == "conflict", MeterDelivery.received_at >= day_start(first),
               c.c.value["series"].astext.in_(sorted({str(s) for s, _ in wanted}))))
    found: dict[tuple[int, dt.date], list[dict[str, Any]]] = {}
    want = set(wanted)
    for value, delivery_id, received in rows:
        key = (int(value["series"]), dt.date.fromisoformat(value["day"]))
        if key in want:
            found.setdefault(key, []).append({"slot": int(value["slot"]), "stored": value.get("stored"),
                                              "delivered": value.get("delivered"), "delivery": delivery_id,
                                              "received": received.isoformat()})
    return found


@dataclass(frozen=True, kw_only=True)
class MeterCapacity:
    metering_point_id: int
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    capabilities: tuple[str, ...]


async def meter_capabilities(session: AsyncSession, metering_point_ids: Iterable[int], first: dt.date,
                             last: dt.date) -> dict[int, list[MeterCapacity]]:
    """The device type capabilities of the meters assigned to the metering points between ``first``
    and ``last``, with the assignment periods."""
    wanted = sorted(set(metering_point_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(MeterMeteringPoint.metering_point_id, MeterMeteringPoint.valid_from, MeterMeteringPoint.valid_to,
               DeviceType.capabilities)
        .join(Meter, Meter.id == MeterMeteringPoint.meter_id)
        .join(DeviceType, DeviceType.id == Meter.device_type_id)
        .where(MeterMeteringPoint.metering_point_id.in_(wanted), MeterMeteringPoint.valid_from < day_end(last),
               (MeterMeteringPoint.valid_to.is_(None)) | (MeterMeteringPoint.valid_to > day_start(first))))
    found: dict[int, list[MeterCapacity]] = {}
    for mp, start, end, caps in rows:
        found.setdefault(mp, []).append(MeterCapacity(metering_point_id=mp, valid_from=start, valid_to=end,
                                                      capabilities=tuple(caps)))
    return found


async def profile_series_page(session: AsyncSession, flt: SeriesFilter, after: int, limit: int) -> list[int]:
    """The next ``limit`` profile series (interval and register, with a period) after ``after``."""
    stmt = select(MeterSeries.id).where(MeterSeries.id > after, MeterSeries.kind.in_(("interval", "register")),
                                        MeterSeries.period_s > 0)
    stmt = _filtered(stmt, flt)
    return list(await session.scalars(stmt.order_by(MeterSeries.id).limit(limit)))


async def count_profile_series(session: AsyncSession, flt: SeriesFilter) -> int:
    stmt = select(func.count()).select_from(MeterSeries).where(MeterSeries.kind.in_(("interval", "register")),
                                                               MeterSeries.period_s > 0)
    return int((await session.execute(_filtered(stmt, flt))).scalar_one())


def _filtered(stmt: Any, flt: SeriesFilter) -> Any:
    if flt.series_ids is not None:
        stmt = stmt.where(MeterSeries.id.in_(flt.series_ids))
    if flt.metering_point_ids is not None:
        stmt = stmt.where(MeterSeries.metering_point_id.in_(flt.metering_point_ids))
    if flt.market_partner is not None:
        stmt = stmt.where(MeterSeries.market_partner == flt.market_partner)
    if flt.obis is not None:
        stmt = stmt.where(MeterSeries.obis == flt.obis)
    if flt.kind is not None:
        stmt = stmt.where(MeterSeries.kind == flt.kind)
    return stmt


async def stored_days(session: AsyncSession, series_ids: Sequence[int], first: dt.date, last: dt.date
                      ) -> set[tuple[int, dt.date]]:
    if not series_ids:
        return set()
    rows = await session.execute(select(MeterDay.series_id, MeterDay.day).distinct()
                                 .where(MeterDay.series_id.in_(list(series_ids)), MeterDay.day >= first,
                                        MeterDay.day <= last))
    return {(s, d) for s, d in rows}


async def ordered_periods(session: AsyncSession, series_ids: Sequence[int], first: dt.date, last: dt.date
                          ) -> dict[int, list[tuple[dt.datetime, dt.datetime | None]]]:
    """Per series, the periods its market partner had a TAF 7 order on its metering point."""
    if not series_ids:
        return {}
    end = func.coalesce(TafOrder.terminated_at, TafOrder.valid_to)
    rows = await session.execute(
        select(MeterSeries.id, TafOrder.valid_from, end)
        .join(MarketPartner, MarketPartner.mp_id == MeterSeries.market_partner)
        .join(TafOrder, (TafOrder.metering_point_id == MeterSeries.metering_point_id)
              & (TafOrder.emt_id == MarketPartner.id))
        .where(MeterSeries.id.in_(list(series_ids)), TafOrder.taf == PROFILE_TAF,
               TafOrder.valid_from < day_end(last), end.is_(None) | (end > day_start(first))))
    found: dict[int, list[tuple[dt.datetime, dt.datetime | None]]] = {}
    for s, start, stop in rows:
        found.setdefault(s, []).append((start, stop))
    return found


@dataclass(frozen=True, kw_only=True)
class Version:
    series_id: int
    day: dt.date
    version: int
    layer: int
    recorded_at: dt.datetime
    values: list[int | None]
    quality: bytes
    status_slots: list[int] | None
    status_words: list[int] | None
    notes: dict[str, Any] | None
    source: str
    reason: str | None
    status_common: int = 0

    def status(self) -> dict[int, int]:
        """Every slot's status word (the common one where no exception is stored)."""
        return dict(enumerate(full_status(len(self.values), self.status_common, self.status_slots,
                                          self.status_words)))


def _version(r: MeterDay) -> Version:
    return Version(series_id=r.series_id, day=r.day, version=r.version, layer=r.layer, recorded_at=r.recorded_at,
                   values=list(r.values), quality=bytes(r.quality), status_slots=r.status_slots,
                   status_words=r.status_words, notes=r.notes, source=r.source, reason=r.reason,
                   status_common=r.status_common)


async def latest_versions(session: AsyncSession, keys: Iterable[tuple[int, dt.date]], layers: Sequence[int],
                          as_of: dt.datetime | None = None) -> dict[tuple[int, dt.date], Version]:
    """The newest version among ``layers`` of each (series, day), with its source (who wrote it)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    stmt = (select(MeterDay).where(tuple_(MeterDay.series_id, MeterDay.day).in_(wanted),
                                   MeterDay.layer.in_(list(layers)))
            .ext(distinct_on(MeterDay.series_id, MeterDay.day))
            .order_by(MeterDay.series_id, MeterDay.day, MeterDay.version.desc()))
    if as_of is not None:
        stmt = stmt.where(MeterDay.recorded_at <= as_of)
    return {(r.series_id, r.day): _version(r) for r in await session.scalars(stmt)}


# Bulk reads and writes of day rows go through the driver (psycopg) inside the session's
# transaction: arrays of 96 values decode several times faster in the binary format than through
# SQLAlchemy's text results, and COPY writes a batch of versions about ten times faster than an
# executemany INSERT (measured with 6,000 days: 4.9 s -> 0.4 s).
_KEYS = ("JOIN unnest(CAST(%(sids)s AS bigint[]), CAST(%(days)s AS date[])) AS k(series_id, day) "
         "ON d.series_id = k.series_id AND d.day = k.day")
_COLUMNS = ("d.series_id, d.day, d.version, d.layer, d.recorded_at, d.values, d.quality, d.status_slots, "
            "d.status_words, d.notes, d.source, d.reason, d.status_common")
_DAY_COLUMNS = ("series_id", "day", "version", "layer", "values", "quality", "status_common", "status_slots",
                "status_words", "notes", "source", "reason")
_FINDING_COLUMNS = ("run_id", "series_id", "day", "rule_id", "severity", "slots", "detail", "data")


async def _driver(session: AsyncSession) -> AsyncConnection[Any]:
    """The psycopg connection of the session's transaction."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    return cast(AsyncConnection[Any], raw)


def _key_params(keys: list[tuple[int, dt.date]]) -> dict[str, Any]:
    """The keys as two arrays (one bind parameter each, whatever their number) and the day range
    that lets PostgreSQL skip the other months' partitions."""
    return {"sids": [s for s, _ in keys], "days": [d for _, d in keys], "first": min(d for _, d in keys),
            "last": max(d for _, d in keys)}


async def _fetch(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[Version]:
    pg = await _driver(session)
    async with pg.cursor(binary=True) as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    return [Version(series_id=r[0], day=r[1], version=r[2], layer=r[3], recorded_at=r[4], values=r[5],
                    quality=bytes(r[6]), status_slots=r[7], status_words=r[8], notes=r[9], source=r[10],
                    reason=r[11], status_common=r[12]) for r in rows]


async def newest_by_layer(session: AsyncSession, keys: Iterable[tuple[int, dt.date]]
                          ) -> dict[tuple[int, dt.date], dict[int, Version]]:
    """For each (series, day): the newest version of each layer (raw, validated, edited)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await _fetch(session, f"SELECT DISTINCT ON (d.series_id, d.day, d.layer) {_COLUMNS} FROM meter_days d "
                                 f"{_KEYS} WHERE d.day BETWEEN %(first)s AND %(last)s "
                                 "ORDER BY d.series_id, d.day, d.layer, d.version DESC", _key_params(wanted))
    found: dict[tuple[int, dt.date], dict[int, Version]] = {}
    for r in rows:
        found.setdefault((r.series_id, r.day), {})[r.layer] = r
    return found


async def newest(session: AsyncSession, keys: Iterable[tuple[int, dt.date]]) -> dict[tuple[int, dt.date], Version]:
    """For each (series, day): the newest version of any layer."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await _fetch(session, f"SELECT DISTINCT ON (d.series_id, d.day) {_COLUMNS} FROM meter_days d {_KEYS} "
                                 "WHERE d.day BETWEEN %(first)s AND %(last)s "
                                 "ORDER BY d.series_id, d.day, d.version DESC", _key_params(wanted))
    return {(r.series_id, r.day): r for r in rows}


async def copy_days(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert day versions (``meter_days`` columns as keys) with COPY."""
    if not rows:
        return
    pg = await _driver(session)
    cols = ", ".join(f'"{c}"' for c in _DAY_COLUMNS)
    async with pg.cursor() as cur, cur.copy(f"COPY meter_days ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "date", "int4", "int2", "int8[]", "bytea", "int8", "int2[]", "int8[]", "jsonb",
                         "varchar", "varchar"])
        for r in rows:
            await copy.write_row(tuple(Jsonb(r[c]) if c == "notes" and r[c] is not None else r[c]
                                       for c in _DAY_COLUMNS))


async def versions_of(session: AsyncSession, series_id: int, day: dt.date, as_of: dt.datetime | None = None
                      ) -> list[Version]:
    """Every version of one (series, day), oldest first."""
    stmt = select(MeterDay).where(MeterDay.series_id == series_id, MeterDay.day == day)
    if as_of is not None:
        stmt = stmt.where(MeterDay.recorded_at <= as_of)
    return [_version(r) for r in await session.scalars(stmt.order_by(MeterDay.version))]
