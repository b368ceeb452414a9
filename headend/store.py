"""Everything the head-end writes to tenant databases, in batches: the connection registry rows,
node heartbeats, communication history and gateway events. Writes are queued per tenant and
flushed every ``history_flush_s`` in one transaction, in the order they were queued, so a burst of
1,000 connections costs a few statements, not 1,000 transactions."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

import structlog
from sqlalchemy import Table, and_, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import CursorResult

from domain.communications.models import GatewayCommunication, GatewayConnection, GatewayEvent, HeadendNode
from domain.tenancy.service import TenantContext

log = structlog.get_logger("headend.store")

Op = tuple[str, Any]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class HeadendStore:
    def __init__(self, node_id: str, flush_s: float) -> None:
        self.node_id = node_id
        self.flush_s = flush_s
        self._queues: dict[str, list[Op]] = defaultdict(list)
        self._tenants: dict[str, TenantContext] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def attach(self, tenant: TenantContext) -> None:
        self._tenants[tenant.name] = tenant

    # ---------------------------------------------------------------- queueing
    def connected(self, tenant: str, gateway_id: str, connected_at: dt.datetime, peer: str, serial: str) -> None:
        self._queues[tenant].append(("connect", dict(gateway_id=gateway_id, node_id=self.node_id,
                                                     connected_at=connected_at, last_activity_at=connected_at,
                                                     peer=peer[:64], certificate_serial=serial[:80])))

    def disconnected(self, tenant: str, gateway_id: str, connected_at: dt.datetime) -> None:
        self._queues[tenant].append(("disconnect", (gateway_id, connected_at)))

    def activity(self, tenant: str, gateway_id: str, at: dt.datetime) -> None:
        self._queues[tenant].append(("activity", (gateway_id, at)))

    def communication(self, tenant: str, **row: Any) -> None:
        row.setdefault("node_id", self.node_id)
        row.setdefault("at", utcnow())
        self._queues[tenant].append(("history", row))

    # ---------------------------------------------------------------- direct writes
    async def store_events(self, tenant: TenantContext, rows: Sequence[dict[str, Any]]) -> int:
        """Insert events at once (the gateway is acknowledged only after they are stored);
        duplicates by event_id are ignored. Returns the number of new rows."""
        if not rows:
            return 0
        async with tenant.sessions() as session, session.begin():
            stmt = insert(GatewayEvent).values([{**r, "node_id": self.node_id} for r in rows])
            result = await session.execute(stmt.on_conflict_do_nothing(index_elements=["event_id"])
                                           .returning(GatewayEvent.id))
            return len(result.all())

    async def heartbeat(self, tenant: TenantContext, started_at: dt.datetime, contact_uri: str) -> None:
        async with tenant.sessions() as session, session.begin():
            stmt = insert(HeadendNode).values(node_id=self.node_id, started_at=started_at, heartbeat_at=utcnow(),
                                              contact_uri=contact_uri)
            await session.execute(stmt.on_conflict_do_update(
                index_elements=["node_id"],
                set_={"heartbeat_at": stmt.excluded.heartbeat_at, "started_at": stmt.excluded.started_at,
                      "contact_uri": stmt.excluded.contact_uri}))

    async def forget_node_connections(self, tenant: TenantContext) -> int:
        """At start: rows this node left behind in a previous life are stale."""
        async with tenant.sessions() as session, session.begin():
            # A DELETE's result is a CursorResult (the one with a row count).
            result = cast(CursorResult[Any], await session.execute(
                delete(GatewayConnection).where(GatewayConnection.node_id == self.node_id)))
            return int(result.rowcount or 0)

    async def locate(self, tenant: TenantContext, gateway_id: str, stale_s: float) -> str | None:
        """The node holding a live connection of ``gateway_id`` (heartbeat fresh), if any."""
        cutoff = utcnow() - dt.timedelta(seconds=stale_s)
        async with tenant.sessions() as session:
            return await session.scalar(
                select(GatewayConnection.node_id)
                .join(HeadendNode, HeadendNode.node_id == GatewayConnection.node_id)
                .where(GatewayConnection.gateway_id == gateway_id, HeadendNode.heartbeat_at >= cutoff,
                       GatewayConnection.connected_at >= HeadendNode.started_at))

    # ---------------------------------------------------------------- flushing
    def kick(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            self._wake.clear()
            await self.flush()
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            for name in list(self._queues):
                ops = self._queues.pop(name, [])
                tenant = self._tenants.get(name)
                if not ops or tenant is None:
                    continue
                try:
                    await self._write(tenant, ops)
                except Exception as err:
                    log.error("headend.store_flush_failed", tenant=name, ops=len(ops), error=repr(err)[:300])

    async def _write(self, tenant: TenantContext, ops: list[Op]) -> None:
        async with tenant.sessions() as session, session.begin():
            i = 0
            while i < len(ops):
                kind = ops[i][0]
                j = i
                while j < len(ops) and ops[j][0] == kind:
                    j += 1
                batch = [payload for _, payload in ops[i:j]]
                if kind == "history":
                    await session.execute(insert(GatewayCommunication), batch)
                elif kind == "connect":
                    latest: dict[str, dict[str, Any]] = {r["gateway_id"]: r for r in batch}
                    stmt = insert(GatewayConnection)
                    await session.execute(stmt.on_conflict_do_update(
                        index_elements=["gateway_id"],
                        set_={c: stmt.excluded[c] for c in ("node_id", "connected_at", "last_activity_at", "peer",
                                                            "certificate_serial")}),
                        list(latest.values()))
                elif kind == "disconnect":
                    t = cast(Table, GatewayConnection.__table__)
                    await session.execute(
                        delete(t).where(and_(t.c.gateway_id == bindparam("gid"), t.c.node_id == self.node_id,
                                             t.c.connected_at == bindparam("since"))),
                        [{"gid": g, "since": at} for g, at in batch])
                elif kind == "activity":
                    last: dict[str, dt.datetime] = {}
                    for gateway_id, at in batch:
                        last[gateway_id] = at
                    t = cast(Table, GatewayConnection.__table__)
                    await session.execute(
                        update(t).where(and_(t.c.gateway_id == bindparam("gid"), t.c.node_id == self.node_id))
                        .values(last_activity_at=bindparam("at")),
                        [{"gid": g, "at": at} for g, at in last.items()])
                i = j
