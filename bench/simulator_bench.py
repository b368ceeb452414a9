"""Simulator benchmark: start N simulated gateways as their own process (``gridgate simulate run``)
and report what the head-end benchmarks need to know about the other end of the wire.

Phases, each with the simulator's own CPU time (from its control API, so it is separate from this
process, which plays the head-end) and resident memory:

1. startup: spawn -> control API answers; the simulator's own startup time (state load/creation);
   RSS per gateway, idle (no connections), also as the difference to a 10-gateway fleet.
2. wake-up + connect: this process sends signed wake-ups (paced, ``--wakeup-rate`` per second)
   to the shared UDP socket; a minimal TLS sink (brainpoolP256r1, mutual auth) accepts and holds
   the management connections. Reports connections per second and RSS per connected gateway.
3. commands: ``read_device_info`` (GET, CMS-sealed answer) on ``--commands`` held connections;
   simulator CPU per command.

Usage: ``python bench/simulator_bench.py [--gateways 10000] [--pki var/bench/simulator-pki]``.
The test PKI is created once and kept (issuing 10,000 gateway triples takes about a minute on
2 cores); later runs reuse it. Results: docs/benchmarks.md, section "Simulator".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h11
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common.host import free_udp_port
from bench.common.testpki import ensure_pki
from core.ids import demo_gateway_id
from core.procs import free_port
from pki import tls, wakeup
from pki.testpki import TestPki


class Sink:
    """Accepts gateway TLS connections and holds them; can send one GET on each."""

    def __init__(self, pki: TestPki) -> None:
        gwa = pki.gwa
        self.ctx = tls.server_context(gwa.tls.cert_path, gwa.tls.key_path, [pki.root_path],
                                      intermediates=[pki.subca_path])
        self.conns: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        self.changed = asyncio.Event()
        self.port = 0

    async def start(self) -> None:
        server = await asyncio.start_server(self._on_conn, "127.0.0.1", 0, ssl=self.ctx, backlog=4096,
                                            ssl_handshake_timeout=60)
        self.port = server.sockets[0].getsockname()[1]
        self.server = server

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cert = tls.peer_certificate(writer.get_extra_info("ssl_object"))
        cn = cert.subject.rfc4514_string().split("CN=")[1].split(",")[0] if cert else "?"
        self.conns[cn.removesuffix(".SMGW")] = (reader, writer)
        self.changed.set()

    async def wait(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.conns) < n and time.monotonic() < deadline:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 1)

    async def get(self, gid: str, path: str) -> int:
        reader, writer = self.conns[gid]
        conn = h11.Connection(h11.CLIENT)
        ldev = f"{gid.lower()}.sm"
        writer.write(conn.send(h11.Request(method="GET", target=f"/cosem/ldevs/{ldev}/{path}",
                                           headers=[("Host", ldev), ("x-CID", "uuid:bench")]))
                     + conn.send(h11.EndOfMessage()))
        status = 0
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.EndOfMessage):
                return status


async def status(api: httpx.AsyncClient) -> dict[str, Any]:
    """The simulator's ``/status``."""
    return (await api.get("/status")).json()


async def start_simulator(n: int, pki: Path, state: Path, headend_port: int) -> tuple[
        asyncio.subprocess.Process, httpx.AsyncClient, int, float]:
    control_port, udp_port = free_port(), free_udp_port()
    env = {**os.environ, "GRIDGATE_SIMULATOR_CYCLIC_CONTACT_S": "0", "GRIDGATE_SIMULATOR_IDLE_TIMEOUT_S": "0",
           "GRIDGATE_LOG_LEVEL": "warning", "GRIDGATE_SIMULATOR_LOG_LEVEL": "warning"}
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gridgate", "simulate", "run", "--gateways", str(n), "--pki", str(pki),
        "--state", str(state), "--control-port", str(control_port), "--udp-port", str(udp_port),
        "--headend", f"127.0.0.1:{headend_port}", env=env, stdout=asyncio.subprocess.DEVNULL)
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{control_port}", timeout=120)
    while True:
        try:
            await status(api)
            break
        except httpx.HTTPError:
            if proc.returncode is not None:
                raise SystemExit(f"simulator exited with {proc.returncode}") from None
            await asyncio.sleep(0.2)
    return proc, api, udp_port, time.perf_counter() - t0


