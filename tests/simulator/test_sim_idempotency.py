"""Exactly once (docs/protocol.md section 6): a repeated command ID is answered from the stored
outcome and not applied again; the same ID with another request is a conflict; a connection drop
mid-command (fault ``flaky``) followed by the retry applies the command once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pki.testpki import TestPki
from simulator.run import Simulator
from simulator.state import meter_ids
from tests.simulator.conftest import SimFactory, connect, control, fleet, gid
from tests.simulator.gwa_stub import GwaStub, child, child_of, xml
from tests.simulator.helpers import CERTS_INSTALL, CLOCK, LMN, emt_certificates, new_id, post

Q = "{urn:gridgate:gwa:1}"


def applied(sim: Simulator, g: str) -> dict[str, Any]:
    return fleet(sim).gateways[g].state.counters


async def test_repeated_command_id_is_answered_not_applied(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g = gid(0)
    link = await connect(sim, stub, g, sim_pki)
    shift = xml("clock", {"mode": "shift", "shiftMs": 60_000})
    before = fleet(sim).gateways[g].state.clock_offset()
    cid = new_id("shift")
    first = await link.request("PUT", CLOCK, shift, command_id=cid)
    second = await link.request("PUT", CLOCK, shift, command_id=cid)
    assert first.status == second.status == 204
    after = fleet(sim).gateways[g].state.clock_offset()
    assert 59 < after - before < 61  # one minute, not two
    c = applied(sim, g)
    assert c["applied_by_kind"] == {"set_time": 1} and c["repeated"] == 1
    # the stored outcome of a command with a body is replayed, re-sealed
    cid2 = new_id("certs")
    a = await post(link, CERTS_INSTALL, emt_certificates(sim_pki), cid2)
    b = await post(link, CERTS_INSTALL, emt_certificates(sim_pki), cid2)
    assert [c.get("status") for c in a.element.findall(Q + "certificate")] == \
        [c.get("status") for c in b.element.findall(Q + "certificate")] == ["installed"] * 3
    conflict = await link.request("PUT", CLOCK, xml("clock", {"mode": "shift", "shiftMs": 1}), command_id=cid)
    assert (conflict.status, conflict.reason) == (409, "command_conflict")


async def test_repeat_of_running_command_gets_202_and_one_notify(sim: Simulator, stub: GwaStub,
                                                                 sim_pki: TestPki) -> None:
    g = gid(0)
    meter = meter_ids(0)[0]
    link = await connect(sim, stub, g, sim_pki)
    from simulator.meters import demo_mk0

    body = xml("pairMeter", {"meter": meter}, child("mk0", text=demo_mk0(meter).hex()))
    cid = new_id("pair")
    assert (await post(link, LMN.format(1), body, cid)).status == 202
    assert (await post(link, LMN.format(1), body, cid)).status in (200, 202)  # running or already done
    notify = await stub.wait_notify(cid)
    assert notify.get("status") == "200" and child_of(notify, "meterPaired").get("status") == "paired"
    again = await post(link, LMN.format(1), body, cid)  # completed: the stored answer, synchronously
    assert again.status == 200 and again.element.get("status") == "paired"
    assert applied(sim, g)["applied_by_kind"] == {"pair_meter": 1}


async def test_connection_drop_mid_command_then_retry_applies_once(sim: Simulator, stub: GwaStub,
                                                                    sim_pki: TestPki) -> None:
    g = gid(1)
    async with control(sim) as api:
        assert (await api.put(f"/gateways/{g}/faults/flaky")).json()["param"] == 1.0
    now = int(time.time())
    link = await connect(sim, stub, g, sim_pki, probe=False, timestamp=now)
    cid = new_id("shift")
    shift = xml("clock", {"mode": "shift", "shiftMs": 30_000})
    with pytest.raises(ConnectionError):
        await link.request("PUT", CLOCK, shift, command_id=cid)
    stub.forget(g)
    link2 = await connect(sim, stub, g, sim_pki, probe=False, timestamp=now + 1)
    retry = await link2.request("PUT", CLOCK, shift, command_id=cid)
    assert retry.status == 204
    c = applied(sim, g)
    assert c["applied_by_kind"] == {"set_time": 1} and c["repeated"] == 1 and c["dropped"] >= 1


async def test_fleet_flaky_share_still_applies_exactly_once(make_sim: SimFactory, stub: GwaStub,
                                                            sim_pki: TestPki) -> None:
    """The operator's story: 6 gateways, half of them flaky; every command is retried until it
    is answered; each gateway applied it exactly once."""
    sim = await make_sim(gateways=6, flaky_pct=50)
    running = fleet(sim)
    flaky = {g for g, rt in running.gateways.items() if running.faults.in_force(rt.state, "flaky")}
    assert 0 < len(flaky) < 6
    ts = int(time.time())
    for i in range(6):
        g = gid(i)
        cid = new_id(f"roll-{g}")
        for attempt in range(3):
            link = await connect(sim, stub, g, sim_pki, probe=False, timestamp=ts + attempt)
            try:
                r = await link.request("PUT", CLOCK, xml("clock", {"mode": "shift", "shiftMs": 10}), command_id=cid)
            except ConnectionError:
                stub.forget(g)
                continue
            assert r.status == 204
            break
        else:
            raise AssertionError(f"{g} never answered")
    async with control(sim) as api:
        counters = (await api.get("/counters")).json()
    assert all(counters[gid(i)]["applied_by_kind"] == {"set_time": 1} for i in range(6))
    assert {g for g in counters if counters[g]["repeated"]} == flaky
