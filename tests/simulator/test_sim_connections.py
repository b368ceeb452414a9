"""Connections the gateway opens on its own and how it treats a misbehaving head-end: cyclic
contact, contact on request, idle timeout, x-CID echo, HTTP that does not parse, an oversize body,
a Notify the head-end does not know (404 unknown_cid: not retried)."""

from __future__ import annotations

import asyncio
import time

from pki.testpki import TestPki
from simulator.meters import demo_mk0
from simulator.run import Simulator
from simulator.state import meter_ids
from tests.simulator.conftest import SimFactory, connect, control, fleet, gid
from tests.simulator.gwa_stub import GwaStub, child, xml
from tests.simulator.helpers import CLOCK, LMN, new_id, post


async def test_cyclic_contact_without_wakeup(make_sim: SimFactory, stub: GwaStub) -> None:
    sim = await make_sim(gateways=2, cyclic_contact_s=1)
    for i in range(2):
        await stub.wait_link(gid(i))
        assert fleet(sim).gateways[gid(i)].state.counters["contacts"] == {"cyclic": 1}


async def test_contact_on_request_and_idle_timeout(make_sim: SimFactory, stub: GwaStub) -> None:
    sim = await make_sim(idle_timeout_s=0.3)
    async with control(sim) as api:
        assert (await api.post(f"/gateways/{gid(2)}/contact")).json()["started"] is True
    link = await stub.wait_link(gid(2))
    reply = await link.request("GET", CLOCK)
    assert reply.headers.get("x-cid", "").startswith("uuid:")
    assert await asyncio.wait_for(link.reader.read(), 10) == b""  # idle: the gateway closes


async def test_garbage_and_oversize_requests_close_the_connection(make_sim: SimFactory, stub: GwaStub,
                                                                   sim_pki: TestPki) -> None:
    sim = await make_sim(max_body_bytes=2048)
    link = await connect(sim, stub, gid(0), sim_pki)
    link.writer.write(b"THIS IS NOT HTTP\r\n\r\n")
    data = await asyncio.wait_for(link.reader.read(), 10)
    assert data.startswith(b"HTTP/1.1 400")
    stub.forget(gid(0))
    link = await connect(sim, stub, gid(0), sim_pki, timestamp=int(time.time()) + 1)
    r = await link.request("POST", LMN.format(1), raw_body=b"x" * 4096, command_id=new_id())
    assert r.status == 413
    assert fleet(sim).gateways[gid(0)].state.counters["applied"] == 0


async def test_notify_for_unknown_cid_is_not_retried(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g, meter = gid(1), meter_ids(1)[0]
    stub.inbound_status = 404
    link = await connect(sim, stub, g, sim_pki)
    cid = new_id("pair")
    body = xml("pairMeter", {"meter": meter}, child("mk0", text=demo_mk0(meter).hex()))
    assert (await post(link, LMN.format(1), body, cid)).status == 202
    await stub.wait_notify(cid)
    rt = fleet(sim).gateways[g]
    for _ in range(100):
        if not rt.outbox:
            break
        await asyncio.sleep(0.05)
    assert rt.outbox == [] and rt.state.counters["notifies_sent"] == 0
    # the head-end recovers the result by repeating the command: answered from the record
    again = await post(link, LMN.format(1), body, cid)
    assert again.status == 200 and again.element.get("status") == "paired"
