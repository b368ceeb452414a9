"""Gateway state survives a simulator restart: profiles, paired meters, certificates, logbooks,
clock, counters and the command-ID table (a command repeated after the restart is answered, not
applied again); a Notify that was still running when the simulator stopped is delivered after it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pki.testpki import TestPki
from simulator.state import meter_ids
from tests.simulator.conftest import SimFactory, connect, control, fleet, gid
from tests.simulator.gwa_stub import GwaStub, child, child_of, xml
from tests.simulator.helpers import CLOCK, DEVICE_INFO, LMN, SYSTEM_LOG, commission, new_id, post

Q = "{urn:gridgate:gwa:1}"


async def test_state_and_command_table_survive_restart(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki,
                                                       tmp_path: Path) -> None:
    g, meter = gid(0), meter_ids(0)[0]
    state = tmp_path / "state"
    sim = await make_sim(state=state)
    link = await connect(sim, stub, g, sim_pki)
    await commission(link, stub, sim_pki, meter)
    cid = new_id("shift")
    shift = xml("clock", {"mode": "shift", "shiftMs": 42_000})
    assert (await link.request("PUT", CLOCK, shift, command_id=cid)).status == 204
    before = fleet(sim).gateways[g].state
    offset, applied = before.clock_offset(), dict(before.counters["applied_by_kind"])
    last_log = before.log_recno["system"]
    await sim.stop()
    stub.forget(g)

    sim = await make_sim(state=state)
    after = fleet(sim).gateways[g].state
    assert after.profiles["evaluation"][f"ep-taf7-{meter}"]["active"] is True
    assert after.meters[meter]["paired"] is True and "emt:emt1:enc" in after.certificates
    assert abs(after.clock_offset() - offset) < 0.5 and after.counters["applied_by_kind"] == applied
    link = await connect(sim, stub, g, sim_pki, timestamp=int(time.time()) + 1)
    assert (await link.request("PUT", CLOCK, shift, command_id=cid)).status == 204  # answered ...
    assert abs(after.clock_offset() - offset) < 0.5  # ... not applied twice
    assert after.counters["applied_by_kind"] == applied and after.counters["repeated"] == 1
    info = (await link.request("GET", DEVICE_INFO)).element
    assert info.findtext(Q + "state") == "operational"
    log = (await link.request("GET", SYSTEM_LOG)).element
    assert int(log.get("last", 0)) > last_log
    assert [int(e.get("record", 0)) for e in log.findall(Q + "entry")][:3] == [1, 2, 3]


async def test_running_command_completes_after_restart(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki,
                                                       tmp_path: Path) -> None:
    g, meter = gid(1), meter_ids(1)[0]
    state = tmp_path / "state"
    sim = await make_sim(state=state, async_delay_s=30)  # pairing "takes" 30 s: still running at the stop
    link = await connect(sim, stub, g, sim_pki)
    from simulator.meters import demo_mk0

    cid = new_id("pair")
    body = xml("pairMeter", {"meter": meter}, child("mk0", text=demo_mk0(meter).hex()))
    assert (await link.request("POST", LMN.format(1), body, command_id=cid)).status == 202
    await sim.stop()
    sim = await make_sim(state=state)  # fast again: the resumed job finishes and notifies
    notify = await stub.wait_notify(cid)
    assert child_of(notify, "meterPaired").get("status") == "paired"
    async with control(sim) as api:
        gw = (await api.get(f"/gateways/{g}")).json()
        assert gw["meters"][meter]["paired"] is True and gw["counters"]["applied_by_kind"] == {"pair_meter": 1}
        cmds = (await api.get(f"/gateways/{g}/commands")).json()
        assert [(c["command_id"], c["state"], c["status"]) for c in cmds] == [(cid, "completed", 200)]


async def test_meters_paired_applies_to_gateways_created_only(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki,
                                                             tmp_path: Path) -> None:
    """``--meters-paired`` (the demo fleet, in operation): new gateways start with their meters
    paired and say so on the LMN; an unpairing is kept across a restart with the same option."""
    g = gid(2)
    meters = meter_ids(2)
    plain = await make_sim(state=tmp_path / "plain")
    assert not any(m["paired"] for m in fleet(plain).gateways[g].state.meters.values())
    await plain.stop()
    state = tmp_path / "state"
    sim = await make_sim(state=state, meters_paired=True)
    assert all(m["paired"] for m in fleet(sim).gateways[g].state.meters.values())
    link = await connect(sim, stub, g, sim_pki)
    unpaired = await post(link, LMN.format(2), xml("unpairMeter", {"meter": meters[0]}))
    assert unpaired.element.get("existed") == "true"
    await sim.stop()
    stub.forget(g)
    sim = await make_sim(state=state, meters_paired=True)
    assert fleet(sim).gateways[g].state.meters[meters[0]]["paired"] is False


def test_a_new_process_can_resume_every_command_kind() -> None:
    """Running commands are resumed by kind as the fleet starts, before any connection: in a new
    simulator process the handlers of every command module must be registered by then."""
    code = ("import simulator.fleet; from simulator.commands import HANDLERS; "
            "print(*{name for name, _ in HANDLERS.values()})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert {"reboot", "pair_meter", "final_readout", "image_verify", "activate_firmware"} <= set(out.split())
