"""``gridgate up``: start every piece of gridgate in order, supervise, stop cleanly.

Order: embedded PostgreSQL (unless GRIDGATE_DATABASE_URL), Temporal dev server (unless
GRIDGATE_TEMPORAL_EMBEDDED=false), migrations, demo tenant, then the application processes (API,
worker, test CA, head-end, simulator: ``gridgate.apps``). Infrastructure that dies stops everything; an application
process that dies is restarted with back-off, up to ``MAX_RESTARTS`` within ``RESTART_WINDOW``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
import structlog

from core.config import Settings
from core.db import Databases, control_url
from core.errors import GridgateError
from core.pg import EmbeddedPostgres
from core.procs import die_with_parent, port_in_use
from core.temporal import TemporalDevServer
from core.temporal_clients import TemporalClients
from gridgate import apps
from gridgate.apps import AppProcess
from operations.bootstrap import DemoInfo, ensure_demo, migrate_everything

log = structlog.get_logger("gridgate.supervisor")

MAX_RESTARTS = 5
RESTART_WINDOW = 300.0


class PortInUse(GridgateError):
    code = "port_in_use"


@dataclass
class Plan:
    settings: Settings
    embedded_pg: bool
    embedded_temporal: bool
    apps: list[AppProcess]


def check_ports(plan: Plan) -> None:
    s = plan.settings
    wanted: list[tuple[str, int, str, str]] = []
    if plan.embedded_pg:
        wanted.append(("127.0.0.1", s.embedded_pg_port, "embedded PostgreSQL", "GRIDGATE_EMBEDDED_PG_PORT"))
    if plan.embedded_temporal:
        host, port = s.temporal_address.rsplit(":", 1)
        wanted.append((host, int(port), "Temporal gRPC", "GRIDGATE_TEMPORAL_ADDRESS"))
        wanted.append((host, s.temporal_ui_port, "Temporal UI", "GRIDGATE_TEMPORAL_UI_PORT"))
    for app in plan.apps:
        for app_host, app_port, setting in app.ports:
            wanted.append((app_host, app_port, app.name, setting))
    busy = [w for w in wanted if port_in_use(w[0], w[1])]
    if busy:
        lines = [f"port {port} on {host} ({what}) is already in use; stop what holds it or set {setting}"
                 for host, port, what, setting in busy]
        raise PortInUse("; ".join(lines))


class Supervisor:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.settings = plan.settings
        self.var = self.settings.var_dir.resolve()
        self.pg: EmbeddedPostgres | None = None
        self.temporal: TemporalDevServer | None = None
        self.stopping = False
        self.child_env = dict(os.environ)

    # -- start ---------------------------------------------------------------------------------
    def start_infrastructure(self) -> None:
        self.var.mkdir(parents=True, exist_ok=True)
        s = self.settings
        if self.plan.embedded_pg:
            self.pg = EmbeddedPostgres(self.var / "pg", s.embedded_pg_port)
            self.pg.start()
            log.info("supervisor.started", child="postgres", pid=self.pg.process.pid if self.pg.process else None,
                     port=s.embedded_pg_port)
        url = control_url(s).set(drivername="postgresql").render_as_string(hide_password=False)
        self.child_env["GRIDGATE_DATABASE_URL"] = url
        if self.plan.embedded_temporal:
            host, port = s.temporal_address.rsplit(":", 1)
            self.temporal = TemporalDevServer(
                self.var / "temporal" / "temporal.db", ip=host, port=int(port), ui_port=s.temporal_ui_port,
                codec_endpoint=f"http://{s.api_host}:{s.api_port}/api/v1/codec")
            self.temporal.start()
            log.info("supervisor.started", child="temporal",
                     pid=self.temporal.process.pid if self.temporal.process else None, address=s.temporal_address)
        self.child_env["GRIDGATE_TEMPORAL_ADDRESS"] = s.temporal_address
        self.child_env["GRIDGATE_VAR_DIR"] = str(self.var)

    def bootstrap(self) -> DemoInfo:
        settings = self.settings.model_copy(update={"database_url": self.child_env["GRIDGATE_DATABASE_URL"]})

        async def go() -> DemoInfo:
            dbs = Databases(settings)
            try:
                tenants = await migrate_everything(dbs)
                log.info("supervisor.migrated", tenants=tenants)
                demo = await ensure_demo(settings, dbs, TemporalClients(settings.temporal_address, settings))
                await apps.prepare(settings, dbs)
                return demo
            finally:
                await dbs.dispose()

        return asyncio.run(go())

    def after_ready(self) -> None:
        """Work that needs every process up (the demo rollout). A failure is logged, not fatal:
        everything else runs, and the operator can start it by hand."""
        settings = self.settings.model_copy(update={"database_url": self.child_env["GRIDGATE_DATABASE_URL"]})

        async def go() -> None:
            dbs = Databases(settings)
            try:
                await apps.after_ready(settings, dbs)
            finally:
                await dbs.dispose()

        try:
            asyncio.run(go())
        except Exception as err:
            log.warning("supervisor.after_ready_failed", error=f"{type(err).__name__}: {err}"[:500])

    def spawn(self, app: AppProcess) -> None:
        app.process = subprocess.Popen(
            [sys.executable, "-m", "gridgate", *app.args], env=self.child_env, start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        log.info("supervisor.started", child=app.name, pid=app.process.pid)

    def wait_ready(self, timeout: float = 90.0) -> bool:
        url = f"http://{self.settings.api_host}:{self.settings.api_port}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if self._check_children() is not None:
                return False
            time.sleep(0.3)
        return False

    def write_runfile(self) -> None:
        pids: dict[str, int | None] = {"supervisor": os.getpid()}
        if self.pg and self.pg.process:
            pids["postgres"] = self.pg.process.pid
        if self.temporal and self.temporal.process:
            pids["temporal"] = self.temporal.process.pid
        for app in self.plan.apps:
            pids[app.name] = app.process.pid if app.process else None
        run_dir = self.var / "run"
        run_dir.mkdir(exist_ok=True)
        (run_dir / "up.json").write_text(json.dumps({"pids": pids}, indent=2))

    # -- supervise -----------------------------------------------------------------------------
    def _check_children(self) -> str | None:
        """Restart dead application children; returns a reason when everything must stop."""
        for name, server in (("postgres", self.pg), ("temporal", self.temporal)):
            proc = server.process if server else None
            if proc is not None and proc.poll() is not None:
                return f"{name} exited with code {proc.returncode}"
        now = time.monotonic()
        for app in self.plan.apps:
            if app.process is None or app.process.poll() is None:
                continue
            code = app.process.returncode
            app.restarts = [t for t in app.restarts if now - t < RESTART_WINDOW]
            if len(app.restarts) >= MAX_RESTARTS:
                return f"{app.name} exited with code {code} {MAX_RESTARTS} times within {RESTART_WINDOW:.0f}s"
            delay = min(2 ** len(app.restarts), 30)
            log.warning("supervisor.child_died", child=app.name, code=code, restart_in_s=delay)
            app.restarts.append(now)
            time.sleep(delay)
            if not self.stopping:
                self.spawn(app)
                self.write_runfile()
        return None

    def loop(self) -> int:
        while not self.stopping:
            reason = self._check_children()
            if reason:
                log.error("supervisor.giving_up", reason=reason)
                return 1
            time.sleep(0.5)
        return 0

    # -- stop ----------------------------------------------------------------------------------
    def stop_all(self) -> None:
        self.stopping = True
        for app in reversed(self.plan.apps):
            if app.process and app.process.poll() is None:
                app.process.send_signal(signal.SIGTERM)
        for app in reversed(self.plan.apps):
            if app.process is None:
                continue
            try:
                app.process.wait(20)
            except subprocess.TimeoutExpired:
                log.warning("supervisor.killing", child=app.name)
                app.process.kill()
                app.process.wait(5)
            log.info("supervisor.stopped", child=app.name, code=app.process.returncode)
        if self.temporal:
            self.temporal.stop()
            log.info("supervisor.stopped", child="temporal")
        if self.pg:
            self.pg.stop()
            log.info("supervisor.stopped", child="postgres")
        runfile = self.var / "run" / "up.json"
        runfile.unlink(missing_ok=True)


def banner(settings: Settings, demo: DemoInfo, embedded_pg: bool) -> str:
    api = f"http://{settings.api_host}:{settings.api_port}"
    ui_host = settings.temporal_address.rsplit(":", 1)[0]
    pg = f"127.0.0.1:{settings.embedded_pg_port} (data in {settings.var_dir / 'pg'})" if embedded_pg else "external"
    if demo.password:
        login = f"{demo.username} / {demo.password}   <- printed only this once"
    else:
        login = f"{demo.username} (password was printed at first start; `gridgate user reset-password {demo.username}`)"
    rows = [
        ("API", api),
        ("OpenAPI docs", f"{api}/docs"),
        ("Temporal UI", f"http://{ui_host}:{settings.temporal_ui_port}"),
        ("Temporal gRPC", settings.temporal_address),
        ("PostgreSQL", pg),
        ("Demo tenant", f"{demo.tenant}  (namespace {settings.temporal_namespace_prefix}{demo.tenant})"),
        ("Login", login),
    ]
    rows += apps.banner_rows(settings)
    width = max(len(r[0]) for r in rows)
    lines = ["", "gridgate is up.", *[f"  {k.ljust(width)}  {v}" for k, v in rows], "Press Ctrl-C to stop.", ""]
    return "\n".join(lines)


def run_up(settings: Settings) -> int:
    plan = Plan(settings=settings, embedded_pg=settings.database_url is None,
                embedded_temporal=settings.temporal_embedded, apps=apps.default_apps(settings))
    check_ports(plan)
    sup = Supervisor(plan)

    def on_signal(signum: int, _frame: object) -> None:
        if sup.stopping:
            return
        log.info("supervisor.signal", signal=signal.Signals(signum).name)
        sup.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        sup.start_infrastructure()
        demo = sup.bootstrap()
        for app in plan.apps:
            sup.spawn(app)
        sup.write_runfile()
        if sup.wait_ready():
            sup.after_ready()
            print(banner(settings, demo, plan.embedded_pg), flush=True)
            code = sup.loop()
        elif not sup.stopping:
            log.error("supervisor.not_ready", hint="see the log lines above")
            code = 1
    finally:
        sup.stop_all()
    return code
