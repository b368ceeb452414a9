"""The tenant's cyclic processes as Temporal Schedules: created for every tenant the worker serves
(idempotent), changed by operators through the API and CLI (interval, pause, filter).

Temporal is the source of truth for a schedule's interval and pause state; every change made
through gridgate is also written to the tenant's audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.schedule_steps import ScheduledProcessInput
from core.errors import InvalidInput, NotFound
from workflows.meterdata_validation import NightlyValidationWorkflow, PendingValidationWorkflow
from workflows.scheduled import CrlRefreshWorkflow, ScheduledProcessWorkflow


@dataclass(frozen=True, kw_only=True)
class CyclicDefault:
    name: str
    interval: timedelta
    workflow: Callable[..., Awaitable[Any]]  # the workflow's run method
    process_type: str | None = None
    filter: str = "state = in_operation"


DEFAULTS = {d.name: d for d in [
    CyclicDefault(name="time_sync", interval=timedelta(hours=24), workflow=ScheduledProcessWorkflow.run,
                  process_type="time_sync"),
    CyclicDefault(name="logbook_readout", interval=timedelta(hours=24), workflow=ScheduledProcessWorkflow.run,
                  process_type="logbook_readout"),
    CyclicDefault(name="crl_refresh", interval=timedelta(hours=6), workflow=CrlRefreshWorkflow.run),
    CyclicDefault(name="vee_pending", interval=timedelta(minutes=1), workflow=PendingValidationWorkflow.run),
    CyclicDefault(name="vee_daily", interval=timedelta(hours=24), workflow=NightlyValidationWorkflow.run),
]}


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"


@dataclass(frozen=True)
class ScheduleInfo:
    name: str
    interval_s: int
    paused: bool
    note: str
    filter: str | None
    next_runs: list[datetime]
    recent_runs: list[str]


def _action(d: CyclicDefault, task_queue: str, filter_: str | None = None) -> ScheduleActionStartWorkflow:
    args = [] if d.process_type is None else [
        ScheduledProcessInput(schedule=d.name, process_type=d.process_type, filter=filter_ or d.filter)]
    return ScheduleActionStartWorkflow(d.workflow, args=args, id=f"schedule/{d.name}", task_queue=task_queue,
                                       execution_timeout=timedelta(days=7))


async def ensure(client: Client, task_queue: str) -> list[str]:
    """Create the tenant's cyclic schedules that do not exist yet. Returns the names created."""
    created = []
    for d in DEFAULTS.values():
        try:
            await client.create_schedule(d.name, Schedule(
                action=_action(d, task_queue),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=d.interval)]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=1)),
                state=ScheduleState(note="created with the tenant"),
            ))
            created.append(d.name)
        except ScheduleAlreadyRunningError:
            continue
    return created


def _known(name: str) -> CyclicDefault:
    if name not in DEFAULTS:
        raise ScheduleNotFound(f"no schedule {name!r}; one of {', '.join(DEFAULTS)}")
    return DEFAULTS[name]


async def describe(client: Client, name: str) -> ScheduleInfo:
    _known(name)
    try:
        desc = await client.get_schedule_handle(name).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ScheduleNotFound(f"schedule {name!r} does not exist (yet): is a worker serving the tenant?") from None
        raise
    spec = desc.schedule.spec
    every = spec.intervals[0].every if spec.intervals else timedelta(0)
    action = desc.schedule.action
    args = getattr(action, "args", None) or []
    flt = None
    if args:
        first = args[0]
        if isinstance(first, Payload):  # described actions carry raw (encrypted) payloads
            first = (await client.data_converter.decode([first], [ScheduledProcessInput]))[0]
        flt = getattr(first, "filter", None)
    return ScheduleInfo(
        name=name, interval_s=int(every.total_seconds()), paused=desc.schedule.state.paused,
        note=desc.schedule.state.note or "", filter=flt,
        next_runs=list(desc.info.next_action_times[:3]),
        recent_runs=[a.action.workflow_id for a in desc.info.recent_actions[-5:]
                     if hasattr(a.action, "workflow_id")],
    )


async def update(client: Client, task_queue: str, name: str, *, interval_s: int | None = None,
                 paused: bool | None = None, filter_: str | None = None, note: str = "") -> ScheduleInfo:
    d = _known(name)
    if interval_s is not None and not 60 <= interval_s <= 31 * 86400:
        raise InvalidInput("interval must be between 60 seconds and 31 days", code="invalid_interval")
    if filter_ is not None and d.process_type is None:
        raise InvalidInput(f"schedule {name} takes no filter", code="invalid_schedule_change")
    if filter_ is not None:
        from domain.filters.iterate import compile_gateway_filter

        compile_gateway_filter(filter_)  # 400 with the position when it does not parse

    def change(current: ScheduleUpdateInput) -> ScheduleUpdate:
        sched = current.description.schedule
        if interval_s is not None:
            sched.spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=interval_s))])
        if filter_ is not None:
            sched.action = _action(d, task_queue, filter_)
        if paused is not None:
            sched.state.paused = paused
            sched.state.note = note or ("paused" if paused else "resumed") + f" {datetime.now(UTC):%Y-%m-%d %H:%M}Z"
        return ScheduleUpdate(schedule=sched)

    await describe(client, name)
    await client.get_schedule_handle(name).update(change)
    return await describe(client, name)


async def trigger(client: Client, name: str) -> None:
    _known(name)
    await describe(client, name)
    await client.get_schedule_handle(name).trigger(overlap=ScheduleOverlapPolicy.SKIP)
