"""Process benchmark (issue 6, "Speed and scale"; results: docs/benchmarks.md, ## Processes).

Everything runs as its own process on this machine, as in production: embedded PostgreSQL, the
Temporal dev server (``gridgate.temporal.TemporalDevServer`` on a fresh SQLite file; ``--temporal``
picks WAL mode (default), SQLite's defaults as gridgate starts it, or memory), ``gridgate worker``,
``gridgate headend`` and the simulator (``gridgate simulate run``). This process provisions the
tenants (``tests.fleet.provision``: demo master data, test SM-PKI in the certificate store, wake-up
addresses), starts the mass processes with ``gridgate.processes.start`` and samples RSS and CPU of
every process (psutil).

1. Profile rollout to N gateways (``--gateways 1000,10000``): a tenant per size whose fleet is in
   operation with its meters paired (as commissioning leaves them; the simulator runs with
   ``--meters-paired``) and one TAF 7 order (register profile, supplier) on each gateway's consumption
   metering point, created in bulk. The rollout wakes each gateway, connects over TLS, installs
   the supplier's certificates and writes the meter, communication and evaluation profiles.
   Wall time from ``processes.start`` to the process state ``completed``, gateways per second,
   peak RSS of worker and head-end, CPU seconds of every process. Fresh worker and head-end per
   size, so the peaks are comparable.
2. Temporal floor (unless ``--skip-floor``): the same number of trivial workflows on the same
   Temporal server (``bench/process_floor.py``), restarted on an empty store like every rollout
   (``--shared-temporal`` keeps one store for all phases, as before 2026-11-28 evening): a
   parent with the same sliding window, children
   running as many no-op activities as gridgate's workflow ran for that gateway (counted from
   sampled workflow histories). Target: rollout wall time <= 1.5 x floor; worker RSS at the
   largest size within 20 % of the smallest.
3. Commissioning of ``--commissioning`` gateways (default 200) with 10 % offline and 5 % flaky
   (the simulator's fleet-level switch): time, outcomes by reason, and the simulator's
   applied-command counters of every gateway compared with the commands its workflow had to send.

The worker is ``gridgate worker`` as committed. (This bench found the defect of MassProcess at its
first continue-as-new with children in flight, fixed in ``workflows/mass.py`` with ``@workflow.init``.)

Usage::

    python bench/process_bench.py                      # make bench: 200,1000 + floor, commissioning 200
    python bench/process_bench.py --gateways 1000,10000 --commissioning 1000   # the issue's sizes (~1 h)
    python bench/process_bench.py --gateways 200 --skip-floor --commissioning 0 --json out.json

The test PKI (gateway triples) is kept under ``var/bench/process-pki`` (copied from another bench's
PKI when one exists, otherwise issued: about a minute per 10,000 on 2 cores). Everything else lives
in a temporary directory under ``var/bench/`` that is removed at the end, with every process this
script started. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import psutil  # noqa: E402
from headend_bench import raise_nofile  # noqa: E402

QUEUE = "gridgate"
PREFIX = "pb-"
SUPPLIER_TAF = 7


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- processes
@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def spawn(name: str, args: list[str], env: dict[str, str], logdir: Path) -> Child:
    from core.procs import die_with_parent

    path = logdir / f"{name}.log"
    with path.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=die_with_parent(signal.SIGTERM))
    return Child(name, proc, path)


def gridgate_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gridgate", *args]


def cpu_s(pid: int, with_children: bool = False) -> float:
    """CPU seconds of a process (with ``with_children``: also its live and reaped children)."""
    try:
        p = psutil.Process(pid)
        t = p.cpu_times()
        total = t.user + t.system
        if with_children:
            total += t.children_user + t.children_system
            for c in p.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    ct = c.cpu_times()
                    total += ct.user + ct.system
        return total
    except psutil.Error:
        return 0.0


class Sampler:
    """Peak RSS of named processes, sampled every ``interval`` seconds from a thread."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.last: dict[str, int] = {}
        # RSS every ``series_every`` seconds per process (where memory grows during a run)
        self.series: dict[str, list[tuple[float, float]]] = {}
        self.series_every = 15.0
        self.peak_at: dict[str, float] = {}  # seconds after reset() when the peak was sampled
        self._series_t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self.peak[name] = 0

    def forget(self, name: str) -> None:
        self.pids.pop(name, None)

    def reset(self, names: tuple[str, ...]) -> None:
        """Start peaks and series afresh (a measured run begins)."""
        self._series_t0 = time.monotonic()
        for k in names:
            self.peak[k] = 0
            self.series[k] = []

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for name, pid in list(self.pids.items()):
                with contextlib.suppress(psutil.Error):
                    rss = psutil.Process(pid).memory_info().rss
                    self.last[name] = rss
                    t = time.monotonic() - self._series_t0
                    if rss > self.peak.get(name, 0):
                        self.peak[name] = rss
                        self.peak_at[name] = round(t, 1)
                    series = self.series.setdefault(name, [])
                    if not series or t - series[-1][0] >= self.series_every:
                        series.append((round(t, 1), mb(rss)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class CpuClock:
    """CPU seconds per process between ``start`` and ``stop``, and everything else on the machine."""

    procs: dict[str, tuple[int, bool]] = field(default_factory=dict)
    t0: dict[str, float] = field(default_factory=dict)
    sys0: float = 0.0
    wall0: float = 0.0
    load0: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def start(self, procs: dict[str, tuple[int, bool]]) -> None:
        self.procs = procs
        self.t0 = {n: cpu_s(pid, ch) for n, (pid, ch) in procs.items()}
        st = psutil.cpu_times()
        self.sys0 = st.user + st.system + st.nice + st.irq + st.softirq
        self.wall0 = time.perf_counter()
        self.load0 = os.getloadavg()

    def stop(self) -> dict[str, Any]:
        used = {n: round(cpu_s(pid, ch) - self.t0[n], 1) for n, (pid, ch) in self.procs.items()}
        st = psutil.cpu_times()
        machine = st.user + st.system + st.nice + st.irq + st.softirq - self.sys0
        wall = time.perf_counter() - self.wall0
        ours = sum(used.values())
        return {"cpu_s": used, "machine_cpu_s": round(machine, 1), "others_cpu_s": round(max(0.0, machine - ours), 1),
                "wall_s": round(wall, 1), "cores": psutil.cpu_count(),
                "load_before": [round(x, 2) for x in self.load0], "load_after": [round(x, 2) for x in os.getloadavg()]}


# --------------------------------------------------------------------------- the stack
class Stack:
    """Embedded PostgreSQL + Temporal dev server + the bench's settings, databases and clients."""

    def __init__(self, work: Path, temporal_mode: str = "wal", max_wait_s: float = 0,
                 worker_env: dict[str, str] | None = None) -> None:
        self.work = work
        self.worker_env = worker_env or {}
        self.temporal_mode = temporal_mode
        self.max_wait_s = max_wait_s
        self.pg: Any = None
        self.temporal: Any = None
        self.settings: Any = None
        self.dbs: Any = None
        self.clients: Any = None
        self.master_key = secrets.token_urlsafe(40)
        self.secret_key = secrets.token_urlsafe(40)

    async def start(self) -> None:
        from sqlalchemy import make_url

        from core.config import Settings
        from core.db import Databases
        from core.pg import EmbeddedPostgres
        from core.procs import free_port
        from core.temporal import TemporalDevServer
        from core.temporal_clients import TemporalClients
        from operations.bootstrap import migrate_everything

        self.pg = EmbeddedPostgres(self.work / "pg", free_port())
        await asyncio.to_thread(self.pg.start)
        self.temporal = TemporalDevServer(self.work / "temporal" / "temporal.db", port=free_port(),
                                          ui_port=free_port(), headless=True)
        base_command = self.temporal.command

        def command() -> list[str]:
            cmd = base_command()
            if self.temporal_mode == "memory":
                i = cmd.index("--db-filename")
                del cmd[i:i + 2]
            elif self.temporal_mode == "wal":
                cmd += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
            return cmd

        self.temporal.command = command  # type: ignore[method-assign]
        await asyncio.to_thread(self.temporal.start)
        url = make_url(self.pg.url).set(database="gridgate_bench").render_as_string(hide_password=False)
        os.environ["GRIDGATE_MASTER_KEY"] = self.master_key
        os.environ["GRIDGATE_SECRET_KEY"] = self.secret_key
        self.settings = Settings(database_url=url, temporal_address=self.temporal.address,
                                 temporal_namespace_prefix=PREFIX, var_dir=self.work / "var", log_format="json",
                                 log_level="warning", master_key=self.master_key, secret_key=self.secret_key)
        self.dbs = Databases(self.settings)
        await migrate_everything(self.dbs)
        self.clients = TemporalClients(self.settings.temporal_address, self.settings)

    async def fresh_temporal(self) -> None:
        """Restart the dev server on an empty store (same address, same search attributes), so a
        measured phase does not pay for the histories an earlier phase left in the SQLite file."""
        await asyncio.to_thread(self.temporal.stop)
        for f in self.temporal.db_file.parent.glob(self.temporal.db_file.name + "*"):
            f.unlink()
        await asyncio.to_thread(self.temporal.start)
        # Tenants of earlier phases stay in the control database, and the next head-end serves
        # every tenant it finds there: their (empty) namespaces must exist again.
        from core.temporal import ensure_namespace
        from domain.tenancy.service import list_tenants

        async with self.dbs.control_sessions() as session:
            namespaces = [t.namespace for t in await list_tenants(session)]
        root = await self.clients.root()
        for ns in namespaces:
            await ensure_namespace(root, ns, 1)

    def env(self, **extra: str) -> dict[str, str]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDGATE_")}
        env.update(GRIDGATE_DATABASE_URL=s.database_url, GRIDGATE_TEMPORAL_ADDRESS=s.temporal_address,
                   GRIDGATE_TEMPORAL_NAMESPACE_PREFIX=PREFIX, GRIDGATE_VAR_DIR=str(s.var_dir),
                   GRIDGATE_MASTER_KEY=self.master_key, GRIDGATE_SECRET_KEY=self.secret_key,
                   GRIDGATE_LOG_LEVEL="warning", GRIDGATE_LOG_FORMAT="json", **extra)
        return env

    async def tenant(self, name: str) -> Any:
        from domain.tenancy.service import context_for
        from operations.tenants import create_tenant

        tenant = await create_tenant(self.dbs, self.settings, await self.clients.root(), name)
        return context_for(self.dbs, tenant)

    async def stop(self) -> None:
        if self.dbs is not None:
            with contextlib.suppress(Exception):
                await self.dbs.dispose()
        if self.temporal is not None:
            self.temporal.stop()
        if self.pg is not None:
            self.pg.stop()


def ensure_pki(directory: Path, n: int) -> Any:
    """The test PKI with gateway triples 0..n-1; started from another bench's PKI when there is one."""
    from core.ids import demo_gateway_id
    from pki.testpki import TestPki, init_test_pki

    if not (directory / "pki.json").exists():
        for other in ("headend-pki", "simulator-pki"):
            src = directory.parent / other
            if (src / "pki.json").exists():
                log(f"copying the test PKI from {src}")
                shutil.copytree(src, directory)
                break
    pki = TestPki(directory) if (directory / "pki.json").exists() else init_test_pki(directory)
    have = set(pki.gateway_ids())
    missing = [demo_gateway_id(i) for i in range(n) if demo_gateway_id(i) not in have]
    if missing:
        t0 = time.perf_counter()
        log(f"issuing {len(missing)} gateway certificate triples into {directory} ...")
        pki.issue_gateways(gateway_ids=missing, workers=2)
        log(f"  done in {time.perf_counter() - t0:.0f} s")
    return pki


async def bulk_taf_orders(ctx: Any, n: int, taf: int, emt_mp_id: str) -> int:
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
                                          .where(MeteringPoint.melo.in_(melos)))).all())
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        rows = [dict(metering_point_id=ids[m], taf=taf, emt_id=emt, params=params, valid_from=now, status="active",
                     created_by="bench", updated_by="bench") for m in melos]
        for i in range(0, len(rows), 2000):
            await session.execute(insert(TafOrder), rows[i:i + 2000])
    return len(rows)


