"""Exports of meter data, the domain rules: a recipient gets the final version of each (series, day)
once, a later version as a correction, what the AHB does not allow is held back with its reason,
master data decides who gets what, batches continue from their cursor, and what went to whom is
queryable; a series as CSV in any layer as known at a time.

The master data here is the tests' own (an MSB, a supplier, a grid operator, a stranger, two
metering points with market locations), so the selection sees nothing another test stored. The
helpers are shared by the other export test modules."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.ids import malo_check_digit
from domain.locations.models import MarketLocation, MeteringPoint
from domain.meterdata import export, partitions
from domain.meterdata import export_repository as export_repo
from domain.meterdata import repository as repo
from domain.meterdata.days import day_start, slots_in
from domain.meterdata.models import LAYERS, MeterReading
from domain.meterdata.quality import Quality
from domain.meterdata.repository import SeriesKey, SeriesSpec
from domain.partners.models import MarketPartner
from domain.topology.models import MeteringPointMarketLocation

MSB = "9900000000901"  # the EMT whose MDM this is: metering point operator, the sender
LF = "9900000000918"  # supplier of the market locations
VNB = "9900000000932"  # grid operator of the metering points
STRANGER = "9900000000925"  # a supplier of nothing here
SINCE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
CREATED = dt.datetime(2026, 11, 2, 5, 30, tzinfo=dt.UTC)
INTERVAL = "1-1:1.29.0"
REGISTER = "1-0:1.8.0"
RAW, VALIDATED, EDITED = LAYERS["raw"], LAYERS["validated"], LAYERS["edited"]


@dataclass(frozen=True)
class Place:
    melo: str
    malo: str
    metering_point_id: int


def melo_of(i: int) -> str:
    return f"DE00000999990GRIDGATEEXPORT{i:06d}"


def malo_of(i: int) -> str:
    first10 = f"5999990{i:03d}"
    return first10 + str(malo_check_digit(first10))


async def export_master_data(session: AsyncSession, count: int = 2) -> list[Place]:
    """The partners and ``count`` consumption metering points, each with a market location of
    ``LF`` since 2024; idempotent."""
    for mp_id, name, roles in ((MSB, "Export MSB", ["MSB"]), (LF, "Export Vertrieb", ["LF"]),
                               (VNB, "Export Netz", ["VNB"]), (STRANGER, "Fremder Vertrieb", ["LF"])):
        if await session.scalar(select(MarketPartner.id).where(MarketPartner.mp_id == mp_id)) is None:
            session.add(MarketPartner(mp_id=mp_id, name=name, roles=roles, endpoints=[]))
    await session.flush()
    places = []
    for i in range(count):
        mp = await session.scalar(select(MeteringPoint).where(MeteringPoint.melo == melo_of(i)))
        if mp is None:
            mp = MeteringPoint(melo=melo_of(i), direction="consumption", grid_operator=VNB, msb=MSB)
            ml = MarketLocation(malo=malo_of(i), direction="consumption", supplier=LF)
            session.add_all([mp, ml])
            await session.flush()
            session.add(MeteringPointMarketLocation(metering_point_id=mp.id, market_location_id=ml.id,
                                                    valid_from=SINCE))
            await session.flush()
        places.append(Place(melo=melo_of(i), malo=malo_of(i), metering_point_id=mp.id))
    return places


async def series_of(session: AsyncSession, place: Place, obis: str = INTERVAL, *, partner: str = MSB,
                    kind: str = "interval", period_s: int = 900) -> int:
    key = SeriesKey(metering_point_id=place.metering_point_id, obis=obis, market_partner=partner)
    ids = await repo.series_ids(session, [SeriesSpec(key=key, kind=kind, unit=30, scaler=0, period_s=period_s)])
    return ids[key]


def profile(day: dt.date, *, base: int = 100, step: int = 7) -> list[int | None]:
    """Quarter-hour energy in Wh: a day's worth of distinct values."""
    return [base + (slot * step) % 250 for slot in range(slots_in(day))]


