"""The measured phases of the process bench: profile rollout, Temporal floor, commissioning.

Each phase runs a ``Scenario``: a tenant of its own with N simulated gateways, its own simulator,
and a fresh ``gridgate worker`` and ``gridgate headend``, so the peaks of one phase are not those
of the one before.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench.common.host import free_udp_port
from bench.common.testpki import gateway_ids
from bench.process.procs import Child, CpuClock, Sampler, check_alive, gridgate_cmd, log, mb, spawn, tail
from bench.process.stack import PREFIX, QUEUE, Stack, wait_pollers

if TYPE_CHECKING:
    from temporalio.client import Client

    from domain.processes.models import ProcessTarget
    from domain.tenancy.service import TenantContext
    from operations.processes import LinkOptions
    from pki.testpki import TestPki

SUPPLIER_TAF = 7
BENCH_DIR = Path(__file__).resolve().parent.parent
GRIDGATE = ("worker", "headend", "simulator")  # the processes of a scenario, as the sampler names them


async def bulk_taf_orders(ctx: TenantContext, n: int, taf: int, emt_mp_id: str) -> int:
    """One order of ``taf`` for ``emt`` on the consumption metering point (slot 0) of gateways 0..n-1."""
    from sqlalchemy import insert, select

    from domain.demo import demo_melo
    from domain.locations.models import MeteringPoint
    from domain.partners.models import MarketPartner
    from domain.tariffs import tafs
    from domain.tariffs.models import TafOrder

    params = tafs.validate_params(taf, {})
    melos = [demo_melo(i, 0) for i in range(n)]
    async with ctx.sessions() as session, session.begin():
        emt = await session.scalar(select(MarketPartner.id).where(MarketPartner.mp_id == emt_mp_id))
        ids = dict((await session.execute(select(MeteringPoint.melo, MeteringPoint.id)
                                          .where(MeteringPoint.melo.in_(melos)))).tuples().all())
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        rows = [dict(metering_point_id=ids[m], taf=taf, emt_id=emt, params=params, valid_from=now, status="active",
                     created_by="bench", updated_by="bench") for m in melos]
        for i in range(0, len(rows), 2000):
            await session.execute(insert(TafOrder), rows[i:i + 2000])
    return len(rows)


# --------------------------------------------------------------------------- one scenario
class Scenario:
    """A tenant with N simulated gateways, its own simulator, and a fresh worker and head-end."""

    def __init__(self, stack: Stack, sampler: Sampler, pki: TestPki, tenant: str, n: int, logdir: Path) -> None:
        self.stack, self.sampler, self.pki, self.tenant, self.n = stack, sampler, pki, tenant, n
        self.logdir = logdir
        self._ctx: TenantContext | None = None
        self.udp = free_udp_port()
        self.children: dict[str, Child] = {}
        self.control: httpx.AsyncClient | None = None
        self.setup_s: dict[str, float] = {}
        self.gateways = gateway_ids(n)
        self.state_dir = stack.work / f"sim-{tenant}"

    @property
    def ctx(self) -> TenantContext:
        """The scenario's tenant (after ``provision``)."""
        assert self._ctx is not None, "Scenario.provision() first"
        return self._ctx

    async def provision(self, *, installed: bool = False) -> None:
        from tests.fleet import SUPPLIER, Fleet, provision

        t0 = time.perf_counter()
        self._ctx = await self.stack.tenant(self.tenant)
        await provision(self.stack.settings, self.ctx, self.pki, self.n, self.udp)
        self.setup_s["provision"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        await bulk_taf_orders(self.ctx, self.n, SUPPLIER_TAF, SUPPLIER)
        self.setup_s["taf_orders"] = round(time.perf_counter() - t0, 1)
        if installed:
            t0 = time.perf_counter()
            fleet = Fleet(self.tenant, self.ctx, self.stack.settings, self.pki, self.n)
            for i in range(0, self.n, 500):
                await fleet.move_to(self.gateways[i:i + 500], "installed")
            self.setup_s["to_installed"] = round(time.perf_counter() - t0, 1)

    async def start_simulator(self, headend_port: int, inbound_port: int, *extra: str) -> None:
        from core.procs import free_port

        port = free_port()
        env = self.stack.env(GRIDGATE_SIMULATOR_SNI=f"{self.tenant}.gwa.gridgate.test",
                             GRIDGATE_SIMULATOR_INBOUND_PORT=str(inbound_port),
                             GRIDGATE_SIMULATOR_LOG_LEVEL="warning")
        child = spawn(f"simulator-{self.tenant}", gridgate_cmd(
            "simulate", "run", "--gateways", str(self.n), "--pki", str(self.pki.directory), "--state",
            str(self.state_dir), "--control-port", str(port), "--udp-port", str(self.udp), "--headend",
            f"127.0.0.1:{headend_port}", "--cyclic-contact-s", "0", *extra), env, self.logdir)
        self.children["simulator"] = child
        self.control = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120)
        for _ in range(1800):
            with contextlib.suppress(httpx.HTTPError):
                if (await self.control.get("/status")).status_code == 200:
                    return
            check_alive({"simulator": child})
            await asyncio.sleep(0.2)
        raise SystemExit("simulator did not answer within 6 minutes")

    async def stop_simulator(self) -> None:
        if self.control is not None:
            await self.control.aclose()
            self.control = None
        child = self.children.pop("simulator", None)
        if child is not None:
            self.sampler.forget("simulator")
            await asyncio.to_thread(child.stop, 120)

    async def start_gridgate(self) -> tuple[int, int]:
        from core.procs import free_port

        he_port, he_inbound = free_port(), free_port()
        he_env = self.stack.env(
            GRIDGATE_HEADEND_PORT=str(he_port), GRIDGATE_HEADEND_INBOUND_PORT=str(he_inbound),
            GRIDGATE_HEADEND_NODE_ID=f"bench-{self.tenant}", GRIDGATE_HEADEND_METRICS_PORT="0",
            GRIDGATE_HEADEND_TENANT_POLL_S="0.5", GRIDGATE_HEADEND_LOG_LEVEL="warning",
            GRIDGATE_HEADEND_FIRMWARE_DIR=str(self.stack.work / "firmware"))
        self.children["headend"] = spawn(f"headend-{self.tenant}", gridgate_cmd("headend"), he_env, self.logdir)
        self.children["worker"] = spawn(f"worker-{self.tenant}", gridgate_cmd("worker"), self.stack.env(
            GRIDGATE_TEMPORAL_TASK_QUEUE=QUEUE, GRIDGATE_WORKER_TENANT_POLL_SECONDS="0.5",
            **self.stack.worker_env), self.logdir)
        for _ in range(600):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", he_port)) == 0:
                    break
            if self.children["headend"].proc.poll() is not None:  # e.g. a port taken meanwhile: once more
                log(f"head-end exited at start:\n{tail(self.children['headend'].log, 1500)}")
                self.children["worker"].stop()
                return await self.start_gridgate()
            await asyncio.sleep(0.2)
        for name in ("headend", "worker"):
            self.sampler.watch(name, self.children[name].pid)
        return he_port, he_inbound

    async def start(self, *simulator_args: str) -> None:
        """Worker, head-end and simulator (with ``simulator_args``) started, until the worker and
        the head-end poll their task queues; the sampler watches all three."""
        he_port, he_inbound = await self.start_gridgate()
        await self.start_simulator(he_port, he_inbound, *simulator_args)
        self.sampler.watch("simulator", self.children["simulator"].pid)
        await wait_pollers(await self.client(), self.ctx.namespace, [QUEUE, "headend"], 180, self.children)

    async def client(self) -> Client:
        """The Temporal client of the scenario's tenant."""
        return await self.stack.clients.for_namespace(self.ctx.namespace)

    async def run_process(self, type_: str, params: dict[str, Any], concurrency: int, link: LinkOptions,
                          failure_threshold: float = 0.2) -> dict[str, Any]:
        from domain.processes import service
        from operations import processes

        client = await self.client()
        clock = CpuClock()
        clock.start(self.cpu_procs())
        t0 = time.perf_counter()
        process = await processes.start(
            self.ctx, client, QUEUE, type_, service.Target(gateway_ids=self.gateways), params,
            f"bench: {type_} of {self.n}", processes.Initiator(username="bench", ref="bench#1"),
            service.StartOptions(concurrency=concurrency, failure_threshold=failure_threshold), link)
        started_s = time.perf_counter() - t0
        last_log = time.perf_counter()
        deadline = time.perf_counter() + (self.stack.max_wait_s or max(1800.0, self.n * 1.0))
        counts: dict[str, int] = {}
        state = "running"
        while time.perf_counter() < deadline:
            p, counts = await processes.counts(self.ctx, process.id)
            state = p.state
            if state in ("completed", "failed", "cancelled", "paused"):
                break
            check_alive(self.children, " during the run")
            if time.perf_counter() - last_log > 30:
                done = counts.get("succeeded", 0) + counts.get("failed", 0)
                el = time.perf_counter() - t0
                log(f"  {type_} {self.tenant}: {done}/{self.n} after {el:.0f}s ({done / el:.1f}/s) {counts}")
                last_log = time.perf_counter()
            await asyncio.sleep(1.0)
        wall = time.perf_counter() - t0
        usage = clock.stop()
        return {"process_id": process.id, "state": state, "counts": counts, "wall_s": round(wall, 1),
                "start_call_s": round(started_s, 2),
                "per_s": round((counts.get("succeeded", 0) + counts.get("failed", 0)) / wall, 1), **usage}

    def cpu_procs(self) -> dict[str, tuple[int, bool]]:
        return {**{n: (c.pid, False) for n, c in self.children.items()}, **self.stack.cpu_procs()}

    async def targets(self, process_id: str, state: str | None = None) -> list[ProcessTarget]:
        """The targets of the process (only those in ``state``), in order."""
        from domain.processes import repository as repo

        async with self.ctx.sessions() as session:
            return list((await session.scalars(repo.targets(process_id, state=state, limit=100_000))).all())

    async def failures(self, process_id: str) -> tuple[dict[str, int], dict[str, str]]:
        """Failed gateways by reason, and one message per reason."""
        out: dict[str, int] = {}
        sample: dict[str, str] = {}
        for t in await self.targets(process_id, "failed"):
            reason = t.error_type or "?"
            out[reason] = out.get(reason, 0) + 1
            sample.setdefault(reason, f"{t.gateway_id}: {(t.error_message or '')[:300]}")
        return out, sample

    async def counters(self) -> dict[str, Any]:
        """The simulator's command counters per gateway."""
        assert self.control is not None
        counters: dict[str, Any] = (await self.control.get("/counters")).json()
        return counters

    async def faults(self) -> dict[str, list[str]]:
        assert self.control is not None
        out: dict[str, list[str]] = {}
        offset = 0
        while True:
            page = (await self.control.get(f"/gateways?offset={offset}&limit=1000")).json()
            items = page["items"] if isinstance(page, dict) else page
            for g in items:
                f = g.get("faults") or {}
                out[g["id"]] = sorted(f) if isinstance(f, dict | list) else []
            if len(items) < 1000:
                return out
            offset += 1000

    async def stop(self) -> None:
        await self.stop_simulator()
        for name in ("worker", "headend"):
            child = self.children.pop(name, None)
            if child is not None:
                self.sampler.forget(name)
                await asyncio.to_thread(child.stop, 60)


