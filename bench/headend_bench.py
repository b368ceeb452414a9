"""Head-end benchmark (results: docs/benchmarks.md, ## Head-end).

Three processes on this machine: the bench driver (embedded PostgreSQL, a tenant database with N
gateways, the test PKI), the head-end node (``HeadendNode``, no Temporal: commands are called the
way the activities call them), and the simulator (``simulator.run.Simulator``) as the fleet.

1. Latency: ``--burst`` gateways (default 1,000) are woken at once under the configured throttle;
   per gateway the time from the request to the connection and to the device-info answer;
   head-end and simulator CPU reported separately.
2. Idle sessions: the rest of the fleet (``--gateways``, default 10,000) is woken the same way and
   stays connected; resident memory of the head-end per session.
3. Handshakes: head-end CPU seconds per admitted connection (TLS 1.2 mutual authentication on
   brainpoolP256r1 + SM-PKI validation + admission) against what ``openssl speed`` says the
   brainpool operations of one handshake cost on one core.
4. Reconnect: the head-end drops every session and the gateways connect again on their own (no
   wake-up): handshakes per head-end CPU-second with validation memoised for known certificates.
5. Reference: ``openssl s_server`` / ``openssl s_time`` with the same certificates and parameters,
   handshakes per CPU-second of the OpenSSL server (no Python at all).

Usage: ``python bench/headend_bench.py [--gateways 10000] [--burst 1000] [--json out.json]``.
The test PKI is kept under ``var/bench/headend-pki`` (issuing 10,000 triples takes a while once).
Loopback only; every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TENANT = "bench"
SNI = f"{TENANT}.gwa.gridgate.test"


from bench.common.host import raise_nofile  # noqa: E402
from bench.common.openssl import brainpool_speed  # noqa: E402
from bench.common.testpki import ensure_pki, gateway_ids  # noqa: E402


# --------------------------------------------------------------------------- head-end process
def headend_main(db_url: str, pki_dir: str, keys_dir: str, port_q: Any, cmd: Any, settings_kw: dict[str, Any]) -> None:
    raise_nofile()
    from core.procs import pin_mmap_threshold

    pin_mmap_threshold()  # as headend.service.main does
    import uvloop

    if os.environ.get("HE_BENCH_PROFILE"):  # cProfile of the head-end process, written at stop
        import cProfile

        prof = cProfile.Profile(time.process_time)
        prof.enable()
        try:
            uvloop.run(_headend(db_url, pki_dir, keys_dir, port_q, cmd, settings_kw))
        finally:
            prof.disable()
            prof.dump_stats(os.environ["HE_BENCH_PROFILE"])
        return
    uvloop.run(_headend(db_url, pki_dir, keys_dir, port_q, cmd, settings_kw))


async def _headend(db_url: str, pki_dir: str, keys_dir: str, port_q: Any, cmd: Any,
                   settings_kw: dict[str, Any]) -> None:
    import gc

    import psutil
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from core.logging import configure_logging
    from domain.certificates import service as cert_service
    from domain.tenancy.service import TenantContext
    from headend import commands as C
    from headend import contract as M
    from headend.client import AdminClient
    from headend.config import HeadendSettings
    from headend.identity import TestPkiIdentitySource
    from headend.node import HeadendNode
    from headend.tenants import build_endpoint
    from pki.profile import crl_urls
    from pki.testpki import TestPki

    configure_logging("warning", "console")
    engine = create_async_engine(db_url, pool_size=20, max_overflow=20)
    ctx = TenantContext(id=1, name=TENANT, db_name="bench", namespace="-", keys_dir=Path(keys_dir),
                        sessions=async_sessionmaker(engine, expire_on_commit=False))
    pki = TestPki(pki_dir)
    cache = cert_service.crl_cache(ctx)
    for ca_name, cert in (("root", pki.subca), ("subca", pki.gwa.tls.cert)):
        from cryptography import x509

        crl = x509.load_der_x509_crl(pki.crl_path(ca_name).read_bytes())
        for url in crl_urls(cert):
            cache.put(url, crl)
    hs = HeadendSettings(host="127.0.0.1", port=0, inbound_port=0, metrics_port=0, node_id="bench",
                         history_flush_s=0.5, idle_timeout_s=0, **settings_kw)
    node = HeadendNode(hs)
    node.add_endpoint(await build_endpoint(ctx, TestPkiIdentitySource(Path(pki_dir)), "bench"))
    port, inbound = await node.start_servers()
    stop = asyncio.Event()
    store_task = asyncio.create_task(node.store.run(stop))
    proc = psutil.Process()
    port_q.put((port, inbound))
    loop = asyncio.get_running_loop()

    async def one(gid: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            conn, _ = await node.connection(TENANT, gid, priority=M.PRIORITY_PROCESS, timeout=120)
            t1 = time.perf_counter()
            await C.read_device_info(AdminClient(node, conn), M.ReadDeviceInfoInput(gateway_id=gid, command_id="b"))
            return {"ok": True, "connect": t1 - t0, "total": time.perf_counter() - t0}
        except Exception as err:  # counted, not fatal
            return {"ok": False, "error": type(err).__name__, "total": time.perf_counter() - t0}

    while True:
        op, arg = await loop.run_in_executor(None, cmd.recv)
        if op in ("stats", "peek"):
            if op == "stats":
                gc.collect()
            cpu = proc.cpu_times()
            ep = node.endpoints[TENANT]
            cmd.send({"rss": proc.memory_info().rss, "cpu": cpu.user + cpu.system, "connections": len(node.registry),
                      "admitted": _admitted(node), "session_cache": ep.ssl_context.session_stats().get("number")})
        elif op == "wake_read":
            results = await asyncio.gather(*(one(g) for g in arg))
            cmd.send(results)
        elif op == "wake_only":
            async def connect(gid: str) -> str:
                try:
                    await node.connection(TENANT, gid, priority=M.PRIORITY_BULK, timeout=300)
                    return "ok"
                except Exception as err:
                    return type(err).__name__
            outcomes = await asyncio.gather(*(connect(g) for g in arg))
            cmd.send({k: outcomes.count(k) for k in set(outcomes)})
        elif op == "drop":  # close every session, as when a node drains or the network drops
            dropped = 0
            for conn in node.registry.connections():
                conn.close()
                dropped += 1
            for _ in range(200):
                if not len(node.registry):
                    break
                await asyncio.sleep(0.05)
            cmd.send(dropped)
        elif op == "stop":
            stop.set()
            await node.stop_servers()
            await store_task
            await engine.dispose()
            cmd.send("bye")
            return


def _admitted(node: Any) -> float:
    return sum(s.value for m in node.metrics.registry.collect() if m.name == "gridgate_headend_admissions"
               for s in m.samples if s.name.endswith("_total") and s.labels.get("outcome") == "admitted")


# --------------------------------------------------------------------------- simulator process
def simulator_main(kw: dict[str, Any], var_dir: str, ids: list[str], ready: Any, stop_ev: Any, stats_q: Any,
                   contact_ev: Any) -> None:
    raise_nofile()
    import uvloop

    uvloop.run(_simulator(kw, var_dir, ids, ready, stop_ev, stats_q, contact_ev))


async def _simulator(kw: dict[str, Any], var_dir: str, ids: list[str], ready: Any, stop_ev: Any,
                     stats_q: Any, contact_ev: Any) -> None:
    import psutil

    from core.logging import configure_logging
    from simulator.config import SimulatorSettings
    from simulator.run import Simulator

    configure_logging("warning", "console")
    sim = Simulator(SimulatorSettings(**kw), Path(var_dir), gateway_ids=ids)
    await sim.start()
    ready.set()
    loop = asyncio.get_running_loop()
    proc = psutil.Process()
    while not await loop.run_in_executor(None, stop_ev.wait, 0.5):
        if contact_ev.is_set():  # every gateway opens its management connection on its own
            contact_ev.clear()
            assert sim.fleet is not None
            for rt in sim.fleet.gateways.values():
                sim.fleet.contact(rt, "cyclic")
        cpu = proc.cpu_times()
        while not stats_q.empty():
            try:
                stats_q.get_nowait()
            except Exception:
                break
        stats_q.put({"cpu": cpu.user + cpu.system, "rss": proc.memory_info().rss})
    await sim.stop()


# --------------------------------------------------------------------------- driver
def openssl_speed() -> dict[str, float]:
    """brainpoolP256r1 operations per CPU-second, as ``openssl speed`` measures them (empty if it does not)."""
    speed = brainpool_speed(2)
    if speed is None:
        return {}
    return {"sign_per_s": speed.sign, "verify_per_s": speed.verify, "ecdh_per_s": speed.ecdh}


def openssl_server_reference(pki_dir: Path, seconds: int = 8) -> dict[str, Any]:
    """The same handshake with OpenSSL on both ends and no Python: ``openssl s_server`` (the GWA's
    TLS certificate, TLS 1.2, brainpoolP256r1 only, client certificate required, chain check
    stopping at the known Sub-CA, no tickets) against ``openssl s_time -new`` with a gateway's
    certificate. Handshakes per CPU-second of the s_server process: what OpenSSL 3 itself reaches
    on this machine, next to the bound computed from ``openssl speed``."""
    import psutil

    from core.procs import free_port

    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="he-ossl-"))
    trust = work / "trust.pem"
    trust.write_bytes((pki_dir / "ca" / "root.crt").read_bytes() + (pki_dir / "ca" / "subca.crt").read_bytes())
    conf = work / "client.cnf"  # s_time has no -groups: the client's groups come from a config file
    conf.write_text("openssl_conf = c\n[c]\nssl_conf = s\n[s]\nsystem_default = d\n[d]\n"
                    "Groups = brainpoolP256r1\nMaxProtocol = TLSv1.2\n")
    gw = sorted((pki_dir / "smgw").iterdir())[0]
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", str(port), "-cert", str(pki_dir / "gwa" / "tls.crt"),
         "-key", str(pki_dir / "gwa" / "tls.key"), "-cert_chain", str(pki_dir / "ca" / "subca.crt"),
         "-CAfile", str(trust), "-Verify", "2", "-verify_return_error", "-partial_chain",
         "-groups", "brainpoolP256r1", "-no_ticket", "-tls1_2", "-www", "-quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        proc = psutil.Process(server.pid)
        c0 = sum(proc.cpu_times()[:2])
        out = subprocess.run(["openssl", "s_time", "-tls1_2", "-connect", f"127.0.0.1:{port}", "-new", "-time",
                              str(seconds), "-cert", str(gw / "tls.crt"), "-key", str(gw / "tls.key"),
                              "-CAfile", str(trust)], capture_output=True, text=True, timeout=seconds + 30,
                             env={**os.environ, "OPENSSL_CONF": str(conf)}, check=False).stdout
        cpu = sum(proc.cpu_times()[:2]) - c0
    finally:
        server.kill()
        server.wait(10)
    m = re.search(r"(\d+) connections in [\d.]+s", out)
    n = int(m.group(1)) if m else 0
    return {"handshakes": n, "server_cpu_s": round(cpu, 2), "per_server_cpu_s": round(n / cpu, 1) if cpu else None}


async def setup_db(pg_url: str, n: int, udp_port: int) -> str:
    from sqlalchemy import insert, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from core.db import create_database, with_database
    from domain import migrate
    from domain.catalogue.models import DeviceType
    from domain.devices.models import Gateway

    base = __import__("sqlalchemy").make_url(pg_url)
    await create_database(base, "bench_t")
    url = with_database(base, "bench_t")
    await migrate.upgrade("tenant", url)
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        types = {r.code: r.id for r in (await conn.execute(select(DeviceType.code, DeviceType.id))).all()}
        codes = ("theben-conexa-3.0", "emh-casa", "ppc-smgw")
        rows = [dict(device_id=g, device_type_id=types[codes[i % 3]], wakeup_address=f"127.0.0.1:{udp_port}",
                     network_segment=f"cell-{i % 20}", state="in_operation", created_by="bench", updated_by="bench")
                for i, g in enumerate(gateway_ids(n))]
        for i in range(0, len(rows), 2000):
            await conn.execute(insert(Gateway), rows[i:i + 2000])
    await engine.dispose()
    return url.render_as_string(hide_password=False)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateways", type=int, default=10_000)
    ap.add_argument("--burst", type=int, default=1_000)
    ap.add_argument("--tenant-wakeups-per-s", type=float, default=200.0)
    ap.add_argument("--segment-wakeups-per-s", type=float, default=50.0)
    ap.add_argument("--record-cache-s", type=float, help="head-end record cache (default: the product's)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    nofile = raise_nofile()
    from core.pg import EmbeddedPostgres
    from core.procs import free_port

    pki_dir = ROOT / "var" / "bench" / "headend-pki"
    ensure_pki(pki_dir, args.gateways)
    tmp = Path(tempfile.mkdtemp(prefix="he-bench-"))
    pg = EmbeddedPostgres(tmp / "pg", free_port())
    pg.start()
    report: dict[str, Any] = {"gateways": args.gateways, "burst": args.burst, "nofile": nofile,
                              "cpus": os.cpu_count()}
    ctx = mp.get_context("spawn")
    try:
        udp_port = free_port()
        db_url = asyncio.run(setup_db(pg.url, args.gateways, udp_port))
        port_q, (cmd, child) = ctx.Queue(), ctx.Pipe()
        settings_kw = {"tenant_wakeups_per_s": args.tenant_wakeups_per_s,
                       "segment_wakeups_per_s": args.segment_wakeups_per_s,
                       "tenant_max_sessions": 2000, "segment_max_sessions": 200, "wakeup_retry_s": 15.0,
                       **({"record_cache_s": args.record_cache_s} if args.record_cache_s is not None else {})}
        report["throttle"] = settings_kw
        he = ctx.Process(target=headend_main, args=(db_url, str(pki_dir), str(tmp / "keys"), port_q, child,
                                                    settings_kw), daemon=True)
        he.start()
        port, inbound = port_q.get(timeout=120)
        ids = gateway_ids(args.gateways)
        ready, stop_ev, stats_q, contact_ev = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Event()
        sim_kw = dict(gateways=len(ids), headend=f"127.0.0.1:{port}", inbound_port=inbound, pki_dir=pki_dir,
                      state_dir=tmp / "sim-state", udp_port=udp_port, control_port=0, sni=SNI, cyclic_contact_s=0,
                      idle_timeout_s=0, contact_concurrency=200)
        sim = ctx.Process(target=simulator_main, args=(sim_kw, str(tmp), ids, ready, stop_ev, stats_q, contact_ev),
                          daemon=True)
        t0 = time.perf_counter()
        sim.start()
        if not ready.wait(900):
            raise SystemExit("simulator did not start")
        report["simulator_start_s"] = round(time.perf_counter() - t0, 1)

        def he_stats(op: str = "stats") -> dict[str, Any]:
            cmd.send((op, None))
            return cmd.recv()

        def sim_stats() -> dict[str, Any]:
            return stats_q.get(timeout=10)

        base = he_stats()
        # Phase 1: burst latency
        s0, h0, w0 = sim_stats(), he_stats(), time.perf_counter()
        cmd.send(("wake_read", ids[:args.burst]))
        results = cmd.recv()
        wall = time.perf_counter() - w0
        s1, h1 = sim_stats(), he_stats()
        ok = [r for r in results if r["ok"]]
        burst_rss_kb = (h1["rss"] - base["rss"]) / max(1, h1["connections"]) / 1024
        report["latency"] = {
            "ok": len(ok), "failed": len(results) - len(ok), "wall_s": round(wall, 2),
            "connect_p50_s": round(pct([r["connect"] for r in ok], 50), 3),
            "connect_p99_s": round(pct([r["connect"] for r in ok], 99), 3),
            "device_info_p50_s": round(pct([r["total"] for r in ok], 50), 3),
            "device_info_p99_s": round(pct([r["total"] for r in ok], 99), 3),
            "device_info_mean_s": round(statistics.mean([r["total"] for r in ok]), 3) if ok else None,
            "headend_cpu_s": round(h1["cpu"] - h0["cpu"], 2), "simulator_cpu_s": round(s1["cpu"] - s0["cpu"], 2),
            "rss_per_session_after_a_command_kb": round(burst_rss_kb, 1),
            "errors": sorted({r.get("error", "") for r in results if not r["ok"]}),
        }
        print("latency", json.dumps(report["latency"]), flush=True)
        # Phase 2: everyone else connects and stays idle
        rest = ids[args.burst:]
        h2, s2, w2 = he_stats(), sim_stats(), time.perf_counter()
        cmd.send(("wake_only", rest))
        outcomes_rest = cmd.recv()
        connected_rest = outcomes_rest.get("ok", 0)
        wall2 = time.perf_counter() - w2
        h3, s3 = he_stats(), sim_stats()
        time.sleep(2)
        h4 = he_stats()
        sessions = h4["connections"]
        report["idle"] = {
            "sessions": sessions, "woken_now": len(rest), "connected_now": connected_rest, "outcomes": outcomes_rest,
            "wall_s": round(wall2, 1),
            "rss_before_mb": round(base["rss"] / 2**20, 1), "rss_after_mb": round(h4["rss"] / 2**20, 1),
            "rss_per_session_kb": round((h4["rss"] - base["rss"]) / max(1, sessions) / 1024, 1),
            "rss_marginal_per_session_kb": round(
                (h4["rss"] - h2["rss"]) / max(1, sessions - h2["connections"]) / 1024, 1),
            "tls_session_cache": h4.get("session_cache"),
            "simulator_rss_mb": round(s3["rss"] / 2**20, 1),
        }
        print("idle", json.dumps(report["idle"]), flush=True)
        # Phase 3: handshake cost in the head-end process (handshake + validation + admission)
        admitted = h3["admitted"] - h2["admitted"]
        cpu = h3["cpu"] - h2["cpu"]
        speed = openssl_speed()
        per_core = 1.0 / (1 / speed["sign_per_s"] + 2 / speed["ecdh_per_s"] + 2 / speed["verify_per_s"]) \
            if len(speed) == 3 else None
        measured = admitted / cpu if cpu > 0 else None
        report["handshakes"] = {
            "admitted": int(admitted), "headend_cpu_s": round(cpu, 2), "wall_s": round(wall2, 1),
            "per_headend_cpu_s": round(measured, 1) if measured else None,
            "wall_rate_per_s": round(admitted / wall2, 1) if wall2 else None,
            "simulator_cpu_s": round(s3["cpu"] - s2["cpu"], 2),
            "openssl_speed": speed, "brainpool_bound_per_core": round(per_core, 1) if per_core else None,
            "share_of_bound": round(measured / per_core, 2) if measured and per_core else None,
        }
        print("handshakes", json.dumps(report["handshakes"]), flush=True)
        # Phase 4: the head-end drops every session and the gateways reconnect on their own (no
        # wake-up): TLS handshake + SM-PKI validation (memoised for known certificates) + admission.
        cmd.send(("drop", None))
        dropped = cmd.recv()
        time.sleep(2)
        h5, s5, w5 = he_stats(), sim_stats(), time.perf_counter()
        contact_ev.set()
        h6 = h5
        while time.perf_counter() - w5 < 300:
            time.sleep(1)
            h6 = he_stats("peek")
            if h6["admitted"] - h5["admitted"] >= dropped:
                break
        wall5 = time.perf_counter() - w5
        s6 = sim_stats()
        re_admitted = h6["admitted"] - h5["admitted"]
        re_cpu = h6["cpu"] - h5["cpu"]
        re_rate = re_admitted / re_cpu if re_cpu > 0 else None
        report["reconnect"] = {
            "dropped": dropped, "admitted": int(re_admitted), "headend_cpu_s": round(re_cpu, 2),
            "wall_s": round(wall5, 1), "per_headend_cpu_s": round(re_rate, 1) if re_rate else None,
            "simulator_cpu_s": round(s6["cpu"] - s5["cpu"], 2),
            "share_of_bound": round(re_rate / per_core, 2) if re_rate and per_core else None,
        }
        ref = openssl_server_reference(pki_dir)
        ref["share_of_bound"] = round(ref["per_server_cpu_s"] / per_core, 2) \
            if ref["per_server_cpu_s"] and per_core else None
        report["openssl_s_server"] = ref
        print("reconnect", json.dumps(report["reconnect"]), flush=True)
        print("openssl_s_server", json.dumps(ref), flush=True)
        cmd.send(("stop", None))
        cmd.recv()
        stop_ev.set()
        sim.join(60)
        he.join(30)
    finally:
        pg.stop()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