async def write_day(session: AsyncSession, series: int, day: dt.date, values: Sequence[int | None], *,
                    layer: int = RAW, quality: bytes | None = None, notes: dict[str, Any] | None = None) -> int:
    """A new version of ``series``' day; returns its version."""
    await partitions.ensure(session, "meter_days", day, day)
    version = (await repo.last_versions(session, [(series, day)])).get((series, day), 0) + 1
    if quality is None:
        quality = bytes(Quality.TRUE if v is not None else Quality.MISSING for v in values)
    await repo.add_days(session, [{"series_id": series, "day": day, "version": version, "layer": layer,
                                   "values": list(values), "quality": quality, "status_slots": None,
                                   "status_words": None, "notes": notes, "source": "test", "reason": None}])
    return version


async def write_reading(session: AsyncSession, series: int, at: dt.datetime, value: int | None, *,
                        layer: int = RAW, quality: Quality = Quality.TRUE, reason: str = "scheduled",
                        notes: dict[str, Any] | None = None, meter_id: str | None = "1EMH0099000001") -> int:
    version = (await repo.latest_readings(session, [(series, at)])).get((series, at), (0, None))[0] + 1
    await repo.add_readings(session, [{"series_id": series, "at": at, "version": version, "layer": layer,
                                       "value": value, "status": 0, "quality": int(quality), "reason": reason,
                                       "meter_id": meter_id, "source": "test", "notes": notes}])
    return version


def substituted(values: list[int | None], slots: Sequence[int], *, method: str = "Z92", reason: str = "Z75",
                correction: str | None = None) -> tuple[list[int | None], bytes, dict[str, Any]]:
    """The day with ``slots`` filled by substitutes (noted like VEE notes them)."""
    filled = list(values)
    quality = bytearray(Quality.TRUE for _ in values)
    notes: dict[str, Any] = {}
    for slot in slots:
        filled[slot] = filled[slot] if filled[slot] is not None else 111
        quality[slot] = Quality.SUBSTITUTE
        notes[str(slot)] = {"rule": "gap_interpolation", "method": method, "reason": reason,
                            **({"correction": correction} if correction else {})}
    return filled, bytes(quality), notes


def batch(key: str, first: dt.date, last: dt.date | None = None, *, recipient: str = LF, sender: str = MSB,
          what: export.What = "load_profiles", **kw: Any) -> export.Batch:
    return export.Batch(key=key, kind="mscons", what=what, recipient=recipient, sender=sender, first_day=first,
                        last_day=last or first, created=CREATED, **kw)


DAY = dt.date(2026, 11, 1)


async def test_each_final_version_goes_once_and_a_later_one_as_a_correction(mdm_session: AsyncSession) -> None:
    s = mdm_session
    place, _ = await export_master_data(s)
    series = await series_of(s, place)
    values = profile(DAY)
    await write_day(s, series, DAY, values)
    gap = list(profile(DAY + dt.timedelta(days=1)))
    gap[10] = None
    await write_day(s, series, DAY + dt.timedelta(days=1), gap)

    first = await export.plan(s, batch("t1#1", DAY, DAY + dt.timedelta(days=1)))
    assert (first.items, first.corrections, first.exhausted) == (1, 0, True)
    assert first.held_back == {"missing_values": 1}  # not a load profile the AHB allows: VEE first
    assert (await export.plan(s, batch("t1#1", DAY))).export_id == first.export_id  # the same key: the same export
    assert (await export.plan(s, batch("t1#2", DAY, DAY + dt.timedelta(days=1)))).export_id is None
    assert first.export_id is not None
    await export.release(s, first.export_id, CREATED)

    # VEE fills the gap of the second day and edits the first: both go out, the first as a correction.
    filled, quality, notes = substituted(gap, [10])
    await write_day(s, series, DAY + dt.timedelta(days=1), filled, layer=VALIDATED, quality=quality, notes=notes)
    fixed, quality, notes = substituted(values, [3], correction="ZA1")
    v = await write_day(s, series, DAY, fixed, layer=EDITED, quality=quality, notes=notes)
    second = await export.plan(s, batch("t1#3", DAY, DAY + dt.timedelta(days=1)))
    assert (second.items, second.corrections, second.held_back) == (2, 1, {})

    sent = await export.sent_items(s, series, DAY, DAY + dt.timedelta(days=1))
    assert [(i.day, i.version, i.corrects, i.recipient, i.state) for i in sent] == [
        (DAY, 1, None, LF, "sent"), (DAY, v, 1, LF, "ready"), (DAY + dt.timedelta(days=1), 2, None, LF, "ready")]
    assert all(i.document and i.document.startswith(f"GG{i.export_id:012d}M") for i in sent)


