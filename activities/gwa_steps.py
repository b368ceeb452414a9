"""Domain steps of the GWA processes: what a process reads from and writes to the tenant's master
data between its gateway commands. Thin: the rules live in domain/, each step is idempotent."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.dialects.postgresql import insert
from temporalio import activity

from activities.runtime import TenantRuntime
from core.context import set_actor
from domain.communications.models import GatewayEvent
from domain.logbooks import repository as logbooks
from headend import contract as gc


@dataclass(frozen=True, kw_only=True)
class LogCursorInput:
    gateway_id: str
    log: str


@dataclass(frozen=True, kw_only=True)
class LogCursor:
    last_record: int | None


@dataclass(frozen=True, kw_only=True)
class StoreLogEntriesInput:
    gateway_id: str
    log: str
    process_id: str
    entries: tuple[gc.LogEntry, ...]


@dataclass(frozen=True, kw_only=True)
class StoredCount:
    stored: int


@dataclass(frozen=True, kw_only=True)
class GatewayEventInput:
    """An event gridgate itself raises about a gateway (e.g. a clock offset beyond limits)."""

    event_id: str  # deterministic (workflow id + step): a retried activity stores it once
    gateway_id: str
    code: str
    level: int
    text: str
    details: dict[str, str] = field(default_factory=dict)


class GwaSteps:
    def __init__(self, runtime: TenantRuntime) -> None:
        self.runtime = runtime

    def _session(self):  # type: ignore[no-untyped-def]
        set_actor("workflow:" + activity.info().workflow_id)
        return self.runtime.tenant.sessions()

    @activity.defn
    async def find_last_logbook_record(self, inp: LogCursorInput) -> LogCursor:
        async with self._session() as session:
            return LogCursor(last_record=await logbooks.last_record(session, inp.gateway_id, inp.log))

    @activity.defn
    async def store_logbook_entries(self, inp: StoreLogEntriesInput) -> StoredCount:
        rows = [{
            "gateway_id": inp.gateway_id, "log": inp.log, "record": e.record, "level": min(max(e.level, 1), 4),
            "outcome": 1 if e.outcome else 0, "at": dt.datetime.fromisoformat(e.time.replace("Z", "+00:00")),
            "text": e.text[:4000], "process_id": inp.process_id,
        } for e in inp.entries]
        async with self._session() as session, session.begin():
            return StoredCount(stored=await logbooks.store(session, rows))

    @activity.defn
    async def raise_gateway_event(self, inp: GatewayEventInput) -> None:
        text = inp.text + ("" if not inp.details else " " + ", ".join(f"{k}={v}" for k, v in inp.details.items()))
        async with self._session() as session, session.begin():
            await session.execute(insert(GatewayEvent).values(
                event_id=inp.event_id[:64], gateway_id=inp.gateway_id, code=inp.code, level=inp.level,
                occurred_at=dt.datetime.now(dt.UTC), text=text, node_id="gridgate",
            ).on_conflict_do_nothing(index_elements=["event_id"]))
