"""The tenant's cyclic processes (time sync, logbook readout, CRL refresh): list, change, run now."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ProcessWriter, StateDep, TenantReader
from domain.audit.repository import record
from operations import schedules

router = APIRouter(prefix="/api/v1/tenants/{tenant}/schedules", tags=["schedules"])


class ScheduleOut(BaseModel):
    name: str
    interval_s: int
    paused: bool
    note: str
    filter: str | None
    next_runs: list[datetime]
    recent_runs: list[str]


class ScheduleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_s: int | None = Field(default=None, ge=60, le=31 * 86400)
    paused: bool | None = None
    filter: str | None = Field(default=None, max_length=10_000, description="which gateways a run takes")
    note: str = Field(default="", max_length=500)


def _out(info: schedules.ScheduleInfo) -> ScheduleOut:
    return ScheduleOut(**info.__dict__)


@router.get("", response_model=list[ScheduleOut])
async def list_schedules(access: TenantReader) -> list[ScheduleOut]:
    client = await access.temporal_client()
    return [_out(await schedules.describe(client, name)) for name in schedules.DEFAULTS]


@router.patch("/{name}", response_model=ScheduleOut)
async def change(state: StateDep, access: ProcessWriter, name: str, body: ScheduleChange) -> ScheduleOut:
    client = await access.temporal_client()
    before = await schedules.describe(client, name)
    after = await schedules.update(client, state.settings.temporal_task_queue, name, interval_s=body.interval_s,
                                   paused=body.paused, filter_=body.filter, note=body.note)
    async with access.transaction() as session:
        record(session, "update", "schedule", name, {
            k: {"old": getattr(before, k), "new": getattr(after, k)}
            for k in ("interval_s", "paused", "filter") if getattr(before, k) != getattr(after, k)})
    return _out(after)


@router.post("/{name}/trigger", status_code=status.HTTP_202_ACCEPTED, response_model=ScheduleOut)
async def trigger(access: ProcessWriter, name: str) -> ScheduleOut:
    """Run the schedule's action now (skipped if a run is still going)."""
    client = await access.temporal_client()
    await schedules.trigger(client, name)
    async with access.transaction() as session:
        record(session, "trigger", "schedule", name, {})
    return _out(await schedules.describe(client, name))
