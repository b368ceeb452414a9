"""The head-end process (``gridgate headend``): one :class:`~headend.node.HeadendNode`, tenant
discovery (a tenant is served once its GWA identity is in the certificate store), per-tenant
Temporal workers on ``headend`` and ``headend-<node_id>``, Prometheus metrics, batched writes.

The activities those workers run are not the head-end's own (they adapt it for workflows, a layer
above): the entry point hands them in as :data:`ActivitiesFor` (``gridgate.cli.headend``)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from temporalio.worker import Worker

from core.config import Settings
from core.db import Databases
from core.procs import pin_mmap_threshold
from core.temporal_clients import TemporalClients
from domain.tenancy.service import TenantContext, context_for, list_tenants
from headend.config import HeadendSettings
from headend.identity import IdentitySource, StoreIdentitySource
from headend.node import HeadendNode
from headend.tenants import build_endpoint, refresh_validator

log = structlog.get_logger("headend.service")


# What one tenant's workers on this node run: task queue -> activities.
ActivitiesFor = Callable[[HeadendNode, TenantContext], Mapping[str, Sequence[Callable[..., Any]]]]


@dataclass
class HeadendService:
    settings: Settings
    hsettings: HeadendSettings
    dbs: Databases
    temporal: TemporalClients | None
    identity_source: IdentitySource
    activities_for: ActivitiesFor | None = None
    node: HeadendNode = field(init=False)
    workers: dict[str, list[tuple[Worker, asyncio.Task[None]]]] = field(default_factory=dict)
    _missing: set[str] = field(default_factory=set)
    _validator_refresh: float = 0.0

    def __post_init__(self) -> None:
        self.node = HeadendNode(self.hsettings)
        self.ready = asyncio.Event()

    async def sync_tenants(self) -> None:
        async with self.dbs.control_sessions() as session:
            tenants = await list_tenants(session)
        for tenant in tenants:
            if tenant.name in self.node.endpoints:
                continue
            await self.add_tenant(context_for(self.dbs, tenant))
        loop = asyncio.get_running_loop()
        if loop.time() > self._validator_refresh:
            self._validator_refresh = loop.time() + 60
            for ep in list(self.node.endpoints.values()):
                with suppress(Exception):
                    await refresh_validator(ep)

    async def add_tenant(self, ctx: TenantContext) -> bool:
        node = self.node
        try:
            ep = await build_endpoint(ctx, self.identity_source, node.node_id)
        except Exception as err:
            if ctx.name not in self._missing:
                self._missing.add(ctx.name)
                log.info("headend.tenant_waiting_for_identity", tenant=ctx.name, reason=str(err)[:200])
            return False
        self._missing.discard(ctx.name)
        node.add_endpoint(ep)
        dropped = await node.store.forget_node_connections(ctx)
        await node.store.heartbeat(ctx, node.started_at, node.contact_uri)
        if self.temporal is not None and self.activities_for is not None:
            await self._start_workers(ctx, self.temporal, self.activities_for)
        log.info("headend.tenant_served", tenant=ctx.name, sni=f"{ctx.name}.{self.hsettings.sni_suffix}",
                 stale_rows_dropped=dropped)
        return True

    async def _start_workers(self, ctx: TenantContext, temporal: TemporalClients,
                             activities_for: ActivitiesFor) -> None:
        client = await temporal.for_namespace(ctx.namespace)
        started = []
        queues = activities_for(self.node, ctx)
        for queue, activities in queues.items():
            worker = Worker(client, task_queue=queue, activities=list(activities),
                            max_concurrent_activities=max(100, self.hsettings.tenant_max_sessions),
                            graceful_shutdown_timeout=timedelta(seconds=5))
            started.append((worker, asyncio.create_task(worker.run(), name=f"headend-{ctx.name}-{queue}")))
        self.workers[ctx.name] = started
        log.info("headend.workers_started", tenant=ctx.name, namespace=ctx.namespace,
                 task_queues=sorted(queues))

    async def run(self, stop: asyncio.Event) -> None:
        node = self.node
        tasks = [asyncio.create_task(node.store.run(stop)), asyncio.create_task(node.housekeeping(stop))]
        try:
            while not stop.is_set():
                await self.sync_tenants()
                if node.endpoints and not node.serving:
                    await node.start_servers()
                    for ep in node.endpoints.values():
                        await node.store.heartbeat(ep.context, node.started_at, node.contact_uri)
                    self.ready.set()
                for name, pairs in self.workers.items():
                    for _, task in pairs:
                        if task.done() and not task.cancelled() and task.exception() is not None:
                            log.error("headend.worker_failed", tenant=name, error=repr(task.exception()))
                            raise SystemExit(1)
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.hsettings.tenant_poll_s)
        finally:
            log.info("headend.stopping", node=node.node_id)
            await asyncio.gather(*(w.shutdown() for pairs in self.workers.values() for w, _ in pairs),
                                 return_exceptions=True)
            await node.stop_servers()
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await node.store.flush()


async def run(settings: Settings, hsettings: HeadendSettings, activities_for: ActivitiesFor,
              stop: asyncio.Event | None = None) -> None:
    from core.logging import configure_logging

    configure_logging(hsettings.log_level or settings.log_level, settings.log_format)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    dbs = Databases(settings)
    service = HeadendService(settings, hsettings, dbs, TemporalClients(settings.temporal_address, settings),
                             StoreIdentitySource(settings), activities_for)
    if hsettings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(hsettings.metrics_port, addr=hsettings.host, registry=service.node.metrics.registry)
    log.info("headend.starting", node=hsettings.node_id, port=hsettings.port, inbound_port=hsettings.inbound_port,
             temporal=settings.temporal_address)
    try:
        await service.run(stop)
    finally:
        await dbs.dispose()


def main(settings: Settings, hsettings: HeadendSettings, activities_for: ActivitiesFor) -> None:
    pin_mmap_threshold()  # idle sessions: docs/architecture.md (head-end admission)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(run(settings, hsettings, activities_for))
    else:
        uvloop.run(run(settings, hsettings, activities_for))
