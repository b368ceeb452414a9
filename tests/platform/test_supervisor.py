"""`gridgate up` (what `make run` runs) starts every child, serves /readyz, and stops them all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from core.procs import free_port
from tests.helpers import gridgate_bin


def _env(var: Path, api_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDGATE_")}
    env.update(
        GRIDGATE_VAR_DIR=str(var),
        GRIDGATE_API_PORT=str(api_port),
        GRIDGATE_EMBEDDED_PG_PORT=str(free_port()),
        GRIDGATE_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        GRIDGATE_TEMPORAL_UI_PORT=str(free_port()),
        GRIDGATE_DEMO_FLEET_SIZE="3",
        GRIDGATE_LOG_FORMAT="json",
    )
    return env


def _start(var: Path, api_port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [gridgate_bin(), "up"],
        env=_env(var, api_port),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_ready(proc: subprocess.Popen[bytes], api_port: int, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"gridgate up exited early:\n{log.read_text()[-3000:]}"
        if "gridgate is up." in log.read_text():
            response = httpx.get(f"http://127.0.0.1:{api_port}/readyz", timeout=5)
            assert response.status_code == 200, response.text
            return
        time.sleep(0.3)
    raise AssertionError(f"not ready in time:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes], var: Path) -> dict[str, int]:
    pids = json.loads((var / "run" / "up.json").read_text())["pids"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    return pids


@pytest.mark.slow
def test_up_starts_everything_serves_ready_and_stops_cleanly_and_reuses_var(tmp_path: Path) -> None:
    var = tmp_path / "var"
    api_port = free_port()
    log = tmp_path / "first.log"
    proc = _start(var, api_port, log)
    try:
        _wait_ready(proc, api_port, log)
        first = log.read_text()
        assert "printed only this once" in first
        password = first.split("admin / ", 1)[1].split()[0]
        for label in ("API", "OpenAPI docs", "Temporal UI", "Demo tenant"):
            assert label in first
        token = httpx.post(
            f"http://127.0.0.1:{api_port}/api/v1/auth/token", data={"username": "admin", "password": password}
        ).json()["access_token"]
        tenants = httpx.get(
            f"http://127.0.0.1:{api_port}/api/v1/tenants", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert [t["name"] for t in tenants] == ["demo"]
    finally:
        pids = _stop(proc, var) if proc.poll() is None else {}
    assert set(pids) >= {"supervisor", "postgres", "temporal", "api", "worker"}
    time.sleep(0.5)
    alive = {
        name: pid
        for name, pid in pids.items()
        if pid and psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    }
    assert alive == {}, f"children still running after stop: {alive}"
    assert not (var / "run" / "up.json").exists()

    # Second start: same var, data survived, the password is not printed again.
    log2 = tmp_path / "second.log"
    proc = _start(var, api_port, log2)
    try:
        _wait_ready(proc, api_port, log2)
        second = log2.read_text()
        assert "printed only this once" not in second and password not in second
        token = httpx.post(
            f"http://127.0.0.1:{api_port}/api/v1/auth/token", data={"username": "admin", "password": password}
        ).json()["access_token"]
        assert (
            httpx.get(
                f"http://127.0.0.1:{api_port}/api/v1/tenants/demo", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 200
        )
    finally:
        if proc.poll() is None:
            _stop(proc, var)


def test_a_port_in_use_is_named_not_a_traceback(tmp_path: Path) -> None:
    api_port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", api_port))
        holder.listen()
        result = subprocess.run(
            [gridgate_bin(), "up"], env=_env(tmp_path / "var", api_port), capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 2
    assert f"port {api_port}" in result.stderr and "GRIDGATE_API_PORT" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
