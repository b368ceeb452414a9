"""Base meter values: deterministic from the seed, monotonic registers, a plausible yearly
consumption and daily shape, the documented shares of prosumers, gaps and tamper events."""

from __future__ import annotations

import itertools
import time

from simulator.meters import INTERVAL_S, PER_DAY, SMGW_METER_TAMPER, SMGW_NO_VALUE, MeterModel, demo_mk0
from simulator.run import Simulator
from simulator.state import meter_ids
from tests.simulator.conftest import control, gid
from tests.simulator.helpers import brute_force_tariffs

NOW_K = int(time.time()) // INTERVAL_S


def test_registers_are_monotonic_and_plausible() -> None:
    for i in range(20):
        for meter in meter_ids(i):
            m = MeterModel(meter)
            values = [m.import_wh(k) for k in range(NOW_K - 400 * PER_DAY, NOW_K, 7)]
            assert all(b >= a for a, b in itertools.pairwise(values)), meter
            year = (m.import_wh(NOW_K) - m.import_wh(NOW_K - 365 * PER_DAY)) / 1000
            assert 1400 < year < 8200 and abs(year - m.annual_kwh) / m.annual_kwh < 0.02
            if m.prosumer:
                export = [m.export_wh(k) for k in range(NOW_K - 30 * PER_DAY, NOW_K)]
                assert all(b >= a for a, b in itertools.pairwise(export))
                night = NOW_K - NOW_K % PER_DAY  # 00:00 UTC = 01:00 CET: no sun
                assert m.export_wh(night + 1) == m.export_wh(night)


def test_daily_shape_evening_peak_above_night() -> None:
    m = MeterModel(meter_ids(1)[0])
    day0 = NOW_K - NOW_K % PER_DAY - 4 - 10 * PER_DAY  # a CET midnight ten days ago
    per_interval = [m.import_wh(day0 + j + 1) - m.import_wh(day0 + j) for j in range(PER_DAY)]
    night = sum(per_interval[8:16]) / 8  # 02:00-04:00
    evening = sum(per_interval[74:82]) / 8  # 18:30-20:30
    assert evening > 2 * night > 0


def test_deterministic_and_seeded() -> None:
    a, b, c = MeterModel("1EMH0530000000", 0), MeterModel("1EMH0530000000", 0), MeterModel("1EMH0530000000", 7)
    assert a.import_wh(NOW_K) == b.import_wh(NOW_K) and a.import_wh(NOW_K) != c.import_wh(NOW_K)
    assert demo_mk0("1EMH0530000000") == demo_mk0("1EMH0530000000") and len(demo_mk0("1EMH0530000000")) == 16


def test_shares_of_gaps_tamper_and_prosumers() -> None:
    models = [MeterModel(m) for i in range(3000) for m in meter_ids(i)]
    n = len(models)
    assert 0.03 < sum(m.has_gaps for m in models) / n < 0.07
    assert 0.003 < sum(m.has_tamper for m in models) / n < 0.02
    assert 0.11 < sum(m.prosumer for m in models) / n < 0.19
    gappy = next(m for m in models if m.has_gaps)
    readings = gappy.readings(NOW_K - 60 * PER_DAY, NOW_K)
    missing = [r for r in readings if r.import_wh is None]
    assert missing and all(r.status & (SMGW_NO_VALUE << 32) for r in missing)
    tampered = next(m for m in models if m.has_tamper)
    flags = [r for r in tampered.readings(NOW_K - 120 * PER_DAY, NOW_K) if r.status & (SMGW_METER_TAMPER << 32)]
    assert flags and all(r.import_wh is not None for r in flags)


async def test_control_api_readings_match_the_model(sim: Simulator) -> None:
    meter = meter_ids(0)[0]
    async with control(sim) as api:
        data = (await api.get(f"/gateways/{gid(0)}/meters/{meter}/readings",
                              params={"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"})).json()
    assert len(data["readings"]) == PER_DAY
    k0 = 1767225600 // INTERVAL_S
    assert [r["import_wh"] for r in data["readings"]] == [MeterModel(meter).import_wh(k0 + j) for j in range(PER_DAY)]