# --------------------------------------------------------------------------- one scenario
class Scenario:
    """A tenant with N simulated gateways, its own simulator, and a fresh worker and head-end."""

    def __init__(self, stack: Stack, sampler: Sampler, pki: Any, tenant: str, n: int, logdir: Path) -> None:
        self.stack, self.sampler, self.pki, self.tenant, self.n = stack, sampler, pki, tenant, n
        self.logdir = logdir
        self.ctx: Any = None
        self.udp = free_udp_port()
        self.children: dict[str, Child] = {}
        self.control: httpx.AsyncClient | None = None
        self.setup_s: dict[str, float] = {}
        from core.ids import demo_gateway_id

        self.gateways = [demo_gateway_id(i) for i in range(n)]
        self.state_dir = stack.work / f"sim-{tenant}"

    async def provision(self, *, installed: bool = False) -> None:
        from tests.fleet import SUPPLIER, Fleet, provision

        t0 = time.perf_counter()
        self.ctx = await self.stack.tenant(self.tenant)
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
            if child.proc.poll() is not None:
                raise SystemExit(f"simulator exited ({child.proc.returncode}):\n{tail(child.log)}")
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

    async def wait_pollers(self, queues: list[str], timeout: float = 180) -> None:
        await wait_pollers(await self.stack.clients.for_namespace(self.ctx.namespace), self.ctx.namespace, queues,
                           timeout, self.children)

    async def run_process(self, type_: str, params: dict[str, Any], concurrency: int, link: Any,
                          failure_threshold: float = 0.2) -> dict[str, Any]:
        from domain.processes import service
        from operations import processes

        client = await self.stack.clients.for_namespace(self.ctx.namespace)
        clock = CpuClock()
        clock.start(self.cpu_procs())
        t0 = time.perf_counter()
        process = await processes.start(
            self.ctx, client, QUEUE, type_, service.Target(gateway_ids=self.gateways), params,
            f"bench: {type_} of {self.n}", processes.Initiator("bench", "bench#1"),
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
            for name, child in self.children.items():
                if child.proc.poll() is not None:
                    raise SystemExit(f"{name} exited ({child.proc.returncode}) during the run:\n{tail(child.log)}")
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
        st = self.stack
        procs = {n: (c.pid, False) for n, c in self.children.items()}
        procs["temporal"] = (st.temporal.process.pid, False)
        procs["postgres"] = (st.pg.process.pid, True)
        procs["bench driver"] = (os.getpid(), False)
        return procs

    async def failures(self, process_id: str) -> tuple[dict[str, int], dict[str, str]]:
        """Failed gateways by reason, and one message per reason."""
        from domain.processes import repository as repo

        out: dict[str, int] = {}
        sample: dict[str, str] = {}
        async with self.ctx.sessions() as session:
            for t in (await session.scalars(repo.targets(process_id, state="failed", limit=100_000))).all():
                reason = t.error_type or "?"
                out[reason] = out.get(reason, 0) + 1
                sample.setdefault(reason, f"{t.gateway_id}: {(t.error_message or '')[:300]}")
        return out, sample

    async def counters(self) -> dict[str, Any]:
        assert self.control is not None
        return (await self.control.get("/counters")).json()  # type: ignore[no-any-return]

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


async def wait_pollers(client: Any, namespace: str, queues: list[str], timeout: float,
                       children: dict[str, Child] | None = None) -> None:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    deadline = time.monotonic() + timeout
    for queue in queues:
        kinds = [TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY]
        while True:
            ok = True
            for kind in kinds:
                r = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                    namespace=namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind))
                ok = ok and bool(r.pollers)
            if ok:
                break
            for name, child in (children or {}).items():
                if child.proc.poll() is not None:
                    raise SystemExit(f"{name} exited ({child.proc.returncode}):\n{tail(child.log)}")
            if time.monotonic() > deadline:
                raise SystemExit(f"no worker polls task queue {queue} after {timeout:.0f}s")
            await asyncio.sleep(0.5)