async def stop(proc: asyncio.subprocess.Process, api: httpx.AsyncClient) -> None:
    await api.aclose()
    proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.wait(), 120)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    n = args.gateways
    pki = ensure_pki(Path(args.pki), n)
    sink = Sink(pki)
    await sink.start()
    work = Path(tempfile.mkdtemp(prefix="simbench-"))
    out: dict[str, Any] = {"gateways": n}
    try:
        # baseline: a 10-gateway fleet
        proc, api, _, _ = await start_simulator(10, pki.directory, work / "small", sink.port)
        small = await status(api)
        await stop(proc, api)
        # phase 1: startup of N (first start creates the state; the second loads it)
        proc, api, _, spawn_s = await start_simulator(n, pki.directory, work / "state", sink.port)
        first = await status(api)
        await stop(proc, api)
        proc, api, udp_port, respawn_s = await start_simulator(n, pki.directory, work / "state", sink.port)
        idle = await status(api)
        out["startup"] = {"spawn_to_ready_s_first": round(spawn_s, 2), "fleet_start_s_first": first["startup_s"],
                          "spawn_to_ready_s_restart": round(respawn_s, 2), "fleet_start_s_restart": idle["startup_s"]}
        rss_idle = idle["process"]["rss_bytes"]
        out["idle"] = {"rss_mb": round(rss_idle / 2**20, 1), "rss_per_gateway_kb": round(rss_idle / n / 1024, 2),
                       "marginal_rss_per_gateway_kb": round((rss_idle - small["process"]["rss_bytes"])
                                                            / (n - 10) / 1024, 2),
                       "db_mb": round(idle["store"]["db_bytes"] / 2**20, 1)}
        # phase 2: wake everything up, paced, and hold all connections
        key = pki.gwa.sig.key
        cpu0 = idle["process"]["cpu_s"]
        t0 = time.perf_counter()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for i in range(n):
                udp.sendto(wakeup.build(demo_gateway_id(i), key), ("127.0.0.1", udp_port))
                if i % 100 == 99:
                    await asyncio.sleep(max(0.0, (i + 1) / args.wakeup_rate - (time.perf_counter() - t0)))
        send_s = time.perf_counter() - t0
        await sink.wait(n, timeout=max(120.0, n / 20))
        conn_s = time.perf_counter() - t0
        await asyncio.sleep(1)
        st = await status(api)
        connected = st["connected"]
        rss = st["process"]["rss_bytes"]
        out["connect"] = {"wakeups_sent_s": round(send_s, 2), "connected": connected,
                          "all_connected_after_s": round(conn_s, 2),
                          "connections_per_s": round(len(sink.conns) / conn_s, 1),
                          "sim_cpu_s": round(st["process"]["cpu_s"] - cpu0, 2),
                          "sim_cpu_ms_per_connection": round((st["process"]["cpu_s"] - cpu0) * 1000
                                                             / max(1, connected), 2),
                          "rss_mb": round(rss / 2**20, 1),
                          "rss_per_connected_gateway_kb": round((rss - rss_idle) / max(1, connected) / 1024, 1)}
        # phase 3: one read_device_info per held connection (up to --commands)
        ids = list(sink.conns)[: args.commands]
        cpu1 = st["process"]["cpu_s"]
        t1 = time.perf_counter()
        results = await asyncio.gather(*(sink.get(g, "objects/1-0000600100ff/attributes/2") for g in ids))
        cmd_s = time.perf_counter() - t1
        st2 = await status(api)
        out["commands"] = {"count": len(ids), "ok": sum(1 for r in results if r == 200),
                           "per_s": round(len(ids) / cmd_s, 1),
                           "sim_cpu_ms_per_command": round((st2["process"]["cpu_s"] - cpu1) * 1000 / max(1, len(ids)),
                                                           2)}
        await stop(proc, api)
    finally:
        for _, w in sink.conns.values():
            w.transport.abort()
        sink.server.close()
        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gateways", type=int, default=int(os.environ.get("SIMBENCH_GATEWAYS", "10000")))
    p.add_argument("--pki", default="var/bench/simulator-pki")
    p.add_argument("--wakeup-rate", type=float, default=1000.0, help="wake-ups per second")
    p.add_argument("--commands", type=int, default=1000)
    args = p.parse_args()
    try:
        import uvloop

        result = uvloop.run(bench(args))
    except ImportError:
        result = asyncio.run(bench(args))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