async def test_a_raw_version_after_validation_does_not_replace_the_validated_one(mdm_session: AsyncSession) -> None:
    s = mdm_session
    place, _ = await export_master_data(s)
    series = await series_of(s, place)
    values = profile(DAY)
    await write_day(s, series, DAY, values)
    await write_day(s, series, DAY, values, layer=VALIDATED)
    assert (await export.plan(s, batch("t2#1", DAY))).items == 1
    await write_day(s, series, DAY, values)  # a late delivery: raw again, not validated yet
    assert (await export.plan(s, batch("t2#2", DAY))).export_id is None


async def test_master_data_decides_who_gets_a_series(mdm_session: AsyncSession) -> None:
    s = mdm_session
    place, _ = await export_master_data(s)
    await write_day(s, await series_of(s, place), DAY, profile(DAY))
    assert (await export.plan(s, batch("t3#1", DAY, recipient=STRANGER))).export_id is None
    assert (await export.plan(s, batch("t3#2", DAY, recipient=VNB))).items == 1  # the grid operator
    assert (await export.plan(s, batch("t3#3", DAY, recipient=LF))).items == 1  # the supplier: its own copy
    with pytest.raises(export.ExportRefused):
        await export.plan(s, batch("t3#4", DAY, recipient=MSB))
    with pytest.raises(export.ExportRefused):
        await export.plan(s, batch("t3#5", DAY, DAY + dt.timedelta(days=export.MAX_DAYS)))
    # The supplier's market location ends before the day: the supplier gets nothing of it.
    link = await s.scalar(select(MeteringPointMarketLocation)
                          .where(MeteringPointMarketLocation.metering_point_id == place.metering_point_id))
    assert link is not None
    link.valid_to = day_start(DAY)
    await s.flush()
    later = DAY + dt.timedelta(days=1)
    await write_day(s, await series_of(s, place), later, profile(later))
    assert (await export.plan(s, batch("t3#6", later, recipient=LF))).export_id is None
    assert (await export.plan(s, batch("t3#7", later, recipient=VNB))).items == 1


async def test_batches_continue_where_the_previous_one_stopped(mdm_session: AsyncSession) -> None:
    s = mdm_session
    a, b = await export_master_data(s)
    days = [DAY + dt.timedelta(days=n) for n in range(3)]
    for place in (a, b):
        series = await series_of(s, place)
        for day in days:
            await write_day(s, series, day, profile(day))
    cursor, sizes = None, []
    for n in range(1, 10):
        planned = await export.plan(s, batch(f"t4#{n}", days[0], days[-1], cursor=cursor, limit=4, page=3))
        sizes.append(planned.items)
        if planned.exhausted:
            break
        cursor = planned.cursor
    assert sizes == [4, 2]
    exported = await export.exports(s, recipient=LF)
    assert [e.items for e in exported[:2]] == [2, 4]  # newest first