def mb(n: int) -> float:
    return round(n / 2**20, 1)


# --------------------------------------------------------------------------- measurements
async def activities_per_child(client: Any, type_: str, process_id: str, indices: list[int]) -> dict[int, int]:
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


async def rollout(stack: Stack, sampler: Sampler, pki: Any, n: int, args: argparse.Namespace) -> dict[str, Any]:
    from core.ids import demo_meter_count
    from operations import processes

    sc = Scenario(stack, sampler, pki, f"roll{n}", n, stack.work / "logs")
    log(f"rollout {n}: provisioning")
    await sc.provision()
    log(f"rollout {n}: setup {sc.setup_s}; starting worker, head-end, simulator")
    try:
        he_port, he_inbound = await sc.start_gridgate()
        # in operation, as commissioning leaves a gateway: its meters are paired
        await sc.start_simulator(he_port, he_inbound, "--meters-paired")
        sampler.watch("simulator", sc.children["simulator"].pid)
        await sc.wait_pollers([QUEUE, "headend"])
        idle = {k: mb(sampler.last.get(k, 0)) for k in ("worker", "headend", "simulator")}
        sampler.reset(("worker", "headend", "simulator"))
        log(f"rollout {n}: running (concurrency {args.concurrency})")
        result = await sc.run_process("profile_rollout", {}, args.concurrency,
                                      processes.LinkOptions(connect_timeout_s=60, attempts=4))
        result["peak_rss_mb"] = {k: mb(sampler.peak.get(k, 0)) for k in ("worker", "headend", "simulator")}
        result["idle_rss_mb"] = idle
        result["rss_series_mb"] = {k: sampler.series.get(k, []) for k in ("worker", "headend")}
        result["peak_rss_at_s"] = {k: sampler.peak_at.get(k) for k in ("worker", "headend")}
        result["setup_s"] = sc.setup_s
        result["failures"], result["failure_sample"] = await sc.failures(result["process_id"])
        # Exactly once: what every gateway applied against what its rollout had to send.
        counters = await sc.counters()
        from domain.processes import repository as repo

        async with sc.ctx.sessions() as session:
            states = {t.gateway_id: t.state for t in (await session.scalars(
                repo.targets(result["process_id"], limit=100_000))).all()}
        wrong, repeated = 0, 0
        for i, gid in enumerate(sc.gateways):
            c = counters.get(gid) or {}
            m = demo_meter_count(i)
            want = {"install_certificates": 1, "write_meter_profile": m, "write_communication_profile": 1,
                    "write_evaluation_profile": 1}
            applied = c.get("applied_by_kind") or {}
            if any(v > want.get(k, 0) for k, v in applied.items()) or (
                    states.get(gid) == "succeeded" and applied != want):
                wrong += 1
            repeated += int(c.get("repeated") or 0)
        result["applied_not_as_expected"] = wrong
        result["repeated_answered_from_record"] = repeated
        client = await stack.clients.for_namespace(sc.ctx.namespace)
        sample = await activities_per_child(client, "profile_rollout", result["process_id"], [0, 1, 2, 3, 4, n - 1])
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
    from temporalio.client import Client

    from core.temporal import ensure_namespace

    ns = f"{PREFIX}floor{n}"
    root = await stack.clients.root()
    await ensure_namespace(root, ns, 1)
    plan_file = stack.work / f"floor-{n}.json"
    plan_file.write_text(json.dumps({"activities": plan}))
    child = spawn(f"floor-{n}", [sys.executable, str(Path(__file__).with_name("process_floor.py")), "--address",
                                 stack.temporal.address, "--namespace", ns, "--queue", "floor", "--plan",
                                 str(plan_file)], stack.env(), stack.work / "logs")
    sampler.watch("floor worker", child.pid)
    try:
        client = await Client.connect(stack.temporal.address, namespace=ns)
        await wait_pollers(client, ns, ["floor"], 120, {"floor worker": child})
        sampler.reset(("floor worker",))
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from process_floor import FloorInput

        clock = CpuClock()
        clock.start({"floor worker": (child.pid, False), "temporal": (stack.temporal.process.pid, False),
                     "postgres": (stack.pg.process.pid, True), "bench driver": (os.getpid(), False)})
        t0 = time.perf_counter()
        handle = await client.start_workflow("FloorParent", FloorInput(f"floor-{n}", n, concurrency),
                                             id=f"floor-{n}", task_queue="floor")
        complete = True
        try:
            done = await asyncio.wait_for(handle.result(), stack.max_wait_s or max(1800.0, n * 0.5))
        except TimeoutError:
            complete, done = False, await handle.query("progress")
        wall = time.perf_counter() - t0
        usage = clock.stop()
        return {"children": done, "complete": complete, "wall_s": round(wall, 1), "per_s": round(done / wall, 1),
                "activities_total": sum(plan), "peak_rss_mb": {"floor worker": mb(sampler.peak["floor worker"])},
                "rss_series_mb": {"floor worker": sampler.series.get("floor worker", [])}, **usage}
    finally:
        sampler.forget("floor worker")
        await asyncio.to_thread(child.stop, 30)


