"""Readouts the GWA asks for (docs/protocol.md 10.9 ``trigger_readout``, 10.10 ``final_readout``):
the gateway delivers the evaluation profile's data to the EMT itself (section 14), with the reason
asked for, and answers the GWA only which deliveries it started (profile, reason, x-CID, time of
the values). The receiver is tests.simulator.emt_stub, written from the protocol text."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pki.testpki import TestPki
from simulator.meters import INTERVAL_S, MeterModel
from simulator.state import meter_ids
from simulator.xmlcodec import parse_time
from tests.simulator.conftest import SimFactory, connect, fleet, gid
from tests.simulator.emt_stub import EmtStub
from tests.simulator.gwa_stub import GwaStub, child_of, local, xml
from tests.simulator.helpers import EVAL_PROFILE, commission_deliveries, evaluation_profile, new_id, post

Q = "{urn:gridgate:gwa:1}"
FAST = {"delivery_tick_s": 0.02, "delivery_jitter_s": 0, "delivery_retry_first_s": 0.1,
        "delivery_retry_max_s": 0.4}
ENERGY = ("1-0:1.8.0", "1-0:2.8.0")
LOAD_PROFILE = "0100630100ff"


@pytest.fixture
async def emt(sim_pki: TestPki) -> AsyncIterator[EmtStub]:
    stub = await EmtStub(sim_pki).start()
    try:
        yield stub
    finally:
        await stub.stop()


async def test_readouts_are_delivered_to_the_emt_and_the_gwa_gets_the_delivery_reference(
        make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki, emt: EmtStub) -> None:
    meter, g = meter_ids(2)[0], gid(2)
    sim = await make_sim(gateways=3, **FAST)
    link = await connect(sim, stub, g, sim_pki)
    await commission_deliveries(link, stub, sim_pki, meter, emt.endpoint(), [
        evaluation_profile("ep6", 6, meter, ENERGY), evaluation_profile("ep7", 7, meter)])
    model = MeterModel(meter)

    # TAF 6 on demand, the profile found by recipient and meter
    out = await post(link, EVAL_PROFILE.format(4), xml("readoutRequest", {"recipient": "emt1", "meter": meter,
                                                                          "reason": "on_demand"}))
    assert out.status == 200 and local(out.element) == "readoutTriggered" and out.signer_cn == f"{g}.SMGW"
    ack = child_of(out.element, "delivery")
    received = await emt.wait(lambda r: any(d.cid == ack.get("cid") for d in r))
    (d6,) = [d for d in received if d.cid == ack.get("cid")]
    assert (d6.gg("profile"), d6.gg("taf"), d6.gg("reason"), d6.gg("gateway")) == ("ep6", "6", "on_demand", g)
    assert d6.signer_cn == f"{g}.SMGW" and d6.path == "/mdm/info-report"
    at = parse_time(ack.get("valuesAt", ""))
    k = int(at // INTERVAL_S)
    assert at == k * INTERVAL_S and abs(at - time.time()) < 2 * INTERVAL_S
    register = d6.object(4, "0100010800ff").attributes
    assert register[2] == model.import_wh(k) and parse_time(register[5]) == at
    assert d6.object(4, "0100020800ff").attributes[2] == model.export_wh(k)

    # TAF 7 first readout by profile: the current period so far, up to the time in the answer
    out = await post(link, EVAL_PROFILE.format(4), xml("readoutRequest", {"profile": "ep7", "reason": "first_readout"}))
    ack7 = child_of(out.element, "delivery")
    assert (ack7.get("taf"), ack7.get("reason"), ack7.get("meter")) == ("7", "first_readout", meter)
    received = await emt.wait(lambda r: any(d.cid == ack7.get("cid") for d in r))
    (d7,) = [d for d in received if d.cid == ack7.get("cid")]
    _capture, period, buffer = d7.profile(LOAD_PROFILE)
    assert d7.gg("reason") == "first_readout" and period == 900
    assert parse_time(buffer[0][0]) == parse_time(ack7.get("valuesFrom", ""))
    assert parse_time(buffer[-1][0]) == parse_time(ack7.get("valuesAt", ""))

    # final readout: one delivery per active profile, reason final, listed in the Notify
    cid = new_id("final")
    assert (await post(link, EVAL_PROFILE.format(5), xml("finalReadoutRequest", {"reason": "deinstallation"}),
                       cid)).status == 202
    notify = await stub.wait_notify(cid)
    acks = {a.get("profile"): a.get("cid") for a in child_of(notify, "finalReadout").findall(Q + "delivery")}
    assert set(acks) == {"ep6", "ep7"}
    received = await emt.wait(lambda r: set(acks.values()) <= {d.cid for d in r})
    assert {(d.gg("profile"), d.gg("reason")) for d in received if d.cid in acks.values()} == {
        ("ep6", "final"), ("ep7", "final")}
    counters = fleet(sim).gateways[g].state.counters["deliveries"]
    for _ in range(100):  # the gateway counts an answer once it has read it
        if counters.get("delivered") == 4:
            break
        await asyncio.sleep(0.02)
    assert counters["built"] == counters["delivered"] == 4


async def test_a_final_readout_interrupted_by_a_restart_delivers_once(
        make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki, emt: EmtStub, tmp_path: Path) -> None:
    """The simulator stops while the final readout runs (202 given, Notify not sent): after the
    restart the command runs again and each profile is delivered once."""
    meter, g, state = meter_ids(1)[0], gid(1), tmp_path / "state"
    sim = await make_sim(gateways=2, state=state, **{**FAST, "async_delay_s": 0.5})
    link = await connect(sim, stub, g, sim_pki)
    await commission_deliveries(link, stub, sim_pki, meter, emt.endpoint(), [evaluation_profile("ep6", 6, meter)])
    cid = new_id("final")
    assert (await post(link, EVAL_PROFILE.format(5), xml("finalReadoutRequest", {}), cid)).status == 202
    await sim.stop()
    assert emt.received == []
    stub.forget(g)
    await make_sim(gateways=2, state=state, **FAST)
    notify = await stub.wait_notify(cid)
    (ack,) = child_of(notify, "finalReadout").findall(Q + "delivery")
    received = await emt.wait(lambda r: len(r) >= 1)
    await asyncio.sleep(0.3)
    assert [d.cid for d in received] == [ack.get("cid")] and received[0].gg("reason") == "final"
