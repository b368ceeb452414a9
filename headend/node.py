"""One head-end node: the gateway listeners of every tenant, and the parts of the node put together
(docs/architecture.md, "Reaching a gateway"; docs/protocol.md is the wire contract):

* :class:`~headend.endpoints.Endpoints`: tenant endpoints, the tenant of a connection by SNI;
* :class:`~headend.admission.Admitter`: admission of a gateway-opened connection;
* :class:`~headend.registry.Registry`: the management connections held here;
* :class:`~headend.wakeup.Waker`: wake-ups; :class:`~headend.records.GatewayRecords`: master data;
* :class:`~headend.reception.Reception`: Notifies and events on inbound connections.

The node is what connections and the command activities talk to: it reaches a gateway (its
connection here, or a wake-up and a wait for one) and keeps the node's housekeeping going."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Coroutine
from typing import Any

import structlog

from headend.admission import Admission, Admitter
from headend.config import HeadendSettings
from headend.connection import HttpRequest, InboundConnection, ManagementConnection
from headend.endpoints import Endpoints, TenantEndpoint
from headend.errors import UnknownGateway, Unreachable
from headend.lookup import GatewayRecord
from headend.metrics import HeadendMetrics
from headend.reception import Reception
from headend.records import GatewayRecords
from headend.registry import Registry
from headend.store import HeadendStore, utcnow
from headend.throttle import Throttle
from headend.wakeup import UdpWakeupTransport, Waker, WakeupTransport
from pki import tls as pki_tls

log = structlog.get_logger("headend.node")

MAX_LIFETIME_S = pki_tls.MAX_SESSION_LIFETIME.total_seconds()


class HeadendNode:
    def __init__(self, settings: HeadendSettings, *, metrics: HeadendMetrics | None = None,
                 wakeup_transport: WakeupTransport | None = None) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self.metrics = metrics or HeadendMetrics()
        self.store = HeadendStore(self.node_id, settings.history_flush_s)
        self.registry: Registry[ManagementConnection] = Registry(self.store, self.metrics)
        self.throttle = Throttle(settings, self.metrics)
        self.wakeup_transport: WakeupTransport = wakeup_transport or UdpWakeupTransport(settings.wakeup_port)
        self.directory = Endpoints(settings.sni_suffix, settings.default_tenant)
        # Gateway records for admission and wake-up, briefly cached and coalesced per tenant.
        self.records = GatewayRecords(settings)
        self.admitter = Admitter(self.directory, self.records, self.metrics)
        self.waker = Waker(settings, self.directory, self.throttle, self.store, self.metrics, self.wakeup_transport)
        self.reception = Reception(settings, self.store, self.metrics)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self.started_at = utcnow()
        self.bound: tuple[str, int, int] = (settings.host, settings.port, settings.inbound_port)

    # ------------------------------------------------------------------ tenants
    @property
    def endpoints(self) -> dict[str, TenantEndpoint]:
        """The tenants served, by name."""
        return self.directory.by_name

    def add_endpoint(self, ep: TenantEndpoint) -> None:
        self.directory.add(ep)
        self.store.attach(ep.context)

    def base_ssl_context(self) -> ssl.SSLContext:
        return self.directory.base_context()

    # ------------------------------------------------------------------ servers
    async def start_servers(self) -> tuple[int, int]:
        """Open the management and inbound listeners; returns the bound ports."""
        loop = asyncio.get_running_loop()
        s = self.settings
        mgmt = await loop.create_server(lambda: ManagementConnection(self), s.host, s.port, backlog=4096,
                                        reuse_address=True)
        inbound = await loop.create_server(lambda: InboundConnection(self), s.host, s.inbound_port, backlog=1024,
                                           reuse_address=True)
        self._servers = [mgmt, inbound]
        port = mgmt.sockets[0].getsockname()[1]
        inbound_port = inbound.sockets[0].getsockname()[1]
        self.bound = (s.host, port, inbound_port)
        log.info("headend.listening", host=s.host, port=port, inbound_port=inbound_port, node=self.node_id)
        return port, inbound_port

    @property
    def serving(self) -> bool:
        """The listeners are open."""
        return bool(self._servers)

    @property
    def contact_uri(self) -> str:
        host, _, inbound_port = self.bound
        return self.settings.contact(host, inbound_port)

    async def stop_servers(self) -> None:
        for srv in self._servers:
            srv.close()
        for conn in self.registry.connections():
            conn.close()
        for srv in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(srv.wait_closed(), 2)
        for task in list(self._tasks):
            task.cancel()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ connections (ConnectionHost)
    # Plain functions handing on the component's coroutine: no second coroutine per call.
    def admit(self, tls: asyncio.Transport, kind: str, peer: str) -> Coroutine[Any, Any, Admission | None]:
        return self.admitter.admit(tls, kind, peer)

    def handle_inbound(self, a: Admission, peer: str,
                       req: HttpRequest) -> Coroutine[Any, Any, tuple[int, list[tuple[str, str]], bytes]]:
        return self.reception.handle(a, peer, req)

    # ------------------------------------------------------------------ reaching a gateway
    async def gateway(self, tenant: str, gateway_id: str) -> GatewayRecord:
        record = await self.records.get(self.directory.by_name[tenant], gateway_id)
        if record is None:
            raise UnknownGateway(f"gateway {gateway_id} is not in tenant {tenant}'s master data")
        return record

    def forget_gateway(self, tenant: str, gateway_id: str) -> None:
        """Drop the cached record of the gateway (its certificates changed): its next connection is
        admitted against fresh store data."""
        self.records.forget(tenant, gateway_id)

    async def wake(self, tenant: str, record: GatewayRecord, priority: int) -> None:
        """Send the gateway one wake-up (throttled by priority). Raises UnknownGateway, Unreachable."""
        await self.waker.wake(tenant, record, priority)

    async def connection(self, tenant: str, gateway_id: str, *, priority: int, timeout: float,
                         wake: bool = True) -> tuple[ManagementConnection, bool]:
        """This node's management connection of the gateway, waking it if needed and waiting up to
        ``timeout``. Returns (connection, woken). Raises Unreachable."""
        conn = self.registry.get(tenant, gateway_id)
        if conn is not None:
            return conn, False
        if not wake:
            raise Unreachable(f"gateway {gateway_id} is not connected to node {self.node_id}")
        record = await self.gateway(tenant, gateway_id)
        deadline = time.monotonic() + timeout
        woken = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await self.wake(tenant, record, priority)
            woken = True
            remaining = deadline - time.monotonic()
            conn = await self.registry.wait(tenant, gateway_id, min(self.settings.wakeup_retry_s, max(0.0, remaining)))
            if conn is not None:
                return conn, woken
        self.metrics.wakeups.labels(tenant=tenant, outcome="unanswered").inc()
        raise Unreachable(f"gateway {gateway_id} did not connect within {timeout:.0f}s of its wake-up")

    # ------------------------------------------------------------------ housekeeping
    async def housekeeping(self, stop: asyncio.Event) -> None:
        """Heartbeats per tenant, idle/lifetime sweeps."""
        next_beat = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.settings.heartbeat_s
                for ep in list(self.endpoints.values()):
                    try:
                        await self.store.heartbeat(ep.context, self.started_at, self.contact_uri)
                    except Exception as err:
                        log.warning("headend.heartbeat_failed", tenant=ep.name, error=repr(err)[:200])
                # Validation runs inline on the event loop (a thread hop per handshake costs more
                # than the check); keep the CRLs it needs fresh from a thread, so no handshake
                # waits for a CRL download.
                for ep in list(self.endpoints.values()):
                    self.spawn(asyncio.to_thread(ep.validator.validate, ep.identity.tls_cert, "tls"))
            closed = self.registry.sweep(self.settings.idle_timeout_s, MAX_LIFETIME_S)
            if closed:
                log.info("headend.idle_connections_closed", count=closed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