def expected_commissioning(index: int) -> dict[str, int]:
    """Commands a commissioning of demo gateway ``index`` sends (one TAF 7 order of the supplier)."""
    from core.ids import demo_meter_count

    m = demo_meter_count(index)
    return {"install_certificates": 1, "set_time": 1, "pair_meter": m, "write_meter_profile": m,
            "write_communication_profile": 1, "write_evaluation_profile": 1, "trigger_readout": 1}


async def commissioning(stack: Stack, sampler: Sampler, pki: Any, n: int, args: argparse.Namespace
                        ) -> dict[str, Any]:
    from operations import processes

    sc = Scenario(stack, sampler, pki, f"comm{n}", n, stack.work / "logs")
    log(f"commissioning {n}: provisioning")
    await sc.provision(installed=True)
    log(f"commissioning {n}: setup {sc.setup_s}; starting worker, head-end, simulator")
    try:
        he_port, he_inbound = await sc.start_gridgate()
        await sc.start_simulator(he_port, he_inbound, "--offline-pct", str(args.offline_pct), "--flaky-pct",
                                 str(args.flaky_pct))
        sampler.watch("simulator", sc.children["simulator"].pid)
        await sc.wait_pollers([QUEUE, "headend"])
        for k in ("worker", "headend", "simulator"):
            sampler.peak[k] = 0
        log(f"commissioning {n}: running")
        link = processes.LinkOptions(connect_timeout_s=args.connect_timeout, attempts=args.attempts)
        result = await sc.run_process("commissioning", {"first_readout": True}, args.concurrency, link,
                                      failure_threshold=0.5)
        result["peak_rss_mb"] = {k: mb(sampler.peak.get(k, 0)) for k in ("worker", "headend", "simulator")}
        result["setup_s"] = sc.setup_s
        result["link"] = {"connect_timeout_s": args.connect_timeout, "attempts": args.attempts}
        result["failures"], result["failure_sample"] = await sc.failures(result["process_id"])
        faults = await sc.faults()
        counters = await sc.counters()
        from domain.processes import repository as repo

        async with sc.ctx.sessions() as session:
            targets = {t.gateway_id: t for t in (await session.scalars(
                repo.targets(result["process_id"], limit=100_000))).all()}
        by_fault: dict[str, dict[str, int]] = {}
        twice, short, repeated = [], 0, 0
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


