"""Gateways that misbehave or cannot be reached: bad wake-ups are ignored by the gateway, a dropped
connection mid-command is a retryable error and the retry is not applied twice, offline gateways
are unreachable, refusals are final."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING

import pytest
from temporalio.exceptions import ApplicationError

from headend import contract as M
from pki import wakeup
from tests.headend.conftest import GATEWAYS, TENANT, UNKNOWN_GATEWAY, Acts, HeSim, HeTenant, meters_of

if TYPE_CHECKING:
    from headend.service import HeadendService


async def disconnect(headend: HeadendService, sim: HeSim, gid: str) -> None:
    conn = headend.node.registry.get(TENANT, gid)
    if conn is not None:
        conn.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rt = sim.fleet.gateways[gid]
        if headend.node.registry.get(TENANT, gid) is None and rt.management is None and not rt.connecting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{gid} still connected")


def send_udp(port: int, packet: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(packet, ("127.0.0.1", port))


async def test_gateway_ignores_bad_wakeups_and_answers_a_good_one(sim: HeSim, headend: HeadendService,
                                                                  he_tenant: HeTenant) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    gid = GATEWAYS[0]
    await disconnect(headend, sim, gid)
    state = sim.fleet.gateways[gid].state
    gwa_key = he_tenant.pki.gwa.sig.key
    before = dict(state.counters["wakeups_ignored"])
    unrouted = sim.fleet.unrouted_wakeups
    now = int(time.time())
    send_udp(he_tenant.udp_port, wakeup.build(gid, ec.generate_private_key(ec.BrainpoolP256R1()), timestamp=now))
    send_udp(he_tenant.udp_port, wakeup.build(gid, gwa_key, timestamp=now - 3600))  # stale
    send_udp(he_tenant.udp_port, wakeup.build(UNKNOWN_GATEWAY, gwa_key, timestamp=now))  # wrong recipient
    send_udp(he_tenant.udp_port, b"WU\x01garbage")
    await asyncio.sleep(1.0)
    ignored = state.counters["wakeups_ignored"]
    assert ignored.get("bad_signature", 0) == before.get("bad_signature", 0) + 1
    assert ignored.get("stale", 0) == before.get("stale", 0) + 1
    assert sim.fleet.unrouted_wakeups >= unrouted + 1
    assert headend.node.registry.get(TENANT, gid) is None

    good = wakeup.build(gid, gwa_key)
    send_udp(he_tenant.udp_port, good)
    assert await headend.node.registry.wait(TENANT, gid, 10) is not None
    await disconnect(headend, sim, gid)
    send_udp(he_tenant.udp_port, good)  # the same packet again: a replay
    await asyncio.sleep(1.0)
    assert state.counters["wakeups_ignored"].get("replay", 0) >= 1
    assert headend.node.registry.get(TENANT, gid) is None


async def test_connection_drop_mid_command_is_retryable_and_not_applied_twice(sim: HeSim, headend: HeadendService,
                                                                              acts: Acts) -> None:
    from simulator.faults import clear_fault, set_fault

    gid, meter = GATEWAYS[0], meters_of(0)[1]
    await acts("pair_meter", M.PairMeterInput(gateway_id=gid, command_id="fl-pair", meter_id=meter))
    counters = sim.fleet.gateways[gid].state.counters
    inp = M.WriteMeterProfileInput(gateway_id=gid, command_id="fl-mp", profile=M.MeterProfile(
        profile_id="mp-flaky", meter_id=meter, registers=(M.RegisterSpec(obis="1-0:1.8.0"),)))
    await set_fault(sim.fleet, gid, "flaky")
    try:
        applied = counters["applied"]
        with pytest.raises(ApplicationError) as err:
            await acts("write_meter_profile", inp)
        assert err.value.type == "connection_lost" and not err.value.non_retryable
        assert counters["applied"] == applied + 1  # the gateway did apply it before dropping
        retried = await acts("write_meter_profile", inp)  # what Temporal's retry does
        assert retried.status == "created"  # the stored answer of the first execution
        assert counters["applied"] == applied + 1
    finally:
        clear_fault(sim.fleet, gid, "flaky")


async def test_set_time_repeat_after_a_drop_is_not_applied_twice(sim: HeSim, headend: HeadendService,
                                                                  acts: Acts) -> None:
    """``set`` carries the head-end's time, so its repeat differs from the first attempt and the
    gateway refuses it as ``command_conflict``; the head-end then reads the clock, finds it set by
    the first attempt, and completes the step without a second setting."""
    from simulator.faults import clear_fault, set_fault

    gid = GATEWAYS[3]
    state = sim.fleet.gateways[gid].state
    state.set_clock(time.time() + 120.0)  # two minutes fast
    inp = M.SetTimeInput(gateway_id=gid, command_id="fl-time", mode="set")
    await set_fault(sim.fleet, gid, "flaky")
    try:
        applied = state.counters["applied_by_kind"].get("set_time", 0)
        repeated = None
        for _ in range(8):  # what the workflow's retries do (reads on connect may drop too)
            try:
                repeated = await acts("set_time", inp)
                break
            except ApplicationError as failed:
                assert failed.type == "connection_lost", failed
                await asyncio.sleep(0.01)  # a repeat's time differs from the earlier attempt's
        assert repeated is not None
        # Every first execution of a command ID is dropped: success came from the repeat.
        assert repeated.already_applied and repeated.sent_time is None
        assert abs(repeated.offset_after_ms) < 1000
        assert state.counters["applied_by_kind"].get("set_time", 0) == applied + 1
    finally:
        clear_fault(sim.fleet, gid, "flaky")
    # A clock still wrong under a used command ID stays a conflict (nothing is papered over).
    state.set_clock(time.time() + 120.0)
    with pytest.raises(ApplicationError) as err:
        await acts("set_time", inp)
    assert err.value.type == "command_conflict" and err.value.non_retryable


async def test_offline_gateway_is_unreachable(sim: HeSim, headend: HeadendService, acts: Acts) -> None:
    from simulator.faults import clear_fault, set_fault

    gid = GATEWAYS[4]
    await disconnect(headend, sim, gid)
    await set_fault(sim.fleet, gid, "offline")
    try:
        t0 = time.monotonic()
        with pytest.raises(ApplicationError) as err:
            await acts("ensure_gateway_connected", M.EnsureConnectedInput(gateway_id=gid, command_id="off-1",
                                                                          timeout_s=2.5))
        assert err.value.type == "unreachable" and not err.value.non_retryable
        assert time.monotonic() - t0 < 6
    finally:
        clear_fault(sim.fleet, gid, "offline")


async def test_rejected_and_missing_meter_are_final(sim: HeSim, headend: HeadendService, acts: Acts) -> None:
    from simulator.faults import clear_fault, set_fault

    gid = GATEWAYS[5]
    await set_fault(sim.fleet, gid, "reject")
    try:
        with pytest.raises(ApplicationError) as err:
            await acts("set_time", M.SetTimeInput(gateway_id=gid, command_id="rej-1"))
        assert err.value.type == "rejected" and err.value.non_retryable
    finally:
        clear_fault(sim.fleet, gid, "reject")
    meter = meters_of(5)[0]
    await set_fault(sim.fleet, gid, "missing_meter", meter)
    try:
        with pytest.raises(ApplicationError) as err:
            await acts("pair_meter", M.PairMeterInput(gateway_id=gid, command_id="mm-1", meter_id=meter))
        assert err.value.type == "meter_missing" and err.value.non_retryable
    finally:
        clear_fault(sim.fleet, gid, "missing_meter")


async def test_unknown_gateway_command_is_final(headend: HeadendService, acts: Acts) -> None:
    with pytest.raises(ApplicationError) as err:
        await acts("read_device_info", M.ReadDeviceInfoInput(gateway_id=UNKNOWN_GATEWAY, command_id="u-1"))
    assert err.value.type == "unknown_gateway" and err.value.non_retryable
