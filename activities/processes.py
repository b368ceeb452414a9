"""Bookkeeping activities of processes: targets, outcomes and process state in the tenant database.

Each is idempotent: state guards make a retried call a no-op.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity

from activities.runtime import TenantRuntime
from core.context import set_actor
from domain.processes import repository as repo
from domain.processes import service


@dataclass(frozen=True)
class NextTargetsInput:
    process_id: str
    after_seq: int
    limit: int


@dataclass(frozen=True)
class TargetRef:
    seq: int
    gateway_id: str


@dataclass(frozen=True)
class NextTargetsResult:
    targets: list[TargetRef]


@dataclass(frozen=True)
class TargetRunningInput:
    process_id: str
    seq: int
    workflow_id: str


@dataclass(frozen=True)
class TargetFinishedInput:
    process_id: str
    seq: int
    outcome: str  # succeeded | failed | cancelled
    error_type: str | None = None
    error_message: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessStateInput:
    process_id: str
    state: str
    pause_reason: str | None = None


@dataclass(frozen=True)
class CancelPendingInput:
    process_id: str
    # Targets whose workflows never reported back after being cancelled (also marked cancelled).
    unreported: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class CountResult:
    count: int


class ProcessActivities:
    def __init__(self, runtime: TenantRuntime) -> None:
        self.runtime = runtime

    def _session(self):  # type: ignore[no-untyped-def]
        set_actor("workflow:" + activity.info().workflow_id)
        return self.runtime.tenant.sessions()

    @activity.defn(name="next_process_targets")
    async def next_targets(self, inp: NextTargetsInput) -> NextTargetsResult:
        async with self._session() as session:
            rows = await repo.next_pending(session, inp.process_id, inp.after_seq, inp.limit)
        return NextTargetsResult([TargetRef(s, g) for s, g in rows])

    @activity.defn(name="mark_target_running")
    async def mark_running(self, inp: TargetRunningInput) -> None:
        async with self._session() as session, session.begin():
            await repo.mark_running(session, inp.process_id, inp.seq, inp.workflow_id, dt.datetime.now(dt.UTC))

    @activity.defn(name="record_gateway_outcome")
    async def mark_finished(self, inp: TargetFinishedInput) -> None:
        async with self._session() as session, session.begin():
            await repo.mark_finished(session, inp.process_id, inp.seq, inp.outcome, dt.datetime.now(dt.UTC),
                                     error_type=inp.error_type, error_message=(inp.error_message or "")[:2000] or None,
                                     result=inp.result or None)

    @activity.defn(name="set_process_state")
    async def set_state(self, inp: ProcessStateInput) -> None:
        async with self._session() as session, session.begin():
            await service.set_state(session, inp.process_id, inp.state, pause_reason=inp.pause_reason)

    @activity.defn(name="cancel_pending_targets")
    async def cancel_pending(self, inp: CancelPendingInput) -> CountResult:
        async with self._session() as session, session.begin():
            return CountResult(await repo.cancel_pending(session, inp.process_id, dt.datetime.now(dt.UTC),
                                                         also_running=inp.unreported))

    def all(self) -> list[Any]:
        return [self.next_targets, self.mark_running, self.mark_finished, self.set_state, self.cancel_pending]
