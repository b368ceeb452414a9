"""Starting processes (validation and frozen targets) and the state changes of their bookkeeping.

Everything that can be refused is refused here, before a workflow starts: unknown type, invalid
params, empty or oversize target, unknown gateways, gateways in the wrong lifecycle state, and
gateways already held by another active process (``gateway_busy``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, GridgateError, InvalidInput, NotFound
from core.ids import InvalidId, parse_device_id
from domain.audit.repository import record
from domain.devices.models import Gateway
from domain.filters.iterate import compile_gateway_filter
from domain.processes import repository as repo
from domain.processes.ids import mass_workflow_id
from domain.processes.models import Process
from domain.processes.types import ProcessType, process_type, validate_params
from domain.tariffs.prechecks import PRECHECKS

MAX_TARGETS = 200_000


class ProcessNotFound(NotFound):
    code = "process_not_found"


class GatewayBusy(Conflict):
    code = "gateway_busy"


class WrongLifecycleState(Conflict):
    code = "wrong_lifecycle_state"


class ProcessStateConflict(Conflict):
    code = "process_state_conflict"


@dataclass(frozen=True)
class Target:
    gateway_ids: list[str] | None = None
    filter: str | None = None
    retry_of: str | None = None

    @property
    def kind(self) -> str:
        return "gateways" if self.gateway_ids is not None else "filter" if self.filter is not None else "retry"


@dataclass(frozen=True)
class StartOptions:
    concurrency: int = 50
    failure_threshold: float = 0.2
    failure_min_samples: int = 20
    skip_busy: bool = False
    max_targets: int = MAX_TARGETS


def new_process_id(now: dt.datetime) -> str:
    return f"p-{now:%Y%m%d}-{secrets.token_hex(5)}"


async def _condition(session: AsyncSession, target: Target) -> ColumnElement[bool]:
    if target.gateway_ids is not None:
        if not target.gateway_ids:
            raise InvalidInput("the target names no gateway", code="empty_target")
        if len(target.gateway_ids) > MAX_TARGETS:
            raise InvalidInput(f"at most {MAX_TARGETS} gateways per process", code="target_too_large")
        ids: list[str] = []
        bad: list[str] = []
        for raw in target.gateway_ids:
            try:
                ids.append(str(parse_device_id(str(raw), gateway=True)))
            except InvalidId:
                bad.append(str(raw))
        if bad:
            raise InvalidInput(f"{len(bad)} invalid gateway ID(s), e.g. {bad[0]!r}", code="invalid_gateway_id",
                               details={"invalid": bad[:20]})
        unique = sorted(set(ids))
        known = set((await session.scalars(select(Gateway.device_id).where(Gateway.device_id.in_(unique)))).all())
        unknown = [g for g in unique if g not in known]
        if unknown:
            raise InvalidInput(f"{len(unknown)} unknown gateway(s), e.g. {unknown[0]}", code="unknown_gateways",
                               details={"unknown": unknown[:20]})
        return Gateway.device_id.in_(unique)
    if target.filter is not None:
        if not target.filter.strip():
            raise InvalidInput("the filter is empty; name the gateways you mean", code="empty_target")
        return compile_gateway_filter(target.filter)
    assert target.retry_of is not None
    return repo.failed_of(target.retry_of)


async def start(
    session: AsyncSession,
    type_name: str,
    target: Target,
    params: dict[str, Any] | None,
    reason: str,
    initiator: str,
    options: StartOptions = StartOptions(),
) -> Process:
    """Validate everything and store the process with its frozen target set (not yet running)."""
    ptype = process_type(type_name)
    clean = validate_params(ptype, params)
    if not reason or len(reason.strip()) < 3:
        raise InvalidInput("say why this process runs (reason, at least 3 characters)", code="reason_required")
    if not 1 <= options.concurrency <= 5000:
        raise InvalidInput("concurrency must be between 1 and 5000", code="invalid_concurrency")
    if not 0 < options.failure_threshold <= 1:
        raise InvalidInput("failure_threshold must be in (0, 1]", code="invalid_failure_threshold")
    cond = await _condition(session, target)
    matched = await repo.count_matching(session, cond)
    if matched == 0:
        what = "the filter" if target.kind == "filter" else "the target"
        raise InvalidInput(f"{what} matches no gateway", code="empty_target")
    if matched > options.max_targets:
        raise InvalidInput(f"{matched} gateways match; at most {options.max_targets} per process",
                           code="target_too_large", details={"matched": matched})
    if ptype.single_gateway_only and matched != 1:
        raise InvalidInput(f"{ptype.name} runs for exactly one gateway ({matched} given)", code="single_gateway_only")
    _check_states(ptype, *await repo.ineligible_sample(session, cond, ptype.eligible_states))
    check = PRECHECKS.get(ptype.name)  # what the params name must exist in master data
    if check is not None:
        await check(session, cond, clean)
    if not options.skip_busy:
        busy, sample = await repo.busy_sample(session, cond)
        if busy:
            raise GatewayBusy(f"{busy} gateway(s) are held by another active process, e.g. {sample[0]['gateway']} "
                              f"by {sample[0]['process']}; wait, cancel it, or start with skip_busy",
                              details={"busy": busy, "sample": sample})

    now = dt.datetime.now(dt.UTC)
    pid = new_process_id(now)
    process = Process(
        id=pid, type=ptype.name, state="running", initiator=initiator, reason=reason.strip(), params=clean,
        target_kind=target.kind, target_text=target.filter if target.kind == "filter" else target.retry_of,
        retry_of=target.retry_of, total=0, concurrency=options.concurrency,
        failure_threshold=options.failure_threshold, failure_min_samples=options.failure_min_samples,
        workflow_id=mass_workflow_id(pid), started_at=now,
    )
    session.add(process)
    await session.flush()
    try:
        async with session.begin_nested():
            total = await repo.freeze_targets(session, pid, cond, skip_busy=options.skip_busy)
    except IntegrityError:
        # Another process took one of these gateways between our check and the insert.
        raise GatewayBusy("a gateway of the target was taken by another process just now; try again") from None
    if total == 0:
        raise GatewayBusy("every matching gateway is held by another active process", details={"busy": matched})
    process.total = total
    record(session, "start", "process", pid, {
        "type": {"old": None, "new": ptype.name}, "total": {"old": None, "new": total},
        "target": {"old": None, "new": target.filter or target.retry_of or f"{total} gateway(s)"},
        "reason": {"old": None, "new": process.reason},
    })
    return process


NOTHING_TO_DO = ("empty_target", "gateway_busy")


@dataclass(frozen=True)
class ScheduledRun:
    """``process`` None: nothing to do this time (``why`` says what)."""

    process: Process | None
    why: str = ""


async def start_scheduled(session: AsyncSession, schedule: str, type_name: str, filter_text: str,
                          params: dict[str, Any], concurrency: int) -> ScheduledRun:
    """Store a scheduled run's process and targets. Gateways held by another process are left out
    (they are served next time); a target that is empty or all busy is nothing to do, not an error,
    and leaves nothing behind (a savepoint)."""
    options = StartOptions(concurrency=concurrency, skip_busy=True)
    try:
        async with session.begin_nested():
            process = await start(session, type_name, Target(filter=filter_text), params, f"scheduled {schedule}",
                                  f"schedule:{schedule}", options)
    except GridgateError as err:
        if err.code in NOTHING_TO_DO:
            return ScheduledRun(process=None, why=err.message)
        raise
    return ScheduledRun(process=process)


def _check_states(ptype: ProcessType, wrong: int, sample: list[dict[str, str]]) -> None:
    if wrong:
        allowed = ", ".join(ptype.eligible_states)
        raise WrongLifecycleState(
            f"{wrong} gateway(s) are not in a state {ptype.name} accepts ({allowed}), e.g. "
            f"{sample[0]['gateway']} is {sample[0]['state']}; narrow the target (e.g. `and state = "
            f"{ptype.eligible_states[0]}`)",
            details={"count": wrong, "sample": sample, "allowed": list(ptype.eligible_states)})


FINAL_STATES = ("completed", "failed", "cancelled")
STEER_ACTIONS = ("pause", "resume", "cancel")


def check_steerable(process: Process, action: str) -> bool:
    """Whether ``action`` (pause | resume | cancel) is to be sent to the process's workflow: False
    when it changes nothing (pausing a paused process); :class:`ProcessStateConflict` when the
    process cannot take it (it ended, or a resume of a process that is not paused)."""
    if action not in STEER_ACTIONS:
        raise InvalidInput(f"unknown action {action!r}; one of {', '.join(STEER_ACTIONS)}", code="invalid_action")
    if process.state in FINAL_STATES:
        raise ProcessStateConflict(f"process {process.id} has already ended ({process.state})")
    if action == "resume" and process.state != "paused":
        raise ProcessStateConflict(f"process {process.id} is {process.state}, not paused")
    return not (action == "pause" and process.state == "paused")


def check_retryable(process: Process) -> None:
    """The failed gateways of a process can be retried once it ended or is paused."""
    if process.state not in (*FINAL_STATES, "paused"):
        raise ProcessStateConflict(f"process {process.id} is still {process.state}; retry when it ended or is paused")


async def get(session: AsyncSession, process_id: str, *, for_update: bool = False) -> Process:
    found = await repo.get(session, process_id, for_update=for_update)
    if found is None:
        raise ProcessNotFound(f"process {process_id!r} not found")
    return found


async def discard(session: AsyncSession, process_id: str) -> None:
    """Undo a stored process whose workflow could not be started (nothing ran)."""
    process = await get(session, process_id)
    await session.delete(process)


async def set_state(session: AsyncSession, process_id: str, state: str, *, pause_reason: str | None = None) -> Process:
    """Mirror the mass workflow's state into the database (called from its activities)."""
    process = await get(session, process_id, for_update=True)
    if process.state in FINAL_STATES and state != process.state:
        return process  # final states stay final; a late retry changes nothing
    if process.state != state:
        record(session, "state", "process", process_id, {"state": {"old": process.state, "new": state},
                                                          **({"reason": {"old": None, "new": pause_reason}}
                                                             if pause_reason else {})})
    process.state = state
    process.pause_reason = pause_reason if state == "paused" else None
    if state in FINAL_STATES:
        process.finished_at = process.finished_at or dt.datetime.now(dt.UTC)
    return process
