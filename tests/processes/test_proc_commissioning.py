"""Commissioning (Inbetriebnahme) through the API against a head-end and simulated gateways."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from tests.fleet import GRID_OPERATOR, SUPPLIER, Fleet, melos_of, meters_of, run_process
from tests.processes.conftest import delivered

if TYPE_CHECKING:
    from core.temporal_clients import TemporalClients
    from tests.conftest import ApiUser
    from tests.simulator.emt_stub import EmtStub

T = "fleet"


async def order(api: httpx.AsyncClient, headers: dict[str, str], melo: str, taf: int, emt: str,
                params: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await api.post(f"/api/v1/tenants/{T}/taf-orders", headers=headers,
                       json={"metering_point": melo, "taf": taf, "emt": emt, "params": params or {}})
    assert r.status_code == 201, r.text
    return r.json()


async def test_commission_six_gateways_one_offline(api: httpx.AsyncClient, fleet: Fleet, fleet_operator: ApiUser,
                                                   emt_receivers: dict[str, EmtStub],
                                                   temporal_clients: TemporalClients) -> None:
    """Six installed gateways with a register profile for the supplier and a billing value for the
    grid operator; one of them is offline. Five end in operation with their meters paired, profiles
    written once each and a first readout the gateway delivered to each EMT itself; the offline one
    ends faulty with reason unreachable and received nothing."""
    h = fleet_operator.headers
    idx = fleet.take(6, where=lambda i: i % 4 != 0)
    gids = [fleet.gid(i) for i in idx]
    for i in idx:
        await order(api, h, melos_of(i)[0], 7, SUPPLIER)
        await order(api, h, melos_of(i)[0], 1, GRID_OPERATOR)
    await fleet.move_to(gids, "installed")
    offline = gids[-1]
    await fleet.fault(offline, "offline")

    done = await run_process(api, h, T, "commissioning", gids, {"first_readout": True},
                             options={"connect_timeout_s": 4, "attempts": 1, "concurrency": 6})
    assert done["state"] == "completed"
    assert (done["counts"]["succeeded"], done["counts"]["failed"]) == (5, 1), done["targets"]
    assert done["targets"][offline]["error_type"] == "unreachable"
    assert await fleet.gateway_db_state(offline) == "faulty"
    assert fleet.applied(offline) == {}

    for i, gid in zip(idx[:-1], gids[:-1], strict=True):
        assert await fleet.gateway_db_state(gid) == "in_operation"
        # every command exactly once: nothing was applied twice
        assert fleet.applied(gid) == {"install_certificates": 1, "set_time": 1, "pair_meter": 1,
                                      "write_meter_profile": 1, "write_communication_profile": 2,
                                      "write_evaluation_profile": 2, "trigger_readout": 2}, gid
        assert fleet.repeated(gid) == 0
        on_gateway = fleet.gateway_state(gid)
        assert all(m["paired"] for m in on_gateway.meters.values())
        assert len(on_gateway.profiles["evaluation"]) == 2 and on_gateway.device_state == "operational"
        history = (await api.get(f"/api/v1/tenants/{T}/gateways/{gid}/profiles", headers=h)).json()["items"]
        assert sorted((p["kind"], p["status"]) for p in history) == [
            ("communication", "active"), ("communication", "active"), ("evaluation", "active"),
            ("evaluation", "active"), ("meter", "active")]
        assert done["targets"][gid]["result"]["meters_paired"] == len(meters_of(i))

    # The first readouts: the gateway delivered each profile to its EMT (reason first_readout); the
    # process recorded the deliveries the gateway acknowledged, and no meter data.
    client = await temporal_clients.for_namespace(fleet.ctx.namespace)
    for i, gid in zip(idx[:-1], gids[:-1], strict=True):
        assert done["targets"][gid]["result"]["first_readouts"] == 2
        result = await client.get_workflow_handle(f"commissioning/{gid}/{done['id']}").result()
        acks = result["details"]["first_readout_deliveries"]
        assert sorted((a["taf"], a["recipient"], a["reason"]) for a in acks) == [
            (1, GRID_OPERATOR, "first_readout"), (7, SUPPLIER, "first_readout")]
        for a in acks:
            d = await delivered(emt_receivers[a["recipient"]], a["delivery_ref"])
            assert (d.gg("gateway"), d.gg("profile"), d.gg("reason")) == (gid, a["profile"], "first_readout")
            assert d.signer_cn == f"{gid}.SMGW" and a["meter"] == meters_of(i)[0]
    assert not any(d.gg("gateway") == offline for stub in emt_receivers.values() for d in stub.received)


async def test_incomplete_master_data_is_refused_and_nothing_is_sent(api: httpx.AsyncClient, fleet: Fleet,
                                                                     fleet_operator: ApiUser) -> None:
    """A meter that measures no metering point: commissioning refuses with the reason, the gateway
    stays installed and is never contacted."""
    h = fleet_operator.headers
    (i,) = fleet.take(1, where=lambda i: i % 4 != 0)
    gid, meter = fleet.gid(i), meters_of(i)[0]
    links = (await api.get(f"/api/v1/tenants/{T}/assignments/meter-metering-point?subject={meter}",
                           headers=h)).json()
    ended = await api.post(f"/api/v1/tenants/{T}/assignments/meter-metering-point/{links[0]['id']}/end", json={},
                           headers=h)
    assert ended.status_code == 200, ended.text
    await fleet.move_to([gid], "installed")

    done = await run_process(api, h, T, "commissioning", [gid])
    target = done["targets"][gid]
    assert target["state"] == "failed" and target["error_type"] == "master_data_incomplete"
    assert f"meter {meter} measures no metering point" in target["error_message"]
    assert await fleet.gateway_db_state(gid) == "installed"
    assert fleet.applied(gid) == {} and fleet.gateway_state(gid).counters["wakeups_accepted"] == 0


async def test_a_refused_step_leaves_the_gateway_faulty_and_removes_what_this_run_wrote(
    api: httpx.AsyncClient, fleet: Fleet, fleet_operator: ApiUser
) -> None:
    """The gateway refuses the evaluation profile: commissioning stops, deletes the meter profile it
    had created (no half-configured gateway), and leaves the gateway faulty with the reason."""
    h = fleet_operator.headers
    (i,) = fleet.take(1, where=lambda i: i % 4 != 0)
    gid = fleet.gid(i)
    await order(api, h, melos_of(i)[0], 7, SUPPLIER)
    await fleet.move_to([gid], "installed")
    await fleet.fault(gid, "reject", "write_evaluation_profile")

    done = await run_process(api, h, T, "commissioning", [gid])
    target = done["targets"][gid]
    assert target["error_type"] == "rejected"
    assert target["error_message"].startswith("write_evaluation_profile/")
    assert await fleet.gateway_db_state(gid) == "faulty"
    on_gateway = fleet.gateway_state(gid)
    assert on_gateway.profiles["meter"] == {} and on_gateway.profiles["evaluation"] == {}
    assert fleet.applied(gid)["delete_meter_profile"] == 1
    history = (await api.get(f"/api/v1/tenants/{T}/gateways/{gid}/profiles", headers=h)).json()["items"]
    assert history == []
    fleet.clear_fault(gid, "reject")


async def test_the_head_end_restarts_in_the_middle_and_every_gateway_is_commissioned_once(
    api: httpx.AsyncClient, fleet: Fleet, fleet_operator: ApiUser
) -> None:
    """Four gateways are being commissioned when the head-end node goes down and comes back. The
    process completes: all four in operation, no command applied twice on any gateway."""
    import asyncio

    from tests.fleet import start_headend, stop_headend, wait_process

    h = fleet_operator.headers
    idx = fleet.take(4, where=lambda i: i % 4 != 0)
    gids = [fleet.gid(i) for i in idx]
    for i in idx:
        await order(api, h, melos_of(i)[0], 7, SUPPLIER)
    await fleet.move_to(gids, "installed")
    started = await api.post(f"/api/v1/tenants/{T}/processes", headers=h, json={
        "type": "commissioning", "target": {"gateway_ids": gids}, "reason": "restart drill",
        "params": {"first_readout": True}, "options": {"concurrency": 2, "connect_timeout_s": 15, "attempts": 6}})
    assert started.status_code == 202, started.text
    for _ in range(200):  # until the first gateway is half-way through
        if any(fleet.applied(g).get("pair_meter") for g in gids):
            break
        await asyncio.sleep(0.05)
    unfinished = [g for g in gids if not fleet.applied(g).get("trigger_readout")]
    await stop_headend(fleet)
    assert unfinished, "the restart came too late to test anything"
    await asyncio.sleep(1)
    await start_headend(fleet)

    done = await wait_process(api, h, T, started.json()["id"], timeout=240)
    assert done["counts"]["succeeded"] == 4, done["targets"]
    for gid in gids:
        assert await fleet.gateway_db_state(gid) == "in_operation"
        assert fleet.applied(gid) == {"install_certificates": 1, "set_time": 1, "pair_meter": 1,
                                      "write_meter_profile": 1, "write_communication_profile": 1,
                                      "write_evaluation_profile": 1, "trigger_readout": 1}, gid


async def test_a_cancelled_commissioning_removes_what_it_wrote_and_leaves_the_gateway_installed(
    api: httpx.AsyncClient, fleet: Fleet, fleet_operator: ApiUser
) -> None:
    import asyncio

    from tests.fleet import wait_process

    h = fleet_operator.headers
    (i,) = fleet.take(1, where=lambda i: i % 4 != 0)
    gid = fleet.gid(i)
    await order(api, h, melos_of(i)[0], 7, SUPPLIER)
    await fleet.move_to([gid], "installed")
    await fleet.fault(gid, "slow", 2.0)
    try:
        started = await api.post(f"/api/v1/tenants/{T}/processes", headers=h, json={
            "type": "commissioning", "target": {"gateway_ids": [gid]}, "reason": "cancel drill"})
        assert started.status_code == 202, started.text
        for _ in range(600):
            if fleet.applied(gid).get("write_meter_profile"):
                break
            await asyncio.sleep(0.05)
        cancelled = await api.post(f"/api/v1/tenants/{T}/processes/{started.json()['id']}/cancel", headers=h)
        assert cancelled.status_code == 202
        done = await wait_process(api, h, T, started.json()["id"], timeout=120)
    finally:
        fleet.clear_fault(gid, "slow")
    assert done["state"] == "cancelled" and done["targets"][gid]["state"] == "cancelled", str(done["targets"][gid])
    assert await fleet.gateway_db_state(gid) == "installed"
    on_gateway = fleet.gateway_state(gid)
    assert on_gateway.profiles["meter"] == {} and on_gateway.profiles["evaluation"] == {}
    assert fleet.applied(gid).get("delete_meter_profile") == 1
