"""Faults in the delivered meter data show in what the EMT receives: gaps (empty value + NoValue),
spikes, zero periods, a register reset, status-word errors (DS Tab. 15.1), shifted capture times,
duplicate deliveries, late and out-of-order periods, and a TAF 10 threshold delivery when a voltage
leaves the band. Faults are set with a past ``since`` so the backfilled day shows them."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pki.testpki import TestPki
from simulator.meters import INTERVAL_S, MeterModel
from simulator.run import Simulator
from simulator.state import meter_ids
from tests.simulator.conftest import SimFactory, connect, control, gid
from tests.simulator.emt_stub import Delivery, EmtStub
from tests.simulator.gwa_stub import GwaStub
from tests.simulator.helpers import commission_deliveries, evaluation_profile
from tests.simulator.test_sim_deliveries import (
    FAST,
    GRID_PROFILE,
    LOAD_PROFILE,
    NO_VALUE,
    iso,
    midnight,
    parse_iso,
    today,
)

ACTIVE_POWER = 1 << 8
EXPORT = 1 << 11
YESTERDAY = today() - dt.timedelta(days=1)
RESET_AT = midnight(YESTERDAY) + 10 * 3600  # register reset at 10:00 local yesterday

# gateway index -> (faults {kind: param}, evaluation profile)
SETUP: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {
    0: ({"gaps": 0.2}, {}),
    1: ({"spikes": 50_000}, {}),
    2: ({"zero_periods": 3}, {}),
    3: ({"register_reset": 10}, {}),
    4: ({"status_error": "tamper+time_invalid", "clock_shift": 5}, {}),
    5: ({"duplicates": 1}, {}),
    6: ({"late": 1}, {"period": 3600}),
    7: ({"voltage_excursion": "L1:195"}, {"taf": 10, "registers": ("1-0:32.7.0", "1-0:52.7.0")}),
}


@pytest.fixture
async def emt(sim_pki: TestPki) -> AsyncIterator[EmtStub]:
    stub = await EmtStub(sim_pki).start()
    try:
        yield stub
    finally:
        await stub.stop()


@pytest.fixture
async def faulty(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki, emt: EmtStub) -> Simulator:
    sim = await make_sim(gateways=len(SETUP), backfill_days=1, **FAST)
    since = iso(time.time() - 3 * 86400)
    async with control(sim) as api:
        for i, (faults, _) in SETUP.items():
            for kind, param in faults.items():
                at = iso(RESET_AT) if kind == "register_reset" else since
                r = await api.put(f"/gateways/{gid(i)}/faults/{kind}", json={"param": param, "since": at})
                assert r.status_code == 200, r.text

    async def commission(i: int) -> None:
        _, spec = SETUP[i]
        meter = meter_ids(i)[0]
        ep = evaluation_profile(f"ep-{i}", spec.get("taf", 7), meter, spec.get("registers", ("1-0:1.8.0",)),
                                period=spec.get("period", 86400))
        link = await connect(sim, stub, gid(i), sim_pki)
        await commission_deliveries(link, stub, sim_pki, meter, emt.endpoint(), [ep])

    await asyncio.gather(*(commission(i) for i in SETUP))
    return sim


def of(received: list[Delivery], i: int) -> list[Delivery]:
    return [d for d in received if d.gg("gateway") == gid(i)]


def day_buffer(received: list[Delivery], i: int) -> list[list[Any]]:
    (d,) = of(received, i)
    return d.profile(LOAD_PROFILE)[2]


async def test_data_faults_show_in_the_data(faulty: Simulator, emt: EmtStub) -> None:
    await value_faults(emt)
    await late_and_threshold(faulty, emt)


async def value_faults(emt: EmtStub) -> None:
    received = await emt.wait(lambda r: all(len(of(r, i)) >= 1 for i in (0, 1, 2, 3, 4)) and len(of(r, 5)) >= 2)
    k0 = int(midnight(YESTERDAY)) // INTERVAL_S
    ks = range(k0, k0 + len(day_buffer(received, 0)))

    model = MeterModel(meter_ids(0)[0])
    gaps = [e for e in day_buffer(received, 0) if e[1] is None]
    assert 5 <= len(gaps) <= 40 and all(e[2] & NO_VALUE for e in gaps)
    assert all(e[1] == model.import_wh(k) for e, k in zip(day_buffer(received, 0), ks, strict=True) if e[1] is not None)

    model = MeterModel(meter_ids(1)[0])
    jumps = [e[1] - model.import_wh(k) for e, k in zip(day_buffer(received, 1), ks, strict=True)]
    assert 1 <= sum(1 for j in jumps if j) <= 2 and {j for j in jumps if j} == {50_000}

    values = [e[1] for e in day_buffer(received, 2)]
    assert all(b >= a for a, b in itertools.pairwise(values))
    runs, run = [], 1
    for a, b in itertools.pairwise(values):
        run = run + 1 if a == b else 1
        runs.append(run)
    assert max(runs) >= 13  # 3 hours = 12 quarter hours without consumption: 13 equal register values
    flat_end = runs.index(max(runs)) + 1
    for e in day_buffer(received, 2)[flat_end - 11:flat_end + 1]:  # no import: active power only when feeding in
        assert not e[2] & ACTIVE_POWER or e[2] & EXPORT

    model = MeterModel(meter_ids(3)[0])
    k_reset = int(RESET_AT) // INTERVAL_S
    expected = [model.import_wh(k) if k < k_reset else 10 + model.import_wh(k) - model.import_wh(k_reset) for k in ks]
    assert [e[1] for e in day_buffer(received, 3)] == expected

    buffer = day_buffer(received, 4)
    assert [e[0] for e in buffer] == [iso(k * INTERVAL_S + 300) for k in ks]  # clock shifted by 5 minutes
    tamper_time = ((1 << 14) | (1 << 9)) << 32 | (1 << 10)
    assert all(e[2] & tamper_time == tamper_time for e in buffer)

    dups = of(received, 5)
    assert len(dups) == 2 and dups[0].payload == dups[1].payload and dups[0].cid != dups[1].cid


async def late_and_threshold(faulty: Simulator, emt: EmtStub) -> None:
    received = await emt.wait(lambda r: len(of(r, 6)) >= 20 and len(of(r, 7)) >= 2)
    starts = [parse_iso(d.profile(LOAD_PROFILE)[2][0][0]) for d in of(received, 6)]
    assert starts != sorted(starts) and len(set(starts)) == len(starts)  # late: out of order, none twice
    ordered = sorted(starts)
    assert all(b - a == 3600 for a, b in itertools.pairwise(ordered))  # none missing
    async with control(faulty) as api:
        held = (await api.get(f"/gateways/{gid(6)}")).json()["deliveries"]["ep-6"].get("held", [])
        assert (await api.delete(f"/gateways/{gid(6)}/faults/late")).json()["cleared"] is True
    if held:  # the period still held back goes when the fault is cleared
        await emt.wait(lambda r: len(of(r, 6)) >= len(starts) + len(held))

    threshold = [d for d in of(received, 7) if d.gg("reason") == "threshold"]
    (t,) = threshold
    (entry,) = t.profile(GRID_PROFILE)[2]
    assert entry[1] == 1950 and abs(parse_iso(entry[0]) - time.time()) < 30
    assert entry[-1] & ((1 << 16) << 32)  # SMGW_ValueTriggered
    periodic = [d for d in of(received, 7) if d.gg("reason") == "scheduled"]
    assert periodic and all(e[1] == 1950 for e in periodic[0].profile(GRID_PROFILE)[2])
    assert all(not e[-1] & ((1 << 16) << 32) for e in periodic[0].profile(GRID_PROFILE)[2])


async def test_fleet_shares_of_data_faults(make_sim: SimFactory) -> None:
    sim = await make_sim(gateways=20)
    async with control(sim) as api:
        r = (await api.put("/fleet/faults", json={"shares": {"gaps": 30, "duplicates": 10}})).json()
        assert r["shares"] == {"gaps": 30, "duplicates": 10} and 0 < r["affected"]["gaps"] < 20
        items = (await api.get("/gateways")).json()["items"]
        assert sum(1 for g in items if "gaps" in g["faults"]) == r["affected"]["gaps"]
        assert (await api.put("/fleet/faults", json={"shares": {"nonsense": 5}})).status_code == 404
        assert (await api.put(f"/gateways/{gid(0)}/faults/gaps", json={"param": 3})).status_code == 422
