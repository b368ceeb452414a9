"""Bookkeeping activities of processes: targets, outcomes and process state in the tenant database.

Each is idempotent: state guards make a retried call a no-op.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities.runtime import TenantRuntime
from activities.steps_common import workflow_session
from domain.processes import repository as repo
from domain.processes import service


@dataclass(frozen=True, kw_only=True)
class NextTargetsInput:
    process_id: str
    after_seq: int
    limit: int


@dataclass(frozen=True, kw_only=True)
class TargetRef:
    seq: int
    gateway_id: str


@dataclass(frozen=True, kw_only=True)
class NextTargetsResult:
    targets: list[TargetRef]


@dataclass(frozen=True, kw_only=True)
class TargetRunningInput:
    process_id: str
    seq: int
    workflow_id: str


@dataclass(frozen=True, kw_only=True)
class TargetFinishedInput:
    process_id: str
    seq: int
    outcome: str  # succeeded | failed | cancelled
    error_type: str | None = None
    error_message: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ProcessStateInput:
    process_id: str
    state: str
    pause_reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class CancelPendingInput:
    process_id: str
    # Targets whose workflows never reported back after being cancelled (also marked cancelled).
    unreported: list[int] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class CountResult:
    count: int


class ProcessActivities:
    def __init__(self, runtime: TenantRuntime) -> None:
        self.runtime = runtime

    def _session(self) -> AsyncSession:
        return workflow_session(self.runtime)

    @activity.defn
    async def next_process_targets(self, inp: NextTargetsInput) -> NextTargetsResult:
        async with self._session() as session:
            rows = await repo.next_pending(session, inp.process_id, inp.after_seq, inp.limit)
        return NextTargetsResult(targets=[TargetRef(seq=s, gateway_id=g) for s, g in rows])

    @activity.defn
    async def mark_target_running(self, inp: TargetRunningInput) -> None:
        async with self._session() as session, session.begin():
            await repo.mark_running(session, inp.process_id, inp.seq, inp.workflow_id, dt.datetime.now(dt.UTC))

    @activity.defn
    async def record_gateway_outcome(self, inp: TargetFinishedInput) -> None:
        async with self._session() as session, session.begin():
            await repo.mark_finished(session, inp.process_id, inp.seq, inp.outcome, dt.datetime.now(dt.UTC),
                                     error_type=inp.error_type, error_message=(inp.error_message or "")[:2000] or None,
                                     result=inp.result or None)

    @activity.defn
    async def set_process_state(self, inp: ProcessStateInput) -> None:
        async with self._session() as session, session.begin():
            await service.set_state(session, inp.process_id, inp.state, pause_reason=inp.pause_reason)

    @activity.defn
    async def cancel_pending_targets(self, inp: CancelPendingInput) -> CountResult:
        async with self._session() as session, session.begin():
            return CountResult(count=await repo.cancel_pending(session, inp.process_id, dt.datetime.now(dt.UTC),
                                                               also_running=inp.unreported))
