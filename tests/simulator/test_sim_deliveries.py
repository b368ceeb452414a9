"""Gateways deliver their evaluation profiles' data to the EMT themselves (docs/protocol.md 14): TLS
to the endpoint with the recipient's certificate checked, CMS for the EMT, the COSEM XML of 14.2
(TAF 7 days with 97 / 93 / 101 entries, TAF 1, 2, 6, 9, 10), answers per 14.3 (redelivery with the
same x-CID after 503 and after a restart, 422 final), time scale and backfill, nothing ahead of the
real clock. The receiver is tests.simulator.emt_stub, written from the protocol text."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pki.testpki import TestPki
from simulator.meters import INTERVAL_S, MeterModel, tariff_register_wh
from simulator.run import Simulator
from simulator.state import meter_ids
from tests.simulator.conftest import SimFactory, connect, control, fleet, gid
from tests.simulator.emt_stub import CT, PATH, Delivery, EmtStub
from tests.simulator.gwa_stub import GwaStub
from tests.simulator.helpers import commission_deliveries, evaluation_profile

BERLIN = ZoneInfo("Europe/Berlin")
FAST = {"delivery_tick_s": 0.02, "delivery_jitter_s": 0, "delivery_retry_first_s": 0.1,
        "delivery_retry_max_s": 0.4, "time_scale": 1e9}
# DS Tab. 15.1: SMGW bits 0 and 2 are always set; a wired base meter sets bit 2 (type base meter),
# 18-20 (voltage L1-L3 present) and 8 while active power flows.
SMGW_FIXED = 0b101 << 32
METER_NORMAL = (1 << 2) | (1 << 18) | (1 << 19) | (1 << 20)
ACTIVE_POWER = 1 << 8
NO_VALUE = (1 << 13) << 32
LOAD_PROFILE, GRID_PROFILE = "0100630100ff", "0100636100ff"
CLOCK_COLUMN, STATUS_COLUMN = [8, "0000010000ff", 2, 0], [1, "0000616100ff", 2, 0]


@pytest.fixture
async def emt(sim_pki: TestPki) -> AsyncIterator[EmtStub]:
    stub = await EmtStub(sim_pki).start()
    try:
        yield stub
    finally:
        await stub.stop()


def midnight(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=BERLIN).timestamp()


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def today() -> dt.date:
    return dt.datetime.now(BERLIN).date()


def expected_status(model: MeterModel, k: int) -> int:
    used = model.import_wh(k) > model.import_wh(k - 1) or model.export_wh(k) > model.export_wh(k - 1)
    export = model.export_wh(k) - model.export_wh(k - 1) > model.import_wh(k) - model.import_wh(k - 1)
    return SMGW_FIXED | METER_NORMAL | (ACTIVE_POWER if used else 0) | ((1 << 11) if export else 0)


def of_profile(received: list[Delivery], pid: str) -> list[Delivery]:
    return [d for d in received if d.gg("profile") == pid]


async def start(make_sim: SimFactory, stub: GwaStub, pki: TestPki, emt: EmtStub, index: int,
                profiles: list[bytes], *, meter: str | None = None, **settings: Any) -> tuple[Simulator, str, str]:
    sim = await make_sim(gateways=index + 1, **{**FAST, **settings})
    g, meter = gid(index), meter or meter_ids(index)[0]
    link = await connect(sim, stub, g, pki)
    await commission_deliveries(link, stub, pki, meter, emt.endpoint(), profiles)
    return sim, g, meter


async def test_taf7_days_as_register_profiles(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki,
                                              emt: EmtStub) -> None:
    meter = meter_ids(0)[0]  # a prosumer: import and export register
    regs = ("1-0:1.8.0", "1-0:2.8.0")
    sim, g, _ = await start(make_sim, stub, sim_pki, emt, 0, [evaluation_profile("ep7", 7, meter, regs)],
                            backfill_days=2)
    received = await emt.wait(lambda r: len(r) >= 2)
    await asyncio.sleep(0.3)
    assert len(emt.received) == 2  # today has not ended: nothing for it
    model = MeterModel(meter)
    days = [today() - dt.timedelta(days=2), today() - dt.timedelta(days=1)]
    buffers = []
    for d, day in zip(received, days, strict=True):
        assert (d.path, d.headers["content-type"], d.headers["host"]) == (PATH, CT, f"emt1.gridgate.test:{emt.port}")
        assert re.fullmatch(r"uuid:[0-9a-f-]{36}", d.cid) and d.sni == "emt1.gridgate.test"
        assert d.client_cn == d.signer_cn == f"{g}.SMGW" and d.status == 201
        assert (d.gg("gateway"), d.gg("recipient"), d.gg("profile"), d.gg("taf"), d.gg("reason")) == (
            g, "emt1", "ep7", "7", "scheduled")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d.gg("created"))
        assert list(d.ldevs) == [f"{meter.lower()}.sm"]
        assert d.object(4, "0100010800ff").attributes == {3: [0, 30]}
        assert d.object(4, "0100020800ff").attributes == {3: [0, 30]}
        capture, period, buffer = d.profile(LOAD_PROFILE)
        assert capture == [CLOCK_COLUMN, [4, "0100010800ff", 2, 0], [4, "0100020800ff", 2, 0], STATUS_COLUMN]
        assert period == 900 and len(buffer) == 97
        start_k = int(midnight(day)) // INTERVAL_S
        assert [e[0] for e in buffer] == [iso((start_k + i) * INTERVAL_S) for i in range(97)]
        assert [e[1:] for e in buffer] == [[model.import_wh(k), model.export_wh(k), expected_status(model, k)]
                                           for k in range(start_k, start_k + 97)]
        buffers.append(buffer)
    assert buffers[0][-1] == buffers[1][0]  # the midnight entry closes one day and opens the next
    async with control(sim) as api:
        listed = (await api.get(f"/gateways/{g}/deliveries")).json()
        rows = [(x["state"], x["attempts"], x["status"], x["entries"]) for x in listed]
        assert rows == [("delivered", 1, 201, 97)] * 2
        assert {x["cid"] for x in listed} == {d.cid for d in received}
        gw = (await api.get(f"/gateways/{g}")).json()
        assert gw["counters"]["deliveries"] == {"built": 2, "delivered": 2} and gw["deliveries_pending"] == 0


def last_sunday(year: int, month: int) -> dt.date:
    d = dt.date(year, month, 31)
    return d - dt.timedelta(days=(d.weekday() + 1) % 7)


def last_past(month: int) -> dt.date:
    t = today()
    d = last_sunday(t.year, month)
    return d if d < t else last_sunday(t.year - 1, month)


async def test_taf7_dst_days_have_93_and_101_entries(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki,
                                                     emt: EmtStub) -> None:
    meter = meter_ids(1)[0]
    march, october = last_past(3), last_past(10)
    profiles = [evaluation_profile(f"ep-{name}", 7, meter, valid_from=iso(midnight(day)),
                                   valid_to=iso(midnight(day + dt.timedelta(days=1))))
                for name, day in (("march", march), ("october", october))]
    back = (today() - min(march, october)).days + 2
    await start(make_sim, stub, sim_pki, emt, 1, profiles, backfill_days=back)
    received = await emt.wait(lambda r: len(r) >= 2)
    await asyncio.sleep(0.2)
    assert len(emt.received) == 2  # validFrom / validTo: one day each
    model = MeterModel(meter)
    for pid, day, n in (("ep-march", march, 93), ("ep-october", october, 101)):
        (d,) = of_profile(received, pid)
        _, _, buffer = d.profile(LOAD_PROFILE)
        assert len(buffer) == n
        k0 = int(midnight(day)) // INTERVAL_S
        assert buffer[0][0] == iso(midnight(day)) and buffer[-1][0] == iso(midnight(day + dt.timedelta(days=1)))
        assert [e[1] for e in buffer] == [model.import_wh(k) for k in range(k0, k0 + n)]


async def test_taf1_taf2_taf10_and_on_request(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki,
                                              emt: EmtStub) -> None:
    meter = meter_ids(1)[0]
    grid = ("1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0", "1-0:31.7.0", "1-0:16.7.0", "1-0:14.7.0")
    schedule = (("06:00", "1-0:1.8.1"), ("22:00", "1-0:1.8.2"))
    profiles = [evaluation_profile("ep1", 1, meter, interval=86400),
                evaluation_profile("ep2", 2, meter, ("1-0:1.8.1", "1-0:1.8.2"), switching=schedule),
                evaluation_profile("ep10", 10, meter, grid, interval=300, period=3600),
                evaluation_profile("ep6", 6, meter), evaluation_profile("ep9", 9, meter, ("1-0:2.8.0", "1-0:16.7.0"))]
    sim, g, _ = await start(make_sim, stub, sim_pki, emt, 1, profiles, backfill_days=1)
    gw = fleet(sim).gateways[g].state
    # TAF 2 counts from the profile's write: let it have counted since yesterday 05:00, delivering yesterday
    yesterday = today() - dt.timedelta(days=1)
    since = midnight(yesterday) - 2 * 3600
    gw.profiles["evaluation"]["ep2"]["since"] = since
    gw.deliveries["ep2"]["next"] = midnight(yesterday)
    fleet(sim).deliveries.refresh(gw)
    async with control(sim) as api:
        r6 = await api.post(f"/gateways/{g}/deliveries", json={"profile": "ep6"})
        r9 = await api.post(f"/gateways/{g}/deliveries", json={"profile": "ep9"})
        assert r6.status_code == r9.status_code == 202 and len(r6.json()["deliveries"]) == 1
        assert (await api.post(f"/gateways/{g}/deliveries", json={"profile": "nope"})).status_code == 404
    now = time.time()
    received = await emt.wait(lambda r: {"ep1", "ep2", "ep6", "ep9"} <= {d.gg("profile") for d in r}
                              and len(of_profile(r, "ep10")) >= 24)
    model = MeterModel(meter)
    k_midnight = int(midnight(today())) // INTERVAL_S

    (t1,) = of_profile(received, "ep1")  # billing period of one day: the register at its end
    reg = t1.object(4, "0100010800ff").attributes
    assert reg == {2: model.import_wh(k_midnight), 3: [0, 30], 4: expected_status(model, k_midnight),
                   5: iso(k_midnight * INTERVAL_S)}
    (t2,) = of_profile(received, "ep2")
    sch = [{"at": at, "register": r} for at, r in schedule]
    for obis, hexid in (("1-0:1.8.1", "0100010801ff"), ("1-0:1.8.2", "0100010802ff")):
        attrs = t2.object(4, hexid).attributes
        assert attrs[2] == tariff_register_wh(model, obis, sch, since, k_midnight) > 0
        assert attrs[5] == iso(k_midnight * INTERVAL_S)
    assert t2.gg("reason") == "scheduled"
    (t6,) = of_profile(received, "ep6")
    (t9,) = of_profile(received, "ep9")
    k_now = int(now // INTERVAL_S)
    assert t6.gg("reason") == "on_demand" and t9.gg("reason") == "feed_in"
    assert t6.object(4, "0100010800ff").attributes[2] == model.import_wh(k_now)
    assert t9.object(4, "0100020800ff").attributes[2] == model.export_wh(k_now) == 0
    assert t9.object(4, "0100100700ff").attributes[3] == [0, 27]
    assert t9.object(4, "0100100700ff").attributes[2] == model.net_power_w(k_now - 1)

    grids = of_profile(received, "ep10")
    starts = sorted(parse_iso(d.profile(GRID_PROFILE)[2][0][0]) - 300 for d in grids)
    assert all(b - a == 3600 for a, b in itertools.pairwise(starts))  # every hour, none twice
    assert starts[-1] + 3600 <= now and starts[0] <= now - 86400 + 3600
    d10 = grids[0]
    capture, period, buffer = d10.profile(GRID_PROFILE)
    hexes = ["0100200700ff", "0100340700ff", "0100480700ff", "01001f0700ff", "0100100700ff", "01000e0700ff"]
    assert capture == [CLOCK_COLUMN, *([4, h, 2, 0] for h in hexes), STATUS_COLUMN] and period == 300
    assert [d10.object(4, h).attributes[3] for h in hexes] == [[-1, 35]] * 3 + [[-2, 33], [0, 27], [-2, 44]]
    assert len(buffer) == 12
    for entry in buffer:
        t = parse_iso(entry[0])
        assert entry[1:-1] == [model.grid_value(o, t) for o in grid]
        assert 2270 <= entry[1] <= 2330 and 4995 <= entry[6] <= 5005
        k = int(t // INTERVAL_S)
        assert entry[-1] == SMGW_FIXED | METER_NORMAL | (ACTIVE_POWER if model.net_power_w(k) else 0)
    assert all(d.received_at >= parse_iso(d.profile(GRID_PROFILE)[2][-1][0]) for d in grids)  # nothing ahead


async def test_redelivery_after_503_keeps_the_cid(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki,
                                                  emt: EmtStub) -> None:
    emt.answers = [503, 429]
    emt.retry_after = "0"
    meter = meter_ids(1)[0]
    sim, g, _ = await start(make_sim, stub, sim_pki, emt, 1, [evaluation_profile("ep7", 7, meter)], backfill_days=1)
    received = await emt.wait(lambda r: len(r) >= 3)
    assert [d.status for d in received] == [503, 429, 201]
    assert len({d.cid for d in received}) == 1 and len({d.payload for d in received}) == 1
    assert received[1].received_at - received[0].received_at >= 0.09  # 30 s doubling, scaled down in the test
    assert received[2].received_at - received[1].received_at >= 0.19
    async with control(sim) as api:
        (row,) = (await api.get(f"/gateways/{g}/deliveries")).json()
        assert (row["state"], row["attempts"], row["status"]) == ("delivered", 3, 201)
        counters = (await api.get(f"/gateways/{g}")).json()["counters"]["deliveries"]
        assert counters == {"built": 1, "retried": 2, "delivered": 1}


async def test_a_refusal_is_final(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki, emt: EmtStub) -> None:
    emt.default = 422
    meter = meter_ids(1)[0]
    sim, g, _ = await start(make_sim, stub, sim_pki, emt, 1, [evaluation_profile("ep7", 7, meter)], backfill_days=1)
    await emt.wait(lambda r: len(r) >= 1)
    await asyncio.sleep(0.6)  # several back-off periods
    assert len(emt.received) == 1
    async with control(sim) as api:
        (row,) = (await api.get(f"/gateways/{g}/deliveries")).json()
        assert (row["state"], row["status"], row["detail"], row["attempts"]) == ("refused", 422, "taf_not_ordered", 1)
        log = (await api.get(f"/gateways/{g}/logs/system", params={"limit": 500})).json()
        assert any("refused by emt1: 422 taf_not_ordered" in e["text"] for e in log)


async def test_redelivery_after_a_restart(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki, emt: EmtStub,
                                          tmp_path: Path) -> None:
    emt.default = 503
    meter = meter_ids(1)[0]
    state = tmp_path / "state"
    sim, g, _ = await start(make_sim, stub, sim_pki, emt, 1, [evaluation_profile("ep7", 7, meter)], backfill_days=1,
                            state=state)
    first = (await emt.wait(lambda r: len(r) >= 1))[0]
    await sim.stop()
    emt.default = 201
    stub.forget(g)
    sim = await make_sim(gateways=2, state=state, **FAST, backfill_days=1)
    received = await emt.wait(lambda r: any(d.status == 201 for d in r))
    await asyncio.sleep(0.3)
    assert {d.cid for d in emt.received} == {first.cid}  # the same delivery, not built again
    assert received[-1].payload == first.payload
    async with control(sim) as api:
        (row,) = (await api.get(f"/gateways/{g}/deliveries")).json()
        assert row["state"] == "delivered" and row["attempts"] >= 2


async def test_a_wrong_server_certificate_is_refused(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki) -> None:
    wrong = await EmtStub(sim_pki, name="emt2").start()  # a valid EMT certificate, but not emt1's
    try:
        meter = meter_ids(1)[0]
        sim, g, _ = await start(make_sim, stub, sim_pki, wrong, 1, [evaluation_profile("ep7", 7, meter)],
                                backfill_days=1)
        gw = fleet(sim).gateways[g].state
        for _ in range(200):
            if gw.counters["deliveries"].get("untrusted"):
                break
            await asyncio.sleep(0.02)
        assert gw.counters["deliveries"]["untrusted"] >= 1 and wrong.received == []
        async with control(sim) as api:
            (row,) = (await api.get(f"/gateways/{g}/deliveries")).json()
            assert row["state"] == "pending" and "not the one installed" in row["detail"]
            log = (await api.get(f"/gateways/{g}/logs/system", params={"limit": 500})).json()
            assert any("delivery to emt1 not sent" in e["text"] for e in log)
    finally:
        await wrong.stop()


async def test_backfill_at_time_scale_and_nothing_ahead(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki,
                                                        emt: EmtStub) -> None:
    scale = 86400 / 0.6  # a simulated day per 0.6 s
    meter = meter_ids(1)[0]
    sim, _, _ = await start(make_sim, stub, sim_pki, emt, 1, [evaluation_profile("ep7", 7, meter)],
                            backfill_days=3, time_scale=scale)
    written = time.time()
    pace = fleet(sim).deliveries.pace
    received = await emt.wait(lambda r: len(r) >= 3, timeout=15)
    await asyncio.sleep(0.3)
    assert len(emt.received) == 3
    for d in received:
        end = parse_iso(d.profile(LOAD_PROFILE)[2][-1][0])
        assert end <= pace.start and end <= d.received_at  # complete days in the past only
        earliest = pace.start + (end - (pace.start - 3 * 86400)) / scale  # when the simulated clock reaches the end
        assert d.received_at >= earliest - 0.05
    assert earliest > written  # the last day waited for the simulated clock, it was not there at once
    async with control(sim) as api:
        summary = (await api.get("/status")).json()["deliveries"]
        assert summary["time_scale"] == scale and summary["backfill_days"] == 3


def test_local_days_and_periods() -> None:
    from simulator.periods import Pace, period_bounds, quarters_of_day

    days = [dt.date(2026, 3, 29), dt.date(2026, 3, 30), dt.date(2026, 10, 25), dt.date(2026, 10, 26)]
    assert [quarters_of_day(d) for d in days] == [92, 96, 100, 96]
    t = midnight(dt.date(2026, 10, 25)) + 5 * 3600
    assert period_bounds(t, 86400) == (midnight(dt.date(2026, 10, 25)), midnight(dt.date(2026, 10, 26)))
    assert period_bounds(t, 3600) == (t, t + 3600)
    a, b = period_bounds(t, 3 * 86400, origin=dt.date(2026, 10, 24))
    assert (a, b) == (midnight(dt.date(2026, 10, 24)), midnight(dt.date(2026, 10, 27)))
    pace = Pace(start=1000.0, backfill_s=500.0, scale=10)
    assert (pace.now(1000.0), pace.now(1020.0), pace.now(1100.0)) == (500.0, 700.0, 1100.0)


def test_xml_encoder_escapes_and_names_objects() -> None:
    import defusedxml.ElementTree as DET

    from simulator import infoxml

    assert infoxml.obis_hex("1-0:1.8.0") == "0100010800ff" and infoxml.obis_hex("0-0:97.97.0") == "0000616100ff"
    assert infoxml.obis_hex("1-0:99.1.0.7") == "010063010007"
    doc = infoxml.document(gateway="ETHE0116900000", recipient="9900000000001", profile='ep "7" <&>', taf=7,
                           reason="scheduled", created=0.5, meter="1EMH0530000000", objects=[])
    root = DET.fromstring(doc)
    assert root.get("{urn:gridgate:mdm:1}profile") == 'ep "7" <&>'
    assert root.get("{urn:gridgate:mdm:1}created") == "1970-01-01T00:00:00.500Z"
