"""Activities of the cyclic processes: freezing a scheduled mass process, refreshing revocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from temporalio import activity

from activities.runtime import TenantRuntime
from core.context import set_actor
from domain.certificates.service import refresh_revocation
from domain.processes import service

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class ScheduledProcessInput:
    schedule: str
    process_type: str
    filter: str
    params: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 50


@dataclass(frozen=True, kw_only=True)
class ScheduledStart:
    """``process_id`` None: nothing to do this time (``why`` says what)."""

    process_id: str | None
    total: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 0
    failure_threshold: float = 0.0
    failure_min_samples: int = 0
    why: str = ""


@dataclass(frozen=True, kw_only=True)
class RevocationSummary:
    refreshed: int
    failed: dict[str, str]
    revoked: int
    good: int


class ScheduleSteps:
    def __init__(self, runtime: TenantRuntime) -> None:
        self.runtime = runtime

    @activity.defn
    async def freeze_scheduled_process(self, inp: ScheduledProcessInput) -> ScheduledStart:
        """Store the scheduled run's process and targets; nothing to do this time is no error."""
        set_actor(f"schedule:{inp.schedule}")
        async with self.runtime.tenant.sessions() as session, session.begin():
            run = await service.start_scheduled(session, inp.schedule, inp.process_type, inp.filter, inp.params,
                                                inp.concurrency)
        process = run.process
        if process is None:
            return ScheduledStart(process_id=None, why=run.why)
        return ScheduledStart(process_id=process.id, total=process.total, params=dict(process.params),
                              concurrency=process.concurrency, failure_threshold=process.failure_threshold,
                              failure_min_samples=process.failure_min_samples)

    @activity.defn
    async def refresh_certificate_revocation(self) -> RevocationSummary:
        set_actor("schedule:crl_refresh")
        async with self.runtime.tenant.sessions() as session, session.begin():
            run = await refresh_revocation(session, self.runtime.tenant)
        return RevocationSummary(refreshed=len(run.refreshed), failed=run.failed, revoked=run.revoked, good=run.good)
