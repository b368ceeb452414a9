"""Domain steps of the GWA processes: what a process reads from and writes to the tenant's master
data between its gateway commands. Thin: the rules live in domain/, each step is idempotent."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import activity

from activities.steps_common import Steps
from domain.communications import service as communications
from domain.logbooks import repository as logbooks
from domain.logbooks import service as logbook
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


class GwaSteps(Steps):
    @activity.defn
    async def find_last_logbook_record(self, inp: LogCursorInput) -> LogCursor:
        async with self._session() as session:
            return LogCursor(last_record=await logbooks.last_record(session, inp.gateway_id, inp.log))

    @activity.defn
    async def store_logbook_entries(self, inp: StoreLogEntriesInput) -> StoredCount:
        entries = [logbook.ReadEntry(e.record, e.level, e.outcome, e.time, e.text) for e in inp.entries]
        async with self._session() as session, session.begin():
            stored = await logbook.store_read_entries(session, inp.gateway_id, inp.log, inp.process_id, entries)
        return StoredCount(stored=stored)

    @activity.defn
    async def raise_gateway_event(self, inp: GatewayEventInput) -> None:
        async with self._session() as session, session.begin():
            await communications.raise_gateway_event(session, event_id=inp.event_id, gateway_id=inp.gateway_id,
                                                     code=inp.code, level=inp.level, text=inp.text,
                                                     details=inp.details)
