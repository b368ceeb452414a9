"""Smoke: a woken gateway connects and answers device info."""

from __future__ import annotations

from headend import contract as M
from tests.headend.conftest import GATEWAYS, Acts, HeSim


async def test_wakeup_connect_device_info(sim: HeSim, acts: Acts) -> None:
    gid = GATEWAYS[0]
    res = await acts("ensure_gateway_connected", M.EnsureConnectedInput(gateway_id=gid, command_id="t-smoke"))
    assert res.node_id == "n1"
    info = await acts("read_device_info", M.ReadDeviceInfoInput(gateway_id=gid, command_id="t-smoke-info"))
    assert info.gateway_id == gid
    assert info.active_firmware
