"""Storing deliveries: a day of TAF 7 becomes a register series and an interval series per metering
point, DST days have 92 and 100 quarter hours, a redelivery stores nothing, a differing value is a
conflict that keeps the stored one, and every refusal of docs/mdm.md stores nothing but its reason."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.ids import demo_gateway_id, demo_meter_id
from domain.demo import DEMO_GRID_OPERATOR, DEMO_SUPPLIER, demo_melo
from domain.locations.models import MeteringPoint
from domain.meterdata.days import SLOT, day_start, slots_in
from domain.meterdata.delivery import LOAD_PROFILE, Delivery, Entry, Envelope, MeterData, Profile, Register
from domain.meterdata.ingest import ingest
from domain.meterdata.models import MeterDay, MeterDelivery, MeterReading, MeterSeries
from domain.meterdata.quality import Quality

NETZ, VERTRIEB = DEMO_GRID_OPERATOR.mp_id, DEMO_SUPPLIER.mp_id
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def taf7_day(day: dt.date, *, gateway: int = 0, start: int = 1_000_000, step: int = 100,
             missing: tuple[int, ...] = (), recipient: str = NETZ, bump: dict[int, int] | None = None,
             normal: int = 0) -> Delivery:
    """A day of quarter-hour register readings: the reading at local midnight that opens the day,
    then one at the end of each quarter hour; ``missing`` quarter hours have no reading."""
    n = slots_in(day)
    entries = []
    for k in range(n + 1):
        value = None if k - 1 in missing else start + k * step + (bump or {}).get(k - 1, 0)
        entries.append(Entry(end=day_start(day) + k * SLOT, values=(value,),
                             status=normal | ((1 << 13) << 32) if value is None else normal))
    return Delivery(gateway_id=demo_gateway_id(gateway), recipient=recipient, profile_id="ep-7", taf=7,
                    reason="scheduled", created=day_start(day) + dt.timedelta(days=1, minutes=5),
                    meters=(MeterData(meter_id=demo_meter_id(gateway, 0), scaler_units={"1-0:1.8.0": (0, 30)},
                                      profiles=(Profile(obis=LOAD_PROFILE, period_s=900, columns=("1-0:1.8.0",),
                                                        entries=tuple(entries)),)),))


def envelope(delivery: Delivery, salt: str = "") -> Envelope:
    digest = hashlib.sha256(repr(delivery).encode() + salt.encode()).hexdigest()
    return Envelope(recipient=delivery.recipient, sha256=digest, size=2000, delivery_ref=f"uuid:{digest[:8]}",
                    gateway_id=delivery.gateway_id)


async def _days(session: AsyncSession, obis: str, day: dt.date, gateway: int = 0) -> list[MeterDay]:
    """The versions of a day of the series ``obis`` at the consumption metering point of ``gateway``."""
    return list((await session.scalars(
        select(MeterDay).join(MeterSeries, MeterSeries.id == MeterDay.series_id)
        .join(MeteringPoint, MeteringPoint.id == MeterSeries.metering_point_id)
        .where(MeterSeries.obis == obis, MeterDay.day == day, MeteringPoint.melo == demo_melo(gateway, 0))
        .order_by(MeterDay.version))).all())


async def test_a_taf7_day_becomes_registers_and_quarter_hours(mdm_session: AsyncSession) -> None:
    day = dt.date(2026, 1, 15)
    d = taf7_day(day, missing=(10,))
    (out,) = await ingest(mdm_session, [(envelope(d), d)], NOW)
    assert (out.outcome, out.http_status) == ("stored", 201)
    (registers,) = await _days(mdm_session, "1-0:1.8.0", day)
    (intervals,) = await _days(mdm_session, "1-1:1.29.0", day)
    assert len(intervals.values) == 96 and intervals.values[0] == 100
    # The reading at the end of quarter hour 10 is missing: quarter hours 10 and 11 have no energy.
    assert intervals.values[9] == 100 and intervals.values[10] is None and intervals.values[11] is None
    assert intervals.quality[11] == Quality.MISSING and intervals.quality[12] == Quality.TRUE
    assert registers.values[10] is None and registers.values[95] == 1_000_000 + 96 * 100
    assert registers.status_slots == [10] and registers.status_words == [(1 << 13) << 32]
    # The reading that opened the day is the previous day's last quarter hour.
    (before,) = await _days(mdm_session, "1-0:1.8.0", day - dt.timedelta(days=1))
    assert before.values[-1] == 1_000_000 and before.values.count(None) == 95


async def test_dst_days_have_92_and_100_quarter_hours(mdm_session: AsyncSession) -> None:
    for day, n in ((dt.date(2026, 3, 29), 92), (dt.date(2026, 10, 25), 100)):
        d = taf7_day(day)
        (out,) = await ingest(mdm_session, [(envelope(d), d)], NOW)
        assert out.outcome == "stored"
        (intervals,) = await _days(mdm_session, "1-1:1.29.0", day)
        assert len(intervals.values) == n and intervals.values.count(100) == n


async def test_redelivery_is_idempotent_and_a_late_delivery_fills_the_gap(mdm_session: AsyncSession) -> None:
    day = dt.date(2026, 2, 2)
    first = taf7_day(day, gateway=1, missing=(20, 21))
    e = envelope(first)
    assert (await ingest(mdm_session, [(e, first)], NOW))[0].outcome == "stored"
    again = await ingest(mdm_session, [(e, first)], NOW)
    assert (again[0].outcome, again[0].http_status) == ("duplicate", 200)
    late = taf7_day(day, gateway=1)
    (filled,) = await ingest(mdm_session, [(envelope(late), late)], NOW)
    assert filled.outcome == "stored" and filled.values_stored == 2 + 3  # 2 readings, 3 quarter hours
    versions = await _days(mdm_session, "1-1:1.29.0", day, gateway=1)
    assert [v.version for v in versions] == [1, 2] and None not in versions[-1].values
    assert None in versions[0].values  # the first version is kept as it was


async def test_a_differing_value_is_a_conflict_and_the_stored_one_stays(mdm_session: AsyncSession) -> None:
    day = dt.date(2026, 2, 3)
    d = taf7_day(day, gateway=2)
    await ingest(mdm_session, [(envelope(d), d)], NOW)
    other = taf7_day(day, gateway=2, bump={30: 7})
    (out,) = await ingest(mdm_session, [(envelope(other), other)], NOW)
    assert out.outcome == "conflict"
    row = await mdm_session.scalar(select(MeterDelivery).where(MeterDelivery.id == out.delivery_id))
    assert row is not None and row.conflicts
    assert {c["delivered"] - c["stored"] for c in row.conflicts} == {7, -7}
    (intervals,) = await _days(mdm_session, "1-1:1.29.0", day, gateway=2)
    assert intervals.values[30] == 100


async def test_registers_are_point_readings(mdm_session: AsyncSession) -> None:
    at = dt.datetime(2026, 3, 1, 0, tzinfo=dt.UTC)
    d = Delivery(gateway_id=demo_gateway_id(3), recipient=VERTRIEB, profile_id="ep-1", taf=1, reason="scheduled",
                 created=at, meters=(MeterData(meter_id=demo_meter_id(3, 0), registers=(Register(
                     obis="1-0:1.8.0", value=4_200_000, scaler=0, unit=30, status=0, captured_at=at),)),))
    (out,) = await ingest(mdm_session, [(envelope(d), d)], NOW)
    assert out.outcome == "stored"
    reading = await mdm_session.scalar(select(MeterReading).where(MeterReading.at == at))
    assert reading is not None and reading.value == 4_200_000 and reading.meter_id == demo_meter_id(3, 0)


async def test_refusals_store_nothing_but_the_reason(mdm_session: AsyncSession) -> None:
    day = dt.date(2026, 2, 4)
    good = taf7_day(day, gateway=4)
    cases = {
        "unknown_gateway": dataclasses.replace(good, gateway_id="EEMH0199999999"),
        "meter_not_assigned": dataclasses.replace(good, meters=(dataclasses.replace(
            good.meters[0], meter_id=demo_meter_id(5, 0)),)),
        "taf_not_ordered": dataclasses.replace(good, taf=6),
        "not_for_this_emt": dataclasses.replace(good, recipient=VERTRIEB),
        "future_period": taf7_day(NOW.date() + dt.timedelta(days=1), gateway=4),
    }
    for reason, d in cases.items():
        e = dataclasses.replace(envelope(d), recipient=NETZ, gateway_id=d.gateway_id)
        (out,) = await ingest(mdm_session, [(e, d)], NOW)
        assert (out.outcome, out.refusal) == ("refused", reason), reason
        assert out.http_status in (403, 422, 400)
    supplier_sees_nothing = await mdm_session.scalar(select(MeterSeries.id).where(
        MeterSeries.market_partner == VERTRIEB, MeterSeries.obis == "1-1:1.29.0"))
    assert supplier_sees_nothing is None
    assert await _days(mdm_session, "1-1:1.29.0", day, gateway=4) == []


async def test_capture_times_within_one_percent_count_a_clock_shift_is_noted(mdm_session: AsyncSession) -> None:
    """DS: a registration period may deviate by 1 % (9 s of 15 min). 7 s late is the boundary; four
    minutes late is a clock shift: not stored as a value, noted on the day for VEE."""
    day = dt.date(2026, 2, 5)
    d = taf7_day(day, gateway=0)
    (profile,) = d.meters[0].profiles
    entries = list(profile.entries)
    entries[5] = dataclasses.replace(entries[5], end=entries[5].end + dt.timedelta(seconds=7))
    entries[40] = dataclasses.replace(entries[40], end=entries[40].end + dt.timedelta(minutes=4))
    shifted = dataclasses.replace(d, meters=(dataclasses.replace(d.meters[0], profiles=(
        dataclasses.replace(profile, entries=tuple(entries)),)),))
    (out,) = await ingest(mdm_session, [(envelope(shifted), shifted)], NOW)
    assert out.outcome == "stored"
    (intervals,) = await _days(mdm_session, "1-1:1.29.0", day)
    assert intervals.values[4] == 100 and intervals.values[39] is None and intervals.values[40] is None
    assert intervals.notes and intervals.notes["clock_shift"][0]["offset_s"] == 240


NORMAL = (5 << 32) | (1 << 8) | (1 << 2) | (7 << 18)  # DS Tab. 15.1: SMGW bits 0, 2; meter 2, 8, 18-20


async def test_status_words_are_stored_as_the_common_one_and_exceptions(mdm_session: AsyncSession) -> None:
    """Tab. 15.1 words are never 0: a day stores its usual word once and the slots that differ; a
    later delivery that fills a NoValue slot replaces its word too."""
    day = dt.date(2026, 2, 6)
    gap = taf7_day(day, gateway=3, missing=(20,), normal=NORMAL)
    await ingest(mdm_session, [(envelope(gap), gap)], NOW)
    (registers,) = await _days(mdm_session, "1-0:1.8.0", day, gateway=3)
    assert registers.status_common == NORMAL and registers.status_slots == [20]
    assert registers.status_words == [NORMAL | ((1 << 13) << 32)]
    full = taf7_day(day, gateway=3, normal=NORMAL)
    await ingest(mdm_session, [(envelope(full), full)], NOW)
    latest = (await _days(mdm_session, "1-0:1.8.0", day, gateway=3))[-1]
    assert (latest.version, latest.status_common, latest.status_slots) == (2, NORMAL, None)
