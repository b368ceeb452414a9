"""The operator's commands: `gridgate simulate` prints help; `gridgate simulate run` runs a fleet
as its own process; `status` and `fault` talk to it; SIGTERM stops it cleanly. Also the
`gridgate up` hook (processes and banner)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx

from core.config import Settings
from core.procs import free_port
from pki.testpki import TestPki


async def gridgate(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gridgate", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_simulate_without_subcommand_prints_help() -> None:
    _code, out, err = await gridgate("simulate")
    assert "run" in out + err and "fault" in out + err and "status" in out + err
    assert "deliver" in out + err and "deliveries" in out + err


async def test_run_status_fault_stop(sim_pki: TestPki, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "GRIDGATE_VAR_DIR": str(tmp_path / "var"), "GRIDGATE_SIMULATOR_CYCLIC_CONTACT_S": "0",
           "GRIDGATE_SIMULATOR_HEADEND": f"127.0.0.1:{free_port()}"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gridgate", "simulate", "run", "--gateways", "4", "--pki", str(sim_pki.directory),
        "--control-port", str(port), "--udp-port", "0", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
            for _ in range(300):
                try:
                    if (await api.get("/status")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        code, out, _ = await gridgate("simulate", "status", "--control-port", str(port), env=env)
        status = json.loads(out)
        assert code == 0 and status["gateways"] == 4 and status["process"]["rss_bytes"] > 0
        code, out, _ = await gridgate("simulate", "fault", "EEMH0116900001", "slow", "--param", "2",
                                      "--control-port", str(port), env=env)
        assert code == 0 and json.loads(out)["param"] == 2.0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
            assert (await api.get("/gateways/EEMH0116900001")).json()["faults"]["slow"]["param"] == 2.0
        code, _, err = await gridgate("simulate", "fault", "EEMH0116900001", "bogus", "--off", "--control-port",
                                      str(port), env=env)
        assert code == 0  # clearing a fault that is not set is fine
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert (tmp_path / "var" / "simulator" / "fleet.db").exists()
    code, _, err = await gridgate("simulate", "status", "--control-port", str(port), env=env)
    assert code == 2 and "no simulator answers" in err


def test_supervisor_runs_the_fleet_of_the_demo_size() -> None:
    from gridgate import apps

    settings = Settings(demo_fleet_size=7)
    (app,) = [a for a in apps.default_apps(settings) if a.name == "simulator"]
    assert app.args[:4] == ["simulate", "run", "--gateways", "7"]
    assert app.ports[0][2] == "GRIDGATE_SIMULATOR_CONTROL_PORT"
    assert any("7 gateways" in value for name, value in apps.banner_rows(settings) if name == "Simulator")