async def test_a_second_claim_of_the_same_version_is_refused(mdm_session: AsyncSession) -> None:
    s = mdm_session
    place, _ = await export_master_data(s)
    series = await series_of(s, place)
    await write_day(s, series, DAY, profile(DAY))
    planned = await export.plan(s, batch("t5#1", DAY))
    assert planned.export_id is not None
    again = export_repo.Claim(series_id=series, day=DAY, at=day_start(DAY), version=1)
    assert await export_repo.claim(s, export_id=planned.export_id, recipient=LF, kind="mscons", item="day",
                                   claims=[again]) == set()  # e.g. a concurrent run: the index says no


async def test_a_series_as_csv_in_each_layer_as_known_at_a_time(mdm_session: AsyncSession) -> None:
    s = mdm_session
    place, _ = await export_master_data(s)
    series = await series_of(s, place)
    spring = dt.date(2026, 3, 29)
    raw = profile(spring)
    raw[4] = None
    await write_day(s, series, spring, raw)
    filled, quality, notes = substituted(raw, [4])
    await write_day(s, series, spring, filled, layer=VALIDATED, quality=quality, notes=notes)

    async def table(layer: export.Layer, as_of: dt.datetime | None = None, key: str = "") -> list[dict[str, str]]:
        planned = await export.write_csv(s, export.CsvRequest(key=f"csv-{layer}-{key}", series_id=series,
                                                              first_day=spring, last_day=spring + dt.timedelta(days=1),
                                                              created=CREATED, layer=layer, as_of=as_of))
        assert planned.export_id is not None
        content_type, data = await export.content(s, planned.export_id)
        assert content_type.startswith("text/csv")
        return list(csv.DictReader(io.StringIO(data.decode())))

    raw_rows = await table("raw")
    assert len(raw_rows) == 92 + 96  # the spring day has 92 quarter hours; the next day has no version
    assert raw_rows[0] == {"start": "2026-03-28T23:00:00Z", "end": "2026-03-28T23:15:00Z", "value": str(raw[0]),
                           "unit": "Wh", "quality": "220", "method": "", "reason": ""}
    assert (raw_rows[4]["value"], raw_rows[4]["quality"]) == ("", "Z30")
    assert raw_rows[91]["end"] == "2026-03-29T22:00:00Z" and raw_rows[92]["quality"] == "Z30"
    final = await table("final")
    assert (final[4]["value"], final[4]["quality"], final[4]["method"], final[4]["reason"]) == ("111", "67", "Z92",
                                                                                                 "Z75")
    assert await table("validated") == final
    # As known before anything was recorded: no version at all.
    before = await table("final", as_of=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), key="old")
    assert {r["quality"] for r in before} == {"Z30"}
    with pytest.raises(export.SeriesNotFound):
        await export.write_csv(s, export.CsvRequest(key="csv-none", series_id=-1, first_day=spring,
                                                    last_day=spring, created=CREATED))


async def test_readings_go_as_register_readings_and_a_changed_one_cancels_the_first(
        mdm_session: AsyncSession) -> None:
    s = mdm_session
    place, _ = await export_master_data(s)
    series = await series_of(s, place, REGISTER, kind="register", period_s=0)
    at = day_start(DAY)
    await write_reading(s, series, at, 1_234_567)
    await write_reading(s, series, at + dt.timedelta(hours=6), None)
    first = await export.plan(s, batch("t7#1", DAY, what="readings"))
    assert (first.items, first.held_back) == (1, {"missing_values": 1})
    await write_reading(s, series, at, 1_234_600, layer=EDITED, notes={"correction": "ZA4"})
    second = await export.plan(s, batch("t7#2", DAY, what="readings"))
    assert (second.items, second.corrections) == (1, 1)
    assert second.export_id is not None
    (item,) = await export.items_of(s, second.export_id)
    assert (item.item, item.version, item.corrects) == ("reading", 2, 1)
    readings = (await s.scalars(select(MeterReading).where(MeterReading.series_id == series))).all()
    assert len(readings) == 3
