"""VEE against the database: a delivery queues its days and the queue validates them; a validated
version is written only where the result differs; a day nobody delivered for is estimated from
comparable days; DST days keep 92 and 100 quarter hours; chains are versioned per role (the shipped
default stored on first use); a manual correction is an edited version that later passes carry;
"explain this value" names version, layer, rule or user, run and reason."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput
from core.ids import demo_meter_id
from domain.catalogue.models import DeviceType
from domain.demo import demo_melo
from domain.devices.models import Meter
from domain.locations.models import MeteringPoint
from domain.meterdata.ingest import ingest
from domain.meterdata.models import LAYERS, MeterDay, MeterSeries
from domain.meterdata.quality import METHOD_INTERPOLATION, METHOD_STATISTICAL, Quality
from domain.meterdata.vee import queue, service
from domain.meterdata.vee.models import VeeChain, VeeFinding, VeePending, VeeRun
from domain.meterdata.vee.repository import SeriesFilter
from tests.mdm.test_mdm_ingest import NOW, envelope, taf7_day

REGISTER, INTERVAL = "1-0:1.8.0", "1-1:1.29.0"


async def _deliver(session: AsyncSession, day: dt.date, *, gateway: int = 0, missing: tuple[int, ...] = (),
                   step: int = 100, bump: dict[int, int] | None = None) -> None:
    d = taf7_day(day, gateway=gateway, missing=missing, step=step, bump=bump)
    (out,) = await ingest(session, [(envelope(d), d)], NOW)
    assert out.outcome in ("stored", "conflict"), out


async def _series(session: AsyncSession, obis: str, gateway: int) -> int:
    sid = await session.scalar(select(MeterSeries.id)
                               .join(MeteringPoint, MeteringPoint.id == MeterSeries.metering_point_id)
                               .where(MeterSeries.obis == obis, MeteringPoint.melo == demo_melo(gateway, 0)))
    assert sid is not None
    return sid


async def _versions(session: AsyncSession, sid: int, day: dt.date) -> list[MeterDay]:
    return list((await session.scalars(select(MeterDay).where(MeterDay.series_id == sid, MeterDay.day == day)
                                       .order_by(MeterDay.version))).all())


async def _run(session: AsyncSession, trigger: str = "rerun") -> int:
    return await service.open_run(session, trigger=trigger, workflow_id=None, initiator="test")


async def test_a_delivery_queues_its_days_and_validation_fills_the_gap(mdm_session: AsyncSession) -> None:
    day = dt.date(2026, 1, 15)
    await _deliver(mdm_session, day, missing=(10,))
    reg, iv = await _series(mdm_session, REGISTER, 0), await _series(mdm_session, INTERVAL, 0)
    queued = {(r.series_id, r.day) for r in await queue.next_queued(mdm_session, None, 10_000)}
    assert {(reg, day), (iv, day), (reg, day - dt.timedelta(days=1))} <= queued  # the opening reading's day too

    run = await _run(mdm_session, "delivery")
    total = service.BatchResult()
    after = None
    while True:
        batch = await service.validate_queued(mdm_session, run, after, 2)  # small batches: keyset paging
        if not batch.taken:
            break
        total.add(batch.result)
        after = batch.last
    assert await mdm_session.scalar(select(func.count()).select_from(VeePending).where(
        VeePending.series_id.in_([reg, iv]))) == 0
    assert total.chains == {"MSB": 1}  # the demo grid operator is VNB and MSB: the MSB chain applies
    *_, validated = await _versions(mdm_session, iv, day)
    assert validated.layer == LAYERS["validated"] and validated.source == f"vee:{run}"
    assert validated.values[10] == validated.values[11] == 100  # interpolated between 100 and 100
    assert validated.quality[10] == validated.quality[11] == Quality.SUBSTITUTE
    assert validated.notes and validated.notes["10"]["method"] == METHOD_INTERPOLATION
    *_, register = await _versions(mdm_session, reg, day)
    assert register.values[10] == 1_000_000 + 11 * 100 and register.quality[10] == Quality.SUBSTITUTE
    rules = set(await mdm_session.scalars(select(VeeFinding.rule_id).where(VeeFinding.run_id == run,
                                                                             VeeFinding.series_id == iv)))
    assert {"completeness", "status", "interpolate"} <= rules  # NoValue (SMGW bit 13) on the missing reading
    stored = await mdm_session.get(VeeRun, run)
    assert stored is not None and stored.days == total.days and stored.chain_versions == {"MSB": 1}

    # The same data again: no new version anywhere (findings are the new run's).
    again = await _run(mdm_session)
    second = await service.validate(mdm_session, again, [(iv, day), (reg, day)])
    assert second.versions == 0 and second.findings > 0
    assert len(await _versions(mdm_session, iv, day)) == 2
    # The late reading arrives: a new raw version, queued, and a validated one with the true values.
    await _deliver(mdm_session, day)
    third = await service.validate(mdm_session, await _run(mdm_session), [(iv, day)])
    assert third.versions == 1
    *_, latest = await _versions(mdm_session, iv, day)
    assert latest.layer == LAYERS["validated"] and latest.notes is None and set(latest.quality) == {Quality.TRUE}


async def test_the_shipped_default_is_stored_on_first_use_and_a_new_version_changes_results_only_where_they_differ(
        mdm_session: AsyncSession) -> None:
    a, b = dt.date(2026, 2, 9), dt.date(2026, 2, 10)
    await _deliver(mdm_session, a, gateway=1, missing=(30, 31, 32))  # 4 quarter hours: interpolated by v1
    await _deliver(mdm_session, b, gateway=1)
    iv = await _series(mdm_session, INTERVAL, 1)
    first = await service.validate(mdm_session, await _run(mdm_session), [(iv, a), (iv, b)])
    assert first.versions == 2
    chains = list(await mdm_session.scalars(select(VeeChain).where(VeeChain.role == "MSB")))
    assert [(c.version, c.active, c.created_by) for c in chains] == [(1, True, "system:default")]

    rules = [r for r in chains[0].rules if r["type"] != "interpolate"]
    with pytest.raises(InvalidInput):
        await service.publish_chain(mdm_session, "MSB", [{"id": "x", "type": "nonsense"}], user="anna")
    v2 = await service.publish_chain(mdm_session, "MSB", rules, user="anna", note="no interpolation")
    assert v2.version == 2
    rerun = await _run(mdm_session)
    second = await service.validate(mdm_session, rerun, [(iv, a), (iv, b)])
    assert second.versions == 1 and second.chains == {"MSB": 2}  # only day a changes
    *_, latest = await _versions(mdm_session, iv, a)
    assert latest.source == f"vee:{rerun}" and latest.reason == "chain MSB v2"
    assert latest.notes and latest.notes["31"]["rule"] == "standard_load_profile"
    assert latest.notes["31"]["method"] == METHOD_STATISTICAL
    await service.activate_chain_version(mdm_session, "MSB", 1)
    back = await service.validate(mdm_session, await _run(mdm_session), [(iv, a), (iv, b)])
    assert back.versions == 1 and back.chains == {"MSB": 1}


async def test_a_day_nobody_delivered_is_estimated_from_comparable_days(mdm_session: AsyncSession) -> None:
    day = dt.date(2026, 3, 10)  # a Tuesday; the four Tuesdays before it were delivered
    for weeks in (1, 2, 3, 4):
        await _deliver(mdm_session, day - dt.timedelta(days=7 * weeks), gateway=2, step=80 + weeks)
    iv = await _series(mdm_session, INTERVAL, 2)
    keys = await service.expected_days(mdm_session, [iv], day, day)
    assert keys == [(iv, day)]  # no version, but the grid operator has a TAF 7 order
    result = await service.validate(mdm_session, await _run(mdm_session, "daily"), keys)
    assert result.versions == 1 and result.substitutes == 96
    (estimated,) = await _versions(mdm_session, iv, day)
    assert estimated.values == [round((81 + 82 + 83 + 84) / 4)] * 96
    assert estimated.notes and {n["rule"] for n in estimated.notes.values()} == {"comparable_days"}
    finding = await mdm_session.scalar(select(VeeFinding).where(VeeFinding.series_id == iv, VeeFinding.day == day,
                                                               VeeFinding.rule_id == "completeness"))
    assert finding is not None and finding.severity == "error" and finding.data and finding.data["missing"] == 96


async def test_dst_days_keep_92_and_100_quarter_hours(mdm_session: AsyncSession) -> None:
    for day, n in ((dt.date(2026, 3, 29), 92), (dt.date(2026, 10, 25), 100)):
        await _deliver(mdm_session, day, gateway=3, missing=(7, 8, 9))
        iv = await _series(mdm_session, INTERVAL, 3)
        await service.validate(mdm_session, await _run(mdm_session), [(iv, day)])
        *_, validated = await _versions(mdm_session, iv, day)
        assert len(validated.values) == len(validated.quality) == n
        assert None not in validated.values and validated.values.count(100) == n


async def test_a_conflicting_duplicate_is_queued_and_flagged(mdm_session: AsyncSession) -> None:
    day = dt.date(2026, 2, 3)
    await _deliver(mdm_session, day, gateway=4)
    iv = await _series(mdm_session, INTERVAL, 4)
    await service.validate(mdm_session, await _run(mdm_session), [(iv, day)])
    await mdm_session.execute(delete(VeePending))
    await _deliver(mdm_session, day, gateway=4, bump={30: 7})  # a conflict: nothing new stored
    assert (iv, day) in {(r.series_id, r.day) for r in await queue.next_queued(mdm_session, None, 1000)}
    run = await _run(mdm_session)
    await service.validate(mdm_session, run, [(iv, day)])
    (finding,) = await mdm_session.scalars(select(VeeFinding).where(VeeFinding.run_id == run,
                                                                    VeeFinding.rule_id == "duplicates"))
    assert finding.slots == [30, 31] and finding.severity == "warning"


async def test_manual_correction_and_explain(mdm_session: AsyncSession) -> None:
    day = dt.date(2026, 1, 20)
    await _deliver(mdm_session, day, gateway=5, missing=(40,))
    iv = await _series(mdm_session, INTERVAL, 5)
    run = await _run(mdm_session)
    await service.validate(mdm_session, run, [(iv, day)])

    why = await service.explain(mdm_session, iv, day, 41)
    assert (why.value, why.quality, why.mscons, why.layer) == (100, "substitute", "67", "validated")
    assert why.rule == "interpolate" and why.method == METHOD_INTERPOLATION and why.run and why.run["id"] == run
    assert why.written_by == f"rule interpolate in run {run}" and why.delivered is None
    assert any(f["rule"] == "interpolate" for f in why.findings)
    assert [h.layer for h in why.history] == ["raw", "validated"]
    true = await service.explain(mdm_session, iv, day, 3)
    assert true.quality == "true" and true.reason == "true value as delivered and validated"
    raw_view = await service.explain(mdm_session, iv, day, 41, view="raw")
    assert raw_view.value is None and raw_view.quality == "missing"
    assert (raw_view.written_by or "").startswith("delivery ")

    with pytest.raises(InvalidInput):
        await service.correct(mdm_session, iv, day, {3: 90}, user="anna", reason="because")
    with pytest.raises(InvalidInput):
        await service.correct(mdm_session, iv, day, {96: 90}, user="anna", reason="other")
    done = await service.correct(mdm_session, iv, day, {3: 90, 41: 95}, user="anna", reason="customer_reading",
                                 note="reading on site")
    assert done.version == 3
    edited = await service.explain(mdm_session, iv, day, 3)
    assert (edited.value, edited.quality, edited.layer, edited.user) == (90, "substitute", "edited", "anna")
    assert edited.written_by == "user anna" and edited.reason == "customer_reading" and edited.method == "manual"
    # A later pass keeps the correction (no new version: its result is the edited version) ...
    assert (await service.validate(mdm_session, await _run(mdm_session), [(iv, day)])).versions == 0
    # ... until a delivery brings the value slot 41 was corrected in place of.
    await _deliver(mdm_session, day, gateway=5)
    later = await _run(mdm_session)
    assert (await service.validate(mdm_session, later, [(iv, day)])).versions == 1
    assert (await service.explain(mdm_session, iv, day, 41)).quality == "true"
    kept = await service.explain(mdm_session, iv, day, 3)
    assert kept.value == 90 and kept.user == "anna" and kept.written_by == f"user anna (carried over by run {later})"


async def test_range_pages_cover_the_filtered_series(mdm_session: AsyncSession) -> None:
    day = dt.date(2026, 4, 14)
    for gw in (0, 1):
        await _deliver(mdm_session, day, gateway=gw)
    flt = SeriesFilter(obis=INTERVAL)
    total = await service.count_series(mdm_session, flt)
    assert total >= 2
    run = await _run(mdm_session)
    after, seen, days = 0, 0, 0
    while True:
        page = await service.validate_range_page(mdm_session, run, flt, day, day, after, 1)
        if page.last_series is None:
            break
        seen += page.series
        days += page.result.days
        after = page.last_series
    assert seen == total and days >= 2


async def test_limits_come_from_the_meters_device_type(mdm_session: AsyncSession) -> None:
    day = dt.date(2026, 2, 17)
    meter_type = await mdm_session.scalar(select(DeviceType).join(Meter, Meter.device_type_id == DeviceType.id)
                                          .where(Meter.device_id == demo_meter_id(1, 0)))
    assert meter_type is not None and "three_phase" in meter_type.capabilities
    meter_type.capabilities = [*meter_type.capabilities, "imax:40"]
    await mdm_session.flush()
    await _deliver(mdm_session, day, gateway=1, bump={50: 7_000})  # 7,100 Wh in one quarter hour
    iv = await _series(mdm_session, INTERVAL, 1)
    run = await _run(mdm_session)
    await service.validate(mdm_session, run, [(iv, day)])
    limits = list(await mdm_session.scalars(select(VeeFinding).where(VeeFinding.run_id == run,
                                                                     VeeFinding.rule_id == "limits")))
    high = next(f for f in limits if f.data and "high_wh" in f.data)
    assert high.slots == [50] and high.data == {"high_wh": 3 * 230 * 40 / 4, "phases": 3, "max_current_a": 40.0}
    low = next(f for f in limits if f.data and "low_wh" in f.data)
    assert low.slots == [51]  # the register falls back by 7,000 Wh: a negative quarter hour
    *_, validated = await _versions(mdm_session, iv, day)
    assert validated.values[50] == validated.values[51] == 100  # both rejected and interpolated
