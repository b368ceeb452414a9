"""Crash safety: killing the worker and the head-end (SIGKILL, real processes) in the middle of a
mass process, then starting them again, completes the process with every gateway processed exactly
once, as counted by the simulated gateways themselves."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.ids import demo_gateway_id
from core.procs import free_port
from operations import processes
from pki.testpki import init_test_pki
from tests.fleet import provision
from tests.helpers import gridgate_bin

if TYPE_CHECKING:
    from core.config import Settings
    from core.db import Databases
    from core.temporal_clients import TemporalClients
    from tests.conftest import TenantFactory

SIZE = 8
QUEUE = "crash-test"


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDGATE_")}
    env.update(
        GRIDGATE_DATABASE_URL=settings.database_url or "", GRIDGATE_TEMPORAL_ADDRESS=settings.temporal_address,
        GRIDGATE_TEMPORAL_NAMESPACE_PREFIX=settings.temporal_namespace_prefix, GRIDGATE_VAR_DIR=str(settings.var_dir),
        GRIDGATE_MASTER_KEY=os.environ["GRIDGATE_MASTER_KEY"], GRIDGATE_SECRET_KEY=os.environ["GRIDGATE_SECRET_KEY"],
        GRIDGATE_LOG_LEVEL="warning", GRIDGATE_LOG_FORMAT="json", **extra)
    return env


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([gridgate_bin(), *args], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


async def _port_open(port: int, timeout: float = 60) -> None:
    for _ in range(int(timeout * 10)):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.mark.slow
async def test_kill_worker_and_headend_mid_process_every_gateway_exactly_once(
    settings: Settings, dbs: Databases, tenant_factory: TenantFactory, temporal_clients: TemporalClients,
    tmp_path_factory: pytest.TempPathFactory
) -> None:
    from simulator.config import SimulatorSettings
    from simulator.run import Simulator

    work = tmp_path_factory.mktemp("crash")
    ctx = await tenant_factory("crash")
    gateways = [demo_gateway_id(i) for i in range(SIZE)]
    pki = init_test_pki(work / "pki")
    pki.issue_gateways(gateway_ids=gateways)
    udp = free_port()
    await provision(settings, ctx, pki, SIZE, udp)

    he_port, he_inbound = free_port(), free_port()
    he_env = _env(settings, GRIDGATE_HEADEND_PORT=str(he_port), GRIDGATE_HEADEND_INBOUND_PORT=str(he_inbound),
                  GRIDGATE_HEADEND_NODE_ID="crashnode", GRIDGATE_HEADEND_METRICS_PORT="0",
                  GRIDGATE_HEADEND_DEFAULT_TENANT="crash", GRIDGATE_HEADEND_TENANT_POLL_S="0.5",
                  GRIDGATE_HEADEND_WAKEUP_RETRY_S="2", GRIDGATE_HEADEND_RESPONSE_TIMEOUT_S="5",
                  GRIDGATE_HEADEND_HISTORY_FLUSH_S="0.2", GRIDGATE_HEADEND_FIRMWARE_DIR=str(work / "fw"))
    worker_env = _env(settings, GRIDGATE_TEMPORAL_TASK_QUEUE=QUEUE, GRIDGATE_WORKER_TENANT_POLL_SECONDS="0.5")
    log = work / "processes.log"
    headend = _spawn(["headend"], he_env, log)
    worker = _spawn(["worker"], worker_env, log)
    await _port_open(he_port)

    sim = Simulator(SimulatorSettings(gateways=SIZE, headend=f"127.0.0.1:{he_port}", inbound_port=he_inbound,
                                      pki_dir=work / "pki", state_dir=work / "sim", udp_port=udp, control_port=0,
                                      sni="crash.gwa.gridgate.test", cyclic_contact_s=0, idle_timeout_s=0),
                    work, gateway_ids=gateways)
    await sim.start()
    try:
        client = await temporal_clients.for_namespace(ctx.namespace)
        from domain.processes import service

        process = await processes.start(
            ctx, client, QUEUE, "time_sync", service.Target(gateway_ids=gateways), {"correct_above_ms": 1},
            "crash test", processes.Initiator(username="test", ref="test"), service.StartOptions(concurrency=2),
            processes.LinkOptions(connect_timeout_s=20, attempts=6))

        async def counts() -> dict[str, int]:
            return (await processes.counts(ctx, process.id))[1]

        for _ in range(600):  # let some gateways finish, then pull the plug on both processes
            if (await counts()).get("succeeded", 0) >= 2:
                break
            await asyncio.sleep(0.1)
        for proc in (worker, headend):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        killed_at = await counts()
        if killed_at.get("failed"):
            from domain.processes import repository as repo

            async with ctx.sessions() as session:
                failed = (await session.scalars(repo.targets(process.id, state="failed"))).all()
            raise AssertionError([(t.gateway_id, t.error_type, t.error_message) for t in failed])
        assert killed_at.get("pending", 0) + killed_at.get("running", 0) > 0, "killed too late to prove anything"
        await asyncio.sleep(2)
        headend = _spawn(["headend"], he_env, log)
        worker = _spawn(["worker"], worker_env, log)

        final: dict[str, int] = {}
        for _ in range(2400):
            p, final = await processes.counts(ctx, process.id)
            if p.state in ("completed", "paused", "failed", "cancelled"):
                break
            await asyncio.sleep(0.25)
        assert p.state == "completed" and final.get("succeeded") == SIZE, (p.state, final, log.read_text()[-3000:])
        assert sim.fleet is not None  # started above
        for gid in gateways:
            applied = sim.fleet.gateways[gid].state.counters.get("applied_by_kind", {})
            assert applied.get("set_time") == 1, (gid, applied)  # set once, never twice
    finally:
        await sim.stop()
        for proc in (worker, headend):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