def test_taf2_tariff_registers_follow_the_schedule_across_a_dst_change() -> None:
    import datetime as dt

    from simulator.meters import tariff_register_wh

    model = MeterModel(meter_ids(4)[0])
    since = dt.datetime(2026, 10, 21, 13, 7, tzinfo=dt.UTC).timestamp()  # EU summer time ends 2026-10-25
    end_k = int(dt.datetime(2026, 10, 29, 9, 30, tzinfo=dt.UTC).timestamp()) // INTERVAL_S
    start_k = -(-int(since) // INTERVAL_S)
    for schedule in ([("06:00", "1-0:1.8.1"), ("22:00", "1-0:1.8.2")],
                     [("07:10", "1-0:1.8.1"), ("12:00", "1-0:1.8.2"), ("17:45", "1-0:1.8.1"), ("23:30", "1-0:1.8.3")]):
        sch = [{"at": at, "register": reg} for at, reg in schedule]
        derived = {reg: tariff_register_wh(model, reg, sch, since, end_k) for _, reg in schedule}
        assert derived == brute_force_tariffs(model, schedule, start_k, end_k)
        assert sum(derived.values()) == model.import_wh(end_k) - model.import_wh(start_k)
        assert all(v > 0 for v in derived.values())
    assert tariff_register_wh(model, "1-0:1.8.1", sch, since, start_k) == 0  # nothing counted yet


def test_status_words_follow_ds_tab_15_1() -> None:
    """Bit numbers of the combined status word (TR-03109-1 DS Tab. 15.1), SMGW half upper, meter
    half lower: SMGW 0 and 2 always 1, 8 error, 9 time not valid, 12 warning, 13 NoValue, 14
    tamper, 16 threshold; meter (FNN base meter) 2 type base meter, 8 active power, 9 magnetic, 10
    terminal cover, 11 export direction, 17 fatal, 18-20 voltage L1-L3."""
    from simulator import meters as M

    assert (M.SMGW_FIXED, M.SMGW_ERROR, M.SMGW_TIME_INVALID, M.SMGW_WARNING, M.SMGW_NO_VALUE,
            M.SMGW_METER_TAMPER, M.SMGW_VALUE_TRIGGERED) == (0b101, 1 << 8, 1 << 9, 1 << 12, 1 << 13, 1 << 14, 1 << 16)
    assert (M.METER_BASE, M.METER_ACTIVE_POWER, M.METER_MAGNETIC, M.METER_TERMINAL_COVER, M.METER_EXPORT,
            M.METER_FATAL, M.METER_VOLTAGES) == (1 << 2, 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 17, 0b111 << 18)
    consumer = MeterModel(meter_ids(1)[0])
    busy = next(k for k in range(NOW_K - PER_DAY, NOW_K) if consumer.import_wh(k) > consumer.import_wh(k - 1))
    assert consumer.reading(busy).status == 0x00000005_001C0104  # in operation, consuming
    gappy = next(MeterModel(m) for i in range(3000) for m in meter_ids(i) if MeterModel(m).has_gaps)
    gap = next(r for r in gappy.readings(NOW_K - 60 * PER_DAY, NOW_K) if r.import_wh is None)
    assert gap.status == (0b101 | 1 << 13) << 32  # NoValue, and no meter status without a telegram
    tampered = next(MeterModel(m) for i in range(3000) for m in meter_ids(i) if MeterModel(m).has_tamper)
    flagged = next(r for r in tampered.readings(NOW_K - 120 * PER_DAY, NOW_K) if r.status & (SMGW_METER_TAMPER << 32))
    assert flagged.status & (1 << 10) and not flagged.status & (1 << 9)  # terminal cover, not magnetic