# --------------------------------------------------------------------------- measurements
def expected_rollout(index: int) -> dict[str, int]:
    """Commands a profile rollout to demo gateway ``index`` sends (one TAF 7 order of the supplier)."""
    from core.ids import demo_meter_count

    m = demo_meter_count(index)
    return {"install_certificates": 1, "write_meter_profile": m, "write_communication_profile": 1,
            "write_evaluation_profile": 1}


def expected_commissioning(index: int) -> dict[str, int]:
    """Commands a commissioning of demo gateway ``index`` sends (one TAF 7 order of the supplier)."""
    from core.ids import demo_meter_count

    m = demo_meter_count(index)
    return {"install_certificates": 1, "set_time": 1, "pair_meter": m, "write_meter_profile": m,
            "write_communication_profile": 1, "write_evaluation_profile": 1, "trigger_readout": 1}


async def activities_per_child(client: Client, type_: str, process_id: str, indices: list[int]) -> dict[int, int]:
    """ActivityTaskScheduled events in the histories of the gateway workflows of ``indices``."""
    from temporalio.api.enums.v1 import EventType

    from core.ids import demo_gateway_id
    from domain.processes.ids import gateway_workflow_id

    out = {}
    for i in indices:
        try:
            hist = await client.get_workflow_handle(gateway_workflow_id(type_, demo_gateway_id(i), process_id)
                                                    ).fetch_history()
        except Exception as err:  # not started (a run stopped by --max-wait-s)
            log(f"no history of gateway {i}: {type(err).__name__}")
            continue
        out[i] = sum(1 for e in hist.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    return out


async def rollout(stack: Stack, sampler: Sampler, pki: TestPki, n: int, args: argparse.Namespace
                  ) -> dict[str, Any]:
    from core.ids import demo_meter_count
    from operations import processes

    sc = Scenario(stack, sampler, pki, f"roll{n}", n, stack.work / "logs")
    log(f"rollout {n}: provisioning")
    await sc.provision()
    log(f"rollout {n}: setup {sc.setup_s}; starting worker, head-end, simulator")
    try:
        # in operation, as commissioning leaves a gateway: its meters are paired
        await sc.start("--meters-paired")
        idle = {k: mb(sampler.last.get(k, 0)) for k in GRIDGATE}
        sampler.reset(GRIDGATE)
        log(f"rollout {n}: running (concurrency {args.concurrency})")
        result = await sc.run_process("profile_rollout", {}, args.concurrency,
                                      processes.LinkOptions(connect_timeout_s=60, attempts=4))
        result["peak_rss_mb"] = sampler.peaks_mb(GRIDGATE)
        result["idle_rss_mb"] = idle
        result["rss_series_mb"] = {k: sampler.series.get(k, []) for k in ("worker", "headend")}
        result["peak_rss_at_s"] = {k: sampler.peak_at.get(k) for k in ("worker", "headend")}
        result["setup_s"] = sc.setup_s
        result["failures"], result["failure_sample"] = await sc.failures(result["process_id"])
        # Exactly once: what every gateway applied against what its rollout had to send.
        counters = await sc.counters()
        states = {t.gateway_id: t.state for t in await sc.targets(result["process_id"])}
        wrong, repeated = 0, 0
        for i, gid in enumerate(sc.gateways):
            c = counters.get(gid) or {}
            want = expected_rollout(i)
            applied = c.get("applied_by_kind") or {}
            if any(v > want.get(k, 0) for k, v in applied.items()) or (
                    states.get(gid) == "succeeded" and applied != want):
                wrong += 1
            repeated += int(c.get("repeated") or 0)
        result["applied_not_as_expected"] = wrong
        result["repeated_answered_from_record"] = repeated
        sample = await activities_per_child(await sc.client(), "profile_rollout", result["process_id"],
                                            [0, 1, 2, 3, 4, n - 1])
        by_meters: dict[int, int] = {}
        for i, k in sample.items():
            by_meters.setdefault(demo_meter_count(i), k)
        result["activities_by_meter_count"] = by_meters
        result["activities_total"] = sum(by_meters.get(demo_meter_count(i), max(by_meters.values()))
                                         for i in range(n))
        return result
    finally:
        await sc.stop()


async def floor(stack: Stack, sampler: Sampler, n: int, plan: list[int], concurrency: int) -> dict[str, Any]:
    """The Temporal floor: ``bench/process_floor.py`` as its own worker process, ``n`` children
    running ``plan[i]`` no-op activities each, ``concurrency`` at a time."""
    from temporalio.client import Client

    from bench.process_floor import FloorInput
    from core.temporal import ensure_namespace

    ns = f"{PREFIX}floor{n}"
    root = await stack.clients.root()
    await ensure_namespace(root, ns, 1)
    plan_file = stack.work / f"floor-{n}.json"
    plan_file.write_text(json.dumps({"activities": plan}))
    child = spawn(f"floor-{n}", [sys.executable, str(BENCH_DIR / "process_floor.py"), "--address",
                                 stack.temporal.address, "--namespace", ns, "--queue", "floor", "--plan",
                                 str(plan_file)], stack.env(), stack.work / "logs")
    sampler.watch("floor worker", child.pid)
    try:
        client = await Client.connect(stack.temporal.address, namespace=ns)
        await wait_pollers(client, ns, ["floor"], 120, {"floor worker": child})
        sampler.reset(("floor worker",))
        clock = CpuClock()
        clock.start({"floor worker": (child.pid, False), **stack.cpu_procs()})
        t0 = time.perf_counter()
        handle = await client.start_workflow("FloorParent", FloorInput(f"floor-{n}", n, concurrency),
                                             id=f"floor-{n}", task_queue="floor", result_type=int)
        complete = True
        try:
            done = await asyncio.wait_for(handle.result(), stack.max_wait_s or max(1800.0, n * 0.5))
        except TimeoutError:
            complete, done = False, await handle.query("progress", result_type=int)
        wall = time.perf_counter() - t0
        usage = clock.stop()
        return {"children": done, "complete": complete, "wall_s": round(wall, 1), "per_s": round(done / wall, 1),
                "activities_total": sum(plan), "peak_rss_mb": {"floor worker": mb(sampler.peak["floor worker"])},
                "rss_series_mb": {"floor worker": sampler.series.get("floor worker", [])}, **usage}
    finally:
        sampler.forget("floor worker")
        await asyncio.to_thread(child.stop, 30)


async def commissioning(stack: Stack, sampler: Sampler, pki: TestPki, n: int, args: argparse.Namespace
                        ) -> dict[str, Any]:
    from operations import processes

    sc = Scenario(stack, sampler, pki, f"comm{n}", n, stack.work / "logs")
    log(f"commissioning {n}: provisioning")
    await sc.provision(installed=True)
    log(f"commissioning {n}: setup {sc.setup_s}; starting worker, head-end, simulator")
    try:
        await sc.start("--offline-pct", str(args.offline_pct), "--flaky-pct", str(args.flaky_pct))
        for k in GRIDGATE:
            sampler.peak[k] = 0
        log(f"commissioning {n}: running")
        link = processes.LinkOptions(connect_timeout_s=args.connect_timeout, attempts=args.attempts)
        result = await sc.run_process("commissioning", {"first_readout": True}, args.concurrency, link,
                                      failure_threshold=0.5)
        result["peak_rss_mb"] = sampler.peaks_mb(GRIDGATE)
        result["setup_s"] = sc.setup_s
        result["link"] = {"connect_timeout_s": args.connect_timeout, "attempts": args.attempts}
        result["failures"], result["failure_sample"] = await sc.failures(result["process_id"])
        faults = await sc.faults()
        counters = await sc.counters()
        targets = {t.gateway_id: t for t in await sc.targets(result["process_id"])}
        by_fault: dict[str, dict[str, int]] = {}
        twice: list[tuple[str, str, int, int]] = []
        short, repeated = 0, 0
        for i, gid in enumerate(sc.gateways):
            kind = "+".join(faults.get(gid) or []) or "healthy"
            t = targets.get(gid)
            outcome = t.state if t is not None else "?"
            if outcome == "failed" and t is not None:
                outcome = f"failed:{t.error_type}"
            bucket = by_fault.setdefault(kind, {})
            bucket[outcome] = bucket.get(outcome, 0) + 1
            applied = (counters.get(gid) or {}).get("applied_by_kind") or {}
            want = expected_commissioning(i)
            for k, v in applied.items():
                if v > want.get(k, 0):
                    twice.append((gid, k, v, want.get(k, 0)))
            if outcome == "succeeded" and applied != want:
                short += 1
            repeated += int((counters.get(gid) or {}).get("repeated") or 0)
        result["outcomes_by_fault"] = by_fault
        result["applied_more_than_once"] = len(twice)
        result["applied_more_than_once_sample"] = twice[:10]
        result["succeeded_not_exactly_expected"] = short
        result["repeated_answered_from_record"] = repeated
        result["applied_total"] = sum(sum(((counters.get(g) or {}).get("applied_by_kind") or {}).values())
                                      for g in sc.gateways)
        return result
    finally:
        await sc.stop()
