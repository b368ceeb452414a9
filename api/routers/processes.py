"""Processes: start one for gateways or a filter, watch its progress and outcomes, steer it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.deps import ProcessWriter, StateDep, TenantAccess, TenantReader
from api.schemas import Page
from domain.processes import repository as repo
from domain.processes import service
from domain.processes.models import Process
from domain.processes.types import TYPES
from operations import processes

router = APIRouter(prefix="/api/v1/tenants/{tenant}/processes", tags=["processes"])


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gateway_ids: list[str] | None = Field(default=None, max_length=service.MAX_TARGETS)
    filter: str | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def _one(self) -> TargetIn:
        if (self.gateway_ids is None) == (self.filter is None):
            raise ValueError("give exactly one of gateway_ids or filter")
        return self


class OptionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    concurrency: int = Field(default=50, ge=1, le=5000, description="gateways in flight at once")
    failure_threshold: float = Field(default=0.2, gt=0, le=1, description="pause when this share fails")
    failure_min_samples: int = Field(default=20, ge=1, description="... after at least this many finished")
    skip_busy: bool = Field(default=False, description="leave out gateways held by another process")
    connect_timeout_s: float = Field(default=120, ge=1, le=3600, description="wake-up + wait per attempt")
    attempts: int = Field(default=4, ge=1, le=20, description="attempts per step on retryable errors")
    starts_per_run: int = Field(default=1000, ge=1, le=10_000,
                                description="gateway workflows per run of the mass workflow before it continues "
                                            "as new (bounds its history)")


class ProcessStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(description=", ".join(TYPES))
    target: TargetIn
    params: dict[str, Any] = Field(default_factory=dict)
    reason: str = Field(min_length=1, max_length=2000)
    options: OptionsIn = Field(default_factory=OptionsIn)


class Counts(BaseModel):
    total: int
    pending: int
    running: int
    succeeded: int
    failed: int
    cancelled: int


class ProcessOut(BaseModel):
    id: str
    type: str
    state: str
    pause_reason: str | None
    initiator: str
    reason: str
    params: dict[str, Any]
    target: dict[str, Any]
    counts: Counts
    concurrency: int
    workflow_id: str
    started_at: datetime
    finished_at: datetime | None
    status_url: str


class TargetOut(BaseModel):
    seq: int
    gateway_id: str
    state: str
    workflow_id: str | None
    error_type: str | None
    error_message: str | None
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None


def _out(tenant: str, p: Process, counts: dict[str, int]) -> ProcessOut:
    target: dict[str, Any] = {"kind": p.target_kind, "total": p.total}
    if p.target_kind == "filter":
        target["filter"] = p.target_text
    if p.retry_of:
        target["retry_of"] = p.retry_of
    c = Counts(total=p.total, **{k: counts.get(k, 0) for k in ("pending", "running", "succeeded", "failed",
                                                             "cancelled")})
    return ProcessOut(id=p.id, type=p.type, state=p.state, pause_reason=p.pause_reason, initiator=p.initiator,
                      reason=p.reason, params=p.params, target=target, counts=c, concurrency=p.concurrency,
                      workflow_id=p.workflow_id, started_at=p.started_at, finished_at=p.finished_at,
                      status_url=f"/api/v1/tenants/{tenant}/processes/{p.id}")


def _initiator(access: TenantAccess) -> processes.Initiator:
    return processes.Initiator(username=access.caller.username, ref=f"user#{access.caller.user_id}")


def _options(o: OptionsIn) -> tuple[service.StartOptions, processes.LinkOptions]:
    return (service.StartOptions(concurrency=o.concurrency, failure_threshold=o.failure_threshold,
                                 failure_min_samples=o.failure_min_samples, skip_busy=o.skip_busy),
            processes.LinkOptions(connect_timeout_s=o.connect_timeout_s, attempts=o.attempts,
                                  starts_per_run=o.starts_per_run))


@router.post("", response_model=ProcessOut, status_code=status.HTTP_202_ACCEPTED)
async def start(state: StateDep, access: ProcessWriter, body: ProcessStart) -> ProcessOut:
    """Start a process for explicit gateways or a filter. The target set is frozen now; 202 with
    the process id and the number of targets. Everything that can be refused is refused before
    anything starts."""
    options, link = _options(body.options)
    target = service.Target(gateway_ids=body.target.gateway_ids, filter=body.target.filter)
    process = await processes.start(
        access.tenant, await access.temporal_client(), state.settings.temporal_task_queue, body.type, target,
        body.params, body.reason, _initiator(access), options, link)
    return _out(access.tenant.name, process, {"pending": process.total})


@router.get("", response_model=Page[ProcessOut])
async def list_processes(
    access: TenantReader,
    type: Annotated[str | None, Query(description="process type")] = None,
    state: Annotated[Literal["running", "paused", "completed", "failed", "cancelled"] | None, Query()] = None,
    before: Annotated[str | None, Query(description="`next_after` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[ProcessOut]:
    """Newest first."""
    async with access.transaction() as session:
        rows = (await session.scalars(repo.listing(type_=type, state=state, before=before, limit=limit))).all()
        counts = await repo.counts_of(session, [p.id for p in rows])
    items = [_out(access.tenant.name, p, counts[p.id]) for p in rows]
    return Page(items=items, next_after=items[-1].id if len(items) == limit else None)


@router.get("/{process_id}", response_model=ProcessOut)
async def get(access: TenantReader, process_id: str) -> ProcessOut:
    process, counts = await processes.counts(access.tenant, process_id, await access.temporal_client())
    return _out(access.tenant.name, process, counts)


@router.get("/{process_id}/targets", response_model=Page[TargetOut])
async def targets(
    access: TenantReader, process_id: str,
    state: Annotated[Literal["pending", "running", "succeeded", "failed", "cancelled"] | None, Query()] = None,
    after: Annotated[int, Query(ge=0, description="`next_after` of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[TargetOut]:
    """Per-gateway outcomes with failure reasons, in processing order."""
    async with access.transaction() as session:
        await service.get(session, process_id)
        rows = (await session.scalars(repo.targets(process_id, state=state, after=after, limit=limit))).all()
    items = [TargetOut.model_validate(r, from_attributes=True) for r in rows]
    return Page(items=items, next_after=str(items[-1].seq) if len(items) == limit else None)


class SteerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=2000)


async def _steer(access: TenantAccess, process_id: str, action: str, reason: str | None = None) -> ProcessOut:
    await processes.steer(access.tenant, await access.temporal_client(), process_id, action, reason)
    process, counts = await processes.counts(access.tenant, process_id)
    return _out(access.tenant.name, process, counts)


@router.post("/{process_id}/pause", response_model=ProcessOut, status_code=status.HTTP_202_ACCEPTED)
async def pause(access: ProcessWriter, process_id: str, body: SteerIn | None = None) -> ProcessOut:
    """Stop starting gateways; the ones in flight finish."""
    return await _steer(access, process_id, "pause", body.reason if body else None)


@router.post("/{process_id}/resume", response_model=ProcessOut, status_code=status.HTTP_202_ACCEPTED)
async def resume(access: ProcessWriter, process_id: str) -> ProcessOut:
    return await _steer(access, process_id, "resume")


@router.post("/{process_id}/cancel", response_model=ProcessOut, status_code=status.HTTP_202_ACCEPTED)
async def cancel(access: ProcessWriter, process_id: str) -> ProcessOut:
    """Cancel the gateways in flight and every pending one."""
    return await _steer(access, process_id, "cancel")


class RetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)
    options: OptionsIn = Field(default_factory=OptionsIn)


@router.post("/{process_id}/retry-failed", response_model=ProcessOut, status_code=status.HTTP_202_ACCEPTED)
async def retry_failed(state: StateDep, access: ProcessWriter, process_id: str, body: RetryIn) -> ProcessOut:
    """A new process of the same type and params over the gateways that failed in this one."""
    options, link = _options(body.options)
    process = await processes.retry_failed(
        access.tenant, await access.temporal_client(), state.settings.temporal_task_queue, process_id, body.reason,
        _initiator(access), options, link)
    return _out(access.tenant.name, process, {"pending": process.total})
