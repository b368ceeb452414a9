"""What every phase of the process bench runs on: embedded PostgreSQL, the Temporal dev server,
the bench's settings, databases and Temporal clients, and the environment of gridgate's processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr
from sqlalchemy import make_url

from bench.process.procs import Child, check_alive
from core.config import Settings
from core.db import Databases
from core.pg import EmbeddedPostgres
from core.procs import free_port
from core.temporal import TemporalDevServer
from core.temporal_clients import TemporalClients

if TYPE_CHECKING:
    from temporalio.client import Client

    from domain.tenancy.service import TenantContext

QUEUE = "gridgate"
PREFIX = "pb-"


class BenchTemporal(TemporalDevServer):
    """The dev server with the store of ``--temporal``: ``wal`` (the SQLite file in WAL mode with
    synchronous=normal), ``file`` (SQLite's defaults, as gridgate starts it) or ``memory``."""

    def __init__(self, db_file: Path, mode: str) -> None:
        super().__init__(db_file, port=free_port(), ui_port=free_port(), headless=True)
        self.mode = mode

    def command(self) -> list[str]:
        cmd = super().command()
        if self.mode == "memory":
            i = cmd.index("--db-filename")
            del cmd[i:i + 2]
        elif self.mode == "wal":
            cmd += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
        return cmd


class Stack:
    """Embedded PostgreSQL + Temporal dev server + the bench's settings, databases and clients.

    Built here, started by ``start`` and stopped by ``stop`` (also when ``start`` failed half-way)."""

    def __init__(self, work: Path, temporal_mode: str = "wal", max_wait_s: float = 0,
                 worker_env: dict[str, str] | None = None) -> None:
        self.work = work
        self.worker_env = worker_env or {}
        self.temporal_mode = temporal_mode
        self.max_wait_s = max_wait_s
        self.master_key = secrets.token_urlsafe(40)
        self.secret_key = secrets.token_urlsafe(40)
        self.pg = EmbeddedPostgres(work / "pg", free_port())
        self.temporal = BenchTemporal(work / "temporal" / "temporal.db", temporal_mode)
        self.database_url = make_url(self.pg.url).set(database="gridgate_bench").render_as_string(hide_password=False)
        os.environ["GRIDGATE_MASTER_KEY"] = self.master_key
        os.environ["GRIDGATE_SECRET_KEY"] = self.secret_key
        self.settings = Settings(database_url=self.database_url, temporal_address=self.temporal.address,
                                 temporal_namespace_prefix=PREFIX, var_dir=work / "var", log_format="json",
                                 log_level="warning", master_key=SecretStr(self.master_key),
                                 secret_key=SecretStr(self.secret_key))
        self.dbs = Databases(self.settings)
        self.clients = TemporalClients(self.settings.temporal_address, self.settings)

    async def start(self) -> None:
        from operations.bootstrap import migrate_everything

        await asyncio.to_thread(self.pg.start)
        await asyncio.to_thread(self.temporal.start)
        await migrate_everything(self.dbs)

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
        """The environment of a gridgate process on this stack (none of this process's GRIDGATE_*)."""
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDGATE_")}
        env.update(GRIDGATE_DATABASE_URL=self.database_url, GRIDGATE_TEMPORAL_ADDRESS=s.temporal_address,
                   GRIDGATE_TEMPORAL_NAMESPACE_PREFIX=PREFIX, GRIDGATE_VAR_DIR=str(s.var_dir),
                   GRIDGATE_MASTER_KEY=self.master_key, GRIDGATE_SECRET_KEY=self.secret_key,
                   GRIDGATE_LOG_LEVEL="warning", GRIDGATE_LOG_FORMAT="json", **extra)
        return env

    def cpu_procs(self) -> dict[str, tuple[int, bool]]:
        """The stack's processes and this one, for ``CpuClock`` (PostgreSQL with its backends)."""
        assert self.temporal.process is not None and self.pg.process is not None, "Stack.start() first"
        return {"temporal": (self.temporal.process.pid, False), "postgres": (self.pg.process.pid, True),
                "bench driver": (os.getpid(), False)}

    async def tenant(self, name: str) -> TenantContext:
        from domain.tenancy.service import context_for
        from operations.tenants import create_tenant

        tenant = await create_tenant(self.dbs, self.settings, await self.clients.root(), name)
        return context_for(self.dbs, tenant)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.dbs.dispose()
        self.temporal.stop()
        self.pg.stop()


async def wait_pollers(client: Client, namespace: str, queues: list[str], timeout: float,
                       children: dict[str, Child] | None = None) -> None:
    """Until a worker polls the activity task queue of each of ``queues`` (SystemExit when one of
    ``children`` exits meanwhile or after ``timeout`` seconds)."""
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
            check_alive(children or {})
            if time.monotonic() > deadline:
                raise SystemExit(f"no worker polls task queue {queue} after {timeout:.0f}s")
            await asyncio.sleep(0.5)
