"""Activities of the cyclic processes: freezing a scheduled mass process, refreshing revocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from temporalio import activity

from activities.runtime import TenantRuntime
from core.context import set_actor
from core.errors import GridgateError
from domain.certificates.service import refresh_revocation
from domain.processes import service
from domain.processes.types import process_type

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ScheduledProcessInput:
    schedule: str
    process_type: str
    filter: str
    params: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 50


@dataclass(frozen=True)
class ScheduledStart:
    """``process_id`` None: nothing to do this time (``why`` says what)."""

    process_id: str | None
    total: int = 0
    workflow_type: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 0
    failure_threshold: float = 0.0
    failure_min_samples: int = 0
    why: str = ""


@dataclass(frozen=True)
class RevocationSummary:
    refreshed: int
    failed: dict[str, str]
    revoked: int
    good: int


class ScheduleSteps:
    def __init__(self, runtime: TenantRuntime) -> None:
        self.runtime = runtime

    @activity.defn(name="freeze_scheduled_process")
    async def freeze(self, inp: ScheduledProcessInput) -> ScheduledStart:
        """Store the scheduled run's process and targets. Gateways held by another process are left
        out (they are served next time); an empty target is not an error for a schedule."""
        set_actor(f"schedule:{inp.schedule}")
        options = service.StartOptions(concurrency=inp.concurrency, skip_busy=True)
        try:
            async with self.runtime.tenant.sessions() as session, session.begin():
                process = await service.start(session, inp.process_type, service.Target(filter=inp.filter),
                                              inp.params, f"scheduled {inp.schedule}", f"schedule:{inp.schedule}",
                                              options)
        except GridgateError as err:
            if err.code in ("empty_target", "gateway_busy"):
                return ScheduledStart(None, why=err.message)
            raise
        return ScheduledStart(process.id, process.total, process_type(inp.process_type).workflow,
                              dict(process.params), process.concurrency, process.failure_threshold,
                              process.failure_min_samples)

    @activity.defn(name="refresh_certificate_revocation")
    async def refresh(self) -> RevocationSummary:
        set_actor("schedule:crl_refresh")
        async with self.runtime.tenant.sessions() as session, session.begin():
            run = await refresh_revocation(session, self.runtime.tenant)
        return RevocationSummary(len(run.refreshed), run.failed, run.revoked, run.good)

    def all(self) -> list[object]:
        return [self.freeze, self.refresh]
