"""The gridgate worker: one Temporal worker per tenant namespace, activities bound to that tenant.

New tenants are picked up while running (the registry is polled). Run with ``gridgate worker``.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import suppress
from datetime import timedelta

import structlog
from temporalio.worker import Worker

from activities.registry import activities_for
from activities.runtime import TenantRuntime
from core.config import Settings, get_settings
from core.db import Databases
from core.logging import configure_logging
from core.procs import trim_heap
from core.temporal_clients import TemporalClients
from domain.tenancy.service import context_for, list_tenants
from operations import schedules
from workflows.registry import WORKFLOWS, workflow_runner

log = structlog.get_logger("gridgate.worker")


class TenantWorkers:
    """Starts a worker for each registered tenant and keeps the set current."""

    def __init__(self, settings: Settings, dbs: Databases, clients: TemporalClients) -> None:
        self.settings = settings
        self.dbs = dbs
        self.clients = clients
        self.workers: dict[str, tuple[Worker, asyncio.Task[None]]] = {}

    async def sync(self) -> None:
        async with self.dbs.control_sessions() as session:
            tenants = await list_tenants(session)
        for tenant in tenants:
            if tenant.name in self.workers:
                continue
            ctx = context_for(self.dbs, tenant)
            client = await self.clients.for_namespace(tenant.namespace)
            runtime = TenantRuntime(settings=self.settings, dbs=self.dbs, tenant=ctx)
            worker = Worker(
                client,
                task_queue=self.settings.temporal_task_queue,
                workflows=WORKFLOWS,
                workflow_runner=workflow_runner(),
                activities=activities_for(runtime),
                max_concurrent_activities=self.settings.worker_max_concurrent_activities,
                graceful_shutdown_timeout=timedelta(seconds=10),
            )
            self.workers[tenant.name] = (worker, asyncio.create_task(worker.run(), name=f"worker-{tenant.name}"))
            created = await schedules.ensure(client, self.settings.temporal_task_queue)
            if created:
                log.info("worker.schedules_created", tenant=tenant.name, schedules=created)
            log.info("worker.tenant_started", tenant=tenant.name, namespace=tenant.namespace,
                     task_queue=self.settings.temporal_task_queue)

    def failed(self) -> list[str]:
        return [name for name, (_, task) in self.workers.items() if task.done()]

    async def shutdown(self) -> None:
        await asyncio.gather(*(w.shutdown() for w, _ in self.workers.values()), return_exceptions=True)
        for _, task in self.workers.values():
            with suppress(BaseException):
                await task


async def run(settings: Settings | None = None, stop: asyncio.Event | None = None) -> None:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    dbs = Databases(settings)
    clients = TemporalClients(settings.temporal_address, settings)
    workers = TenantWorkers(settings, dbs, clients)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    log.info("worker.starting", temporal=settings.temporal_address)
    trimming = asyncio.create_task(_trim_heap_every(settings.worker_malloc_trim_seconds), name="malloc-trim")
    try:
        while not stop.is_set():
            await workers.sync()
            dead = workers.failed()
            if dead:
                for name in dead:
                    _, task = workers.workers[name]
                    log.error("worker.tenant_failed", tenant=name, error=repr(task.exception()))
                raise SystemExit(1)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.worker_tenant_poll_seconds)
    finally:
        log.info("worker.stopping")
        trimming.cancel()
        await workers.shutdown()
        await dbs.dispose()


async def _trim_heap_every(seconds: float) -> None:
    """Return free heap pages to the kernel now and then (docs/operations.md, worker memory)."""
    if seconds <= 0:
        return
    while True:
        await asyncio.sleep(seconds)
        trim_heap()


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
