"""Fixtures of the simulator tests: one test SM-PKI per session, a GWA head-end stand-in written
from docs/protocol.md (:mod:`tests.simulator.gwa_stub`), and simulators started in the test's event
loop on ephemeral ports with a state directory per test (restartable on the same directory)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.ids import demo_gateway_id
from pki import wakeup
from pki.testpki import TestPki, init_test_pki
from simulator.config import SimulatorSettings
from simulator.fleet import Fleet
from simulator.run import Simulator
from tests.simulator.gwa_stub import GwaStub, Link

SimFactory = Callable[..., Awaitable[Simulator]]


@pytest.fixture(scope="session")
def sim_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return init_test_pki(tmp_path_factory.mktemp("simpki") / "pki")


@pytest.fixture
async def stub(sim_pki: TestPki) -> AsyncIterator[GwaStub]:
    s = await GwaStub(sim_pki).start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
async def make_sim(sim_pki: TestPki, stub: GwaStub, tmp_path: Path) -> AsyncIterator[SimFactory]:
    """Start a simulator; ``make_sim(gateways=3, **settings)``. Stopped at the end of the test."""
    running: list[Simulator] = []

    async def make(gateways: int = 3, state: Path | None = None, **overrides: Any) -> Simulator:
        values: dict[str, Any] = {
            "gateways": gateways, "headend": f"127.0.0.1:{stub.port}", "inbound_port": stub.inbound_port,
            "pki_dir": sim_pki.directory, "state_dir": state or tmp_path / "sim", "udp_port": 0, "control_port": 0,
            "cyclic_contact_s": 0, "async_delay_s": 0.02, "restart_delay_s": 0.05, "connect_timeout_s": 5,
        }
        values.update(overrides)
        sim = Simulator(SimulatorSettings(**values))
        await sim.start()
        running.append(sim)
        return sim

    try:
        yield make
    finally:
        for sim in running:
            await sim.stop()


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim()


def gid(i: int) -> str:
    return demo_gateway_id(i)


def fleet(sim: Simulator) -> Fleet:
    """The fleet of a running simulator (the test fails when it has stopped)."""
    assert sim.fleet is not None, "the simulator is not running"
    return sim.fleet


def send_wakeup(sim: Simulator, gateway_id: str, pki: TestPki, *, timestamp: int | None = None,
                key: Any = None, port: int | None = None) -> bytes:
    """Send a wake-up datagram as the GWA would (signed with the GWA SIG key by default)."""
    packet = wakeup.build(gateway_id, key or pki.gwa.sig.key, timestamp=timestamp)
    send_raw(sim, packet, port=port)
    return packet


def send_raw(sim: Simulator, data: bytes, *, port: int | None = None) -> None:
    target = port or fleet(sim).wakeup_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, ("127.0.0.1", target))


def control(sim: Simulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.control_port}", timeout=10)


async def connect(sim: Simulator, stub: GwaStub, gateway_id: str, pki: TestPki, *, probe: bool = True,
                  timestamp: int | None = None) -> Link:
    """Wake a gateway and wait for its management connection."""
    send_wakeup(sim, gateway_id, pki, timestamp=timestamp)
    return await stub.wait_link(gateway_id, probe=probe)
