"""The connection registry of one node: which gateway holds a management connection here, since
when, last activity. In memory for speed, mirrored into the tenant database (``gateway_connections``,
via :class:`~headend.store.HeadendStore`) so other nodes can find it. A newer connection of the same
gateway replaces the older one; a dropped connection is removed at once."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Generic, Protocol, TypeVar

import structlog

from headend.admission import Admission
from headend.metrics import HeadendMetrics
from headend.store import HeadendStore

log = structlog.get_logger("headend.registry")


class Registrable(Protocol):
    """What the registry needs of a connection (:class:`~headend.connection.ManagementConnection`)."""

    @property
    def admission(self) -> Admission | None: ...
    @property
    def transport(self) -> asyncio.Transport | None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def peer(self) -> str: ...
    @property
    def opened(self) -> float: ...  # time.monotonic()
    @property
    def last_activity(self) -> float: ...  # time.monotonic()
    @property
    def busy(self) -> bool: ...  # a request is outstanding

    def close(self) -> None: ...


C = TypeVar("C", bound=Registrable)


class Registry(Generic[C]):
    def __init__(self, store: HeadendStore, metrics: HeadendMetrics) -> None:
        self.store = store
        self.metrics = metrics
        self._conns: dict[tuple[str, str], C] = {}
        self._waiters: dict[tuple[str, str], list[asyncio.Future[C]]] = {}
        self._started: dict[int, dt.datetime] = {}

    def __len__(self) -> int:
        return len(self._conns)

    def get(self, tenant: str, gateway_id: str) -> C | None:
        conn = self._conns.get((tenant, gateway_id))
        if conn is not None and (conn.closed or conn.transport is None or conn.transport.is_closing()):
            return None
        return conn

    def connections(self) -> list[C]:
        return list(self._conns.values())

    def add(self, conn: C) -> None:
        a = conn.admission
        assert a is not None
        key = (a.tenant.name, a.gateway_id)
        old = self._conns.get(key)
        if old is not None and old is not conn:
            log.info("headend.connection_replaced", tenant=key[0], gateway=key[1], old_peer=old.peer, peer=conn.peer)
            self._conns.pop(key, None)
            old.close()
        else:
            self.metrics.connections.labels(tenant=key[0]).inc()
        self._conns[key] = conn
        started = dt.datetime.now(dt.UTC)
        self._started[id(conn)] = started
        self.store.connected(key[0], key[1], started, conn.peer, a.serial)
        for fut in self._waiters.pop(key, []):
            if not fut.done():
                fut.set_result(conn)

    def remove(self, conn: C) -> None:
        a = conn.admission
        if a is None:
            return
        key = (a.tenant.name, a.gateway_id)
        started = self._started.pop(id(conn), None)
        if self._conns.get(key) is conn:
            del self._conns[key]
            self.metrics.connections.labels(tenant=key[0]).dec()
            if started is not None:
                self.store.disconnected(key[0], key[1], started)
            log.debug("headend.connection_closed", tenant=key[0], gateway=key[1], peer=conn.peer,
                      seconds=round(time.monotonic() - conn.opened, 1))

    def touch(self, conn: C) -> None:
        a = conn.admission
        if a is not None:
            self.store.activity(a.tenant.name, a.gateway_id, dt.datetime.now(dt.UTC))

    async def wait(self, tenant: str, gateway_id: str, timeout: float) -> C | None:
        """The gateway's connection on this node, waiting up to ``timeout`` for one to arrive."""
        conn = self.get(tenant, gateway_id)
        if conn is not None or timeout <= 0:
            return conn
        fut: asyncio.Future[C] = asyncio.get_running_loop().create_future()
        key = (tenant, gateway_id)
        self._waiters.setdefault(key, []).append(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(key)
            if waiters and fut in waiters:
                waiters.remove(fut)
                if not waiters:
                    del self._waiters[key]

    def sweep(self, idle_timeout_s: float, max_lifetime_s: float) -> int:
        """Close connections idle too long or older than the TLS session lifetime (48 h)."""
        now = time.monotonic()
        closed = 0
        for conn in list(self._conns.values()):
            if conn.busy:
                continue
            if (idle_timeout_s > 0 and now - conn.last_activity > idle_timeout_s) or now - conn.opened > max_lifetime_s:
                conn.close()
                closed += 1
        return closed
