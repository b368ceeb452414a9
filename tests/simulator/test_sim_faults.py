"""Faults behave as documented: slow, reject, missing meter (NoValue + alarm + readout refused),
tamper alarm, clock drift, revoked and foreign certificates, fleet-level offline share, events
delivered to the head-end's event URI and retried when it refuses with 5xx."""

from __future__ import annotations

import time

from pki.testpki import TestPki
from simulator.meters import SMGW_METER_TAMPER, SMGW_NO_VALUE
from simulator.run import Simulator
from simulator.state import meter_ids
from tests.simulator.conftest import SimFactory, connect, control, fleet, gid, send_wakeup
from tests.simulator.gwa_stub import GwaStub, child_of, local, xml
from tests.simulator.helpers import CLOCK, EVAL_PROFILE, commission, new_id, post

Q = "{urn:gridgate:gwa:1}"


async def test_slow_and_reject(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g = gid(0)
    async with control(sim) as api:
        assert (await api.put(f"/gateways/{g}/faults/slow", json={"param": 0.05})).json()["param"] == 0.05
        assert (await api.put(f"/gateways/{g}/faults/reject", json={"param": "set_time"})).status_code == 200
        link = await connect(sim, stub, g, sim_pki)
        assert (await link.request("GET", CLOCK)).status == 200  # slow, but answers
        r = await link.request("PUT", CLOCK, xml("clock", {"mode": "shift", "shiftMs": 1}), command_id=new_id())
        assert (r.status, r.reason) == (403, "rejected")
        assert (await api.get(f"/gateways/{g}")).json()["counters"]["applied"] == 0
        assert (await api.put(f"/gateways/{g}/faults/nonsense")).status_code == 404


async def test_missing_meter_and_tamper(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g, meter = gid(0), meter_ids(0)[0]
    link = await connect(sim, stub, g, sim_pki)
    await commission(link, stub, sim_pki, meter)
    async with control(sim) as api:
        assert (await api.put(f"/gateways/{g}/faults/missing_meter")).json()["param"] == meter
        event = await stub.wait_inbound(lambda i: i.path == "/gwa/events")
        ev = event.root.find(Q + "event")
        assert event.root.get("gateway") == g and ev is not None
        assert (ev.get("code"), ev.get("meter"), ev.get("level")) == ("meter_missing", meter, "3")
        assert ev.get("record") and ev.get("log") == "system" and event.signer_cn == f"{g}.SMGW"
        readout = xml("readoutRequest", {"profile": f"ep-taf7-{meter}", "reason": "on_demand"})
        delivered = len(fleet(sim).store.deliveries(g))
        r = await post(link, EVAL_PROFILE.format(4), readout)
        assert (r.status, r.reason) == (409, "meter_missing")
        assert len(fleet(sim).store.deliveries(g)) == delivered  # nothing started
        values = (await api.get(f"/gateways/{g}/meters/{meter}/readings",
                                params={"from": str(time.time() - 1800), "to": str(time.time() + 1800)})).json()
        assert int(values["readings"][-1]["status"], 16) & (SMGW_NO_VALUE << 32)
        await api.delete(f"/gateways/{g}/faults/missing_meter")
        assert (await post(link, EVAL_PROFILE.format(4), readout)).status == 200
        await api.put(f"/gateways/{g}/faults/tamper_alarm")
        tamper = await stub.wait_inbound(lambda i: i.path == "/gwa/events" and
                                         child_of(i.root, "event").get("code") == "meter_tamper")
        assert child_of(tamper.root, "event").get("meter") == meter
        values = (await api.get(f"/gateways/{g}/meters/{meter}/readings",
                                params={"from": str(time.time() - 900), "to": str(time.time() + 1800)})).json()
        assert int(values["readings"][-1]["status"], 16) & (SMGW_METER_TAMPER << 32)
        cal = (await api.get(f"/gateways/{g}/logs/calibration")).json()
        assert any("terminal cover" in e["text"] for e in cal)


async def test_clock_drift_beyond_limits(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g = gid(1)
    async with control(sim) as api:
        await api.put(f"/gateways/{g}/faults/clock_drift", json={"param": 120})
    link = await connect(sim, stub, g, sim_pki)  # 120 s: still inside the wake-up window
    clock = (await link.request("GET", CLOCK)).element
    assert clock.get("valid") == "false"
    event = await stub.wait_inbound(lambda i: i.path == "/gwa/events")
    assert child_of(event.root, "event").get("code") == "time_invalid"
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    assert (await link.request("PUT", CLOCK, xml("clock", {"time": now, "mode": "set"}),
                               command_id=new_id())).status == 204
    assert (await link.request("GET", CLOCK)).element.get("valid") == "true"


async def test_revoked_and_foreign_certificates(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    async with control(sim) as api:
        await api.put(f"/gateways/{gid(0)}/faults/revoked_certificate")
        await api.put(f"/gateways/{gid(1)}/faults/foreign_certificate")
    send_wakeup(sim, gid(0), sim_pki)
    send_wakeup(sim, gid(1), sim_pki)
    send_wakeup(sim, gid(2), sim_pki)
    await stub.wait_link(gid(2))
    for _ in range(100):  # the refused handshakes complete around the same time
        if stub.refused and fleet(sim).gateways[gid(1)].state.counters["contact_failures"]:
            break
        await __import__("asyncio").sleep(0.05)
    assert [r for r in stub.refused if r[0] == f"{gid(0)}.SMGW" and "revoked" in r[1]]
    assert gid(0) not in stub.links and gid(1) not in stub.links
    assert fleet(sim).gateways[gid(1)].state.counters["contact_failures"] == 1


async def test_fleet_offline_share_and_event_retry(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki) -> None:
    sim = await make_sim(gateways=10)
    async with control(sim) as api:
        summary = (await api.put("/fleet/faults", json={"offline_pct": 30})).json()
        assert 0 < summary["offline"] < 10
        offline = {g["id"] for g in (await api.get("/gateways")).json()["items"] if "offline" in g["faults"]}
        assert len(offline) == summary["offline"]
        again = {g["id"] for g in (await api.get("/gateways")).json()["items"] if "offline" in g["faults"]}
        assert again == offline  # deterministic selection
        online = next(gid(i) for i in range(10) if gid(i) not in offline)
        stub.inbound_status = 503
        await api.post(f"/gateways/{online}/events", json={"code": "power_failure", "level": 3})
        first = await stub.wait_inbound(lambda i: i.path == "/gwa/events")
        assert local(first.root) == "events"
        assert (await api.get(f"/gateways/{online}")).json()["outbox"] == 1  # refused with 5xx: kept
        stub.inbound_status = 204
        status = (await api.get("/status")).json()
        assert status["gateways"] == 10 and status["process"]["rss_bytes"] > 0 and status["process"]["cpu_s"] > 0
