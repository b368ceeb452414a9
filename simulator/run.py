"""Start and stop a simulated fleet: :class:`Simulator` (in-process, used by the CLI, tests and
the benchmark) and :func:`main` (the ``gridgate simulate run`` process, uvloop when available)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from core.ids import demo_gateway_id
from simulator.config import SimulatorSettings
from simulator.control import ControlApi
from simulator.credentials import ensure_pki
from simulator.fleet import Fleet

log = structlog.get_logger("simulator")


@dataclass
class StartupReport:
    gateways: int
    created: int
    issued_credentials: int
    seconds: float


class Simulator:
    """A fleet plus its control API in the running event loop."""

    def __init__(self, settings: SimulatorSettings, var_dir: Path = Path("./var"),
                 gateway_ids: list[str] | None = None) -> None:
        self.settings = settings
        self.pki_dir = settings.resolved_pki_dir(var_dir)
        self.state_dir = settings.resolved_state_dir(var_dir)
        self.gateway_ids = gateway_ids or [demo_gateway_id(settings.first_index + i) for i in range(settings.gateways)]
        self.fleet: Fleet | None = None
        self.control: ControlApi | None = None
        self.control_port: int | None = None
        self.report: StartupReport | None = None

    async def start(self) -> StartupReport:
        t0 = time.perf_counter()
        await asyncio.to_thread(ensure_pki, self.pki_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fleet = Fleet(self.settings, self.pki_dir, self.state_dir)
        missing = await asyncio.to_thread(fleet.creds.ensure_gateways, self.gateway_ids)
        created = fleet.load(self.gateway_ids)
        await fleet.start()
        self.fleet = fleet
        self.control = ControlApi(fleet)
        self.control_port = await self.control.start(self.settings.control_host, self.settings.control_port)
        self.report = StartupReport(len(self.gateway_ids), len(created), len(missing), time.perf_counter() - t0)
        fleet.startup_s = round(self.report.seconds, 3)
        log.info("simulator.started", gateways=len(self.gateway_ids), created=len(created),
                 issued=len(missing), seconds=round(self.report.seconds, 2), wakeup_port=fleet.wakeup_port,
                 control_port=self.control_port, headend=self.settings.headend)
        return self.report

    async def stop(self) -> None:
        control, fleet = self.control, self.fleet
        self.control = self.fleet = None
        if control is not None:
            await control.stop()
        if fleet is not None:
            await fleet.stop()
            log.info("simulator.stopped")


async def serve(settings: SimulatorSettings, var_dir: Path) -> None:
    sim = Simulator(settings, var_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await sim.start()
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(settings: SimulatorSettings, var_dir: Path) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(serve(settings, var_dir))
        return
    uvloop.run(serve(settings, var_dir))