# --------------------------------------------------------------------------- report
def table(report: dict[str, Any]) -> str:
    lines = ["| measurement | " + " | ".join(str(r["gateways"]) for r in report["rollout"]) + " |",
             "|---|" + "---:|" * len(report["rollout"])]

    def row(label: str, fn: Any) -> None:
        vals = []
        for r in report["rollout"]:
            try:
                vals.append(str(fn(r)))
            except (KeyError, TypeError, ZeroDivisionError):
                vals.append("-")
        lines.append(f"| {label} | " + " | ".join(vals) + " |")

    lines.insert(0, f"Temporal store: {report.get('temporal_mode')}; worker: gridgate worker as committed\n")
    row("rollout: outcome", lambda r: f"{r['state']}, {r['counts'].get('succeeded', 0)} ok, "
                                      f"{r['counts'].get('failed', 0)} failed")
    row("rollout: wall time (s)", lambda r: r["wall_s"])
    row("rollout: gateways per second", lambda r: r["per_s"])
    row("rollout: activities per gateway workflow (1 / 2 meters)",
        lambda r: " / ".join(str(r["activities_by_meter_count"][k]) for k in sorted(r["activities_by_meter_count"])))
    row("rollout: peak RSS worker (MB)", lambda r: r["peak_rss_mb"]["worker"])
    row("rollout: peak RSS head-end (MB)", lambda r: r["peak_rss_mb"]["headend"])
    row("rollout: peak RSS simulator (MB)", lambda r: r["peak_rss_mb"]["simulator"])
    for proc in ("worker", "headend", "simulator", "temporal", "postgres", "bench driver"):
        row(f"rollout: CPU s {proc}", lambda r, p=proc: r["cpu_s"][p])
    row("rollout: CPU s other sessions on the machine", lambda r: r["others_cpu_s"])
    row("rollout: CPU ms per gateway (gridgate + Temporal + PG + simulator)",
        lambda r: round(1000 * sum(r["cpu_s"].values()) / r["gateways"], 1))
    row("rollout: commands applied not as expected / answered from record",
        lambda r: f"{r['applied_not_as_expected']} / {r['repeated_answered_from_record']}")
    row("floor: wall time (s)", lambda r: f"{r['floor']['wall_s']}" + ("" if r["floor"].get("complete", True)
                                                                      else f" (stopped at {r['floor']['children']})"))
    row("floor: workflows per second", lambda r: r["floor"]["per_s"])
    row("floor: peak RSS floor worker (MB)", lambda r: r["floor"]["peak_rss_mb"]["floor worker"])
    for proc in ("floor worker", "temporal", "postgres"):
        row(f"floor: CPU s {proc}", lambda r, p=proc: r["floor"]["cpu_s"][p])
    row("floor: CPU s other sessions on the machine", lambda r: r["floor"]["others_cpu_s"])
    row("rollout / floor (target <= 1.5)", lambda r: round(r["wall_s"] / r["floor"]["wall_s"], 2))
    row("load average before -> after rollout", lambda r: f"{r['load_before'][0]} -> {r['load_after'][0]}")
    row("setup: provision / TAF orders (s)", lambda r: f"{r['setup_s']['provision']} / {r['setup_s']['taf_orders']}")
    rs = report["rollout"]
    if not rs:  # commissioning only (--gateways ""): no empty rollout table
        del lines[1:]
    if len(rs) >= 2:
        a, b = rs[0]["peak_rss_mb"]["worker"], rs[-1]["peak_rss_mb"]["worker"]
        lines.append("")
        lines.append(f"worker peak RSS {rs[-1]['gateways']} vs {rs[0]['gateways']}: {b} / {a} MB = "
                     f"{b / a:.2f} (target <= 1.20)")
    c = report.get("commissioning")
    if c:
        title = f"commissioning of {c['gateways']} ({c['offline_pct']} % offline, {c['flaky_pct']} % flaky)"
        lines += ["", f"| {title} | |",
                  "|---|---:|",
                  f"| state | {c['state']} |",
                  f"| wall time (s) | {c['wall_s']} |",
                  f"| gateways per second | {c['per_s']} |",
                  f"| succeeded | {c['counts'].get('succeeded', 0)} |",
                  f"| failed by reason | {', '.join(f'{k} {v}' for k, v in sorted(c['failures'].items())) or '-'} |"]
        for reason, example in sorted(c.get("failure_sample", {}).items()):
            lines.append(f"| example {reason} | {example[:200].replace('|', '/')} |")
        for kind, outcomes in sorted(c["outcomes_by_fault"].items()):
            lines.append(f"| gateways {kind} | {', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))} |")
        lines += [f"| commands applied (simulator counters, all gateways) | {c['applied_total']} |",
                  f"| (gateway, command kind) applied more often than the workflow sends it | "
                  f"{c['applied_more_than_once']} |",
                  f"| succeeded gateways whose applied commands differ from the expected set | "
                  f"{c['succeeded_not_exactly_expected']} |",
                  f"| repeated commands answered from the gateway's record | {c['repeated_answered_from_record']} |",
                  f"| peak RSS worker / head-end / simulator (MB) | {c['peak_rss_mb']['worker']} / "
                  f"{c['peak_rss_mb']['headend']} / {c['peak_rss_mb']['simulator']} |",
                  "| CPU s worker / head-end / simulator / temporal / postgres | "
                  + " / ".join(str(c["cpu_s"][p]) for p in ("worker", "headend", "simulator", "temporal", "postgres"))
                  + " |",
                  f"| CPU s other sessions on the machine | {c['others_cpu_s']} |",
                  f"| load average before -> after | {c['load_before'][0]} -> {c['load_after'][0]} |"]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"date": dt.date.today().isoformat(), "cpus": os.cpu_count(), "cpu_model": model,
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "python": sys.version.split()[0],
            "load_at_start": [round(x, 2) for x in os.getloadavg()]}


