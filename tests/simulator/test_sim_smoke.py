"""Smoke: a valid wake-up makes the gateway connect and answer read_device_info."""

from __future__ import annotations

from pki.testpki import TestPki
from simulator.run import Simulator
from tests.simulator.conftest import connect, gid
from tests.simulator.gwa_stub import GwaStub, local


async def test_wakeup_connect_device_info(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    link = await connect(sim, stub, gid(0), sim_pki)
    reply = await link.request("GET", "objects/1-0000600100ff/attributes/2")
    assert reply.status == 200
    assert reply.root is not None and local(reply.root) == "deviceInfo"
    assert reply.root.get("gateway") == gid(0)
    assert reply.signer_cn == f"{gid(0)}.SMGW"