def checkpoint(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """The report so far (``--json``), so a long run that is stopped keeps what it measured."""
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(x) for x in args.gateways.split(",") if x.strip()]
    pki = await asyncio.to_thread(ensure_pki, Path(args.pki), max([*sizes, args.commissioning, 1]))
    base = ROOT / "var" / "bench"
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="process-run-", dir=base))
    (work / "logs").mkdir()
    report: dict[str, Any] = {"machine": machine(), "concurrency": args.concurrency, "rollout": []}
    stack = Stack(work, args.temporal, args.max_wait_s,
                  dict(kv.split("=", 1) for kv in args.worker_env))
    report["temporal_mode"] = args.temporal
    report["worker_env"] = stack.worker_env
    sampler = Sampler()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    try:
        log(f"starting PostgreSQL and Temporal in {work}")
        await stack.start()
        if args.commissioning:
            c = await commissioning(stack, sampler, pki, args.commissioning, args)
            c.update(gateways=args.commissioning, offline_pct=args.offline_pct, flaky_pct=args.flaky_pct)
            report["commissioning"] = c
            log(f"commissioning: {c['state']} {c['counts']} in {c['wall_s']} s; failures {c['failures']}")
            checkpoint(args, report)
        for n in sizes:
            if not args.shared_temporal:
                await stack.fresh_temporal()
            r = await rollout(stack, sampler, pki, n, args)
            r["gateways"] = n
            log(f"rollout {n}: {r['state']} {r['counts']} in {r['wall_s']} s ({r['per_s']}/s), "
                f"peak RSS {r['peak_rss_mb']}, CPU {r['cpu_s']}")
            checkpoint(args, {**report, "rollout": [*report["rollout"], r]})
            if not args.skip_floor:
                from core.ids import demo_meter_count

                by_m = r["activities_by_meter_count"]
                plan = [by_m.get(demo_meter_count(i), max(by_m.values())) for i in range(n)]
                log(f"floor {n}: {sum(plan)} activities in {n} children")
                if not args.shared_temporal:
                    await stack.fresh_temporal()
                r["floor"] = await floor(stack, sampler, n, plan, args.concurrency)
                log(f"floor {n}: {r['floor']['wall_s']} s ({r['floor']['per_s']}/s), CPU {r['floor']['cpu_s']}")
            report["rollout"].append(r)
            checkpoint(args, report)
    finally:
        sampler.close()
        await stack.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gateways", default=os.environ.get("PROCBENCH_GATEWAYS", "200,1000"),
                   help="rollout sizes, comma-separated (the issue's: 1000,10000)")
    p.add_argument("--skip-floor", action="store_true", help="no Temporal floor run")
    p.add_argument("--shared-temporal", action="store_true",
                   help="one Temporal store for all phases (default: each rollout and floor starts on an empty one)")
    p.add_argument("--commissioning", type=int, default=int(os.environ.get("PROCBENCH_COMMISSIONING", "200")),
                   help="gateways to commission with offline/flaky ones (0: skip; the issue's: 1000)")
    p.add_argument("--offline-pct", type=float, default=10.0)
    p.add_argument("--flaky-pct", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=50, help="sliding window of the mass processes and the floor")
    p.add_argument("--connect-timeout", type=float, default=20.0, help="commissioning: wake-up + wait per attempt")
    p.add_argument("--attempts", type=int, default=3, help="commissioning: attempts per step")
    p.add_argument("--temporal", choices=("wal", "file", "memory"), default="wal",
                   help="Temporal dev server store: a fresh SQLite file in WAL mode with synchronous=normal "
                        "(default), the same file with SQLite's defaults (as gridgate.temporal starts it), or memory")
    p.add_argument("--max-wait-s", type=float, default=0,
                   help="stop waiting for a process after this long and report what was done (0: size-based)")
    p.add_argument("--pki", default=str(ROOT / "var" / "bench" / "process-pki"))
    p.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment of the gridgate worker (e.g. to compare allocator settings)")
    p.add_argument("--json", type=Path, help="write the full report here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    args = p.parse_args()
    raise_nofile()
    report = asyncio.run(bench(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report["machine"]))
    print(table(report))


if __name__ == "__main__":
    main()
