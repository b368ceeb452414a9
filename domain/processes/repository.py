"""Every query on processes and their targets. Target work is set-based: no query per gateway in a
loop except the two bookkeeping updates each gateway's own workflow makes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, and_, exists, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.base import rows_changed
from domain.devices.models import Gateway
from domain.processes.models import ACTIVE_TARGET_STATES, Process, ProcessTarget


def _busy(gateway_pk: Any) -> ColumnElement[bool]:
    other = aliased(ProcessTarget)
    return exists().where(other.gateway_pk == gateway_pk, other.state.in_(ACTIVE_TARGET_STATES))


async def count_matching(session: AsyncSession, cond: ColumnElement[bool]) -> int:
    return int(await session.scalar(select(func.count()).select_from(Gateway).where(cond)) or 0)


async def ineligible_sample(session: AsyncSession, cond: ColumnElement[bool], states: Sequence[str],
                            limit: int = 10) -> tuple[int, list[dict[str, str]]]:
    where = and_(cond, Gateway.state.not_in(list(states)))
    total = int(await session.scalar(select(func.count()).select_from(Gateway).where(where)) or 0)
    rows = await session.execute(
        select(Gateway.device_id, Gateway.state).where(where).order_by(Gateway.id).limit(limit))
    return total, [{"gateway": g, "state": s} for g, s in rows]


async def busy_sample(session: AsyncSession, cond: ColumnElement[bool], limit: int = 10
                      ) -> tuple[int, list[dict[str, str]]]:
    joined = and_(cond, ProcessTarget.gateway_pk == Gateway.id, ProcessTarget.state.in_(ACTIVE_TARGET_STATES))
    total = int(await session.scalar(select(func.count()).select_from(Gateway).join(
        ProcessTarget, ProcessTarget.gateway_pk == Gateway.id).where(joined)) or 0)
    rows = await session.execute(
        select(Gateway.device_id, ProcessTarget.process_id).join(ProcessTarget, ProcessTarget.gateway_pk == Gateway.id)
        .where(joined).order_by(Gateway.id).limit(limit))
    return total, [{"gateway": g, "process": p} for g, p in rows]


async def freeze_targets(session: AsyncSession, process_id: str, cond: ColumnElement[bool], *,
                         skip_busy: bool) -> int:
    """Store the matching gateways as the process's targets, numbered in id order, in one statement."""
    where = and_(cond, ~_busy(Gateway.id)) if skip_busy else cond
    source = select(
        literal(process_id), func.row_number().over(order_by=Gateway.id), Gateway.id, Gateway.device_id,
        literal("pending"),
    ).where(where)
    table = cast(Table, ProcessTarget.__table__)
    await session.execute(insert(table).from_select(["process_id", "seq", "gateway_pk", "gateway_id", "state"], source))
    # (rowcount of INSERT ... SELECT is not reported through SQLAlchemy's psycopg async driver)
    return int(await session.scalar(select(func.count()).where(ProcessTarget.process_id == process_id)) or 0)


def failed_of(process_id: str) -> ColumnElement[bool]:
    """Gateways that failed in ``process_id`` (the target of a "retry failed" process)."""
    earlier = aliased(ProcessTarget)  # its own alias: the condition is also used next to process_targets
    return exists().where(earlier.process_id == process_id, earlier.state == "failed", earlier.gateway_pk == Gateway.id)


async def get(session: AsyncSession, process_id: str, *, for_update: bool = False) -> Process | None:
    stmt = select(Process).where(Process.id == process_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def counts(session: AsyncSession, process_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(ProcessTarget.state, func.count()).where(ProcessTarget.process_id == process_id)
        .group_by(ProcessTarget.state))
    return {state: int(n) for state, n in rows}


async def counts_of(session: AsyncSession, process_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """``counts`` of several processes in one query (a page of the process list)."""
    found: dict[str, dict[str, int]] = {pid: {} for pid in process_ids}
    if not process_ids:
        return found
    rows = await session.execute(
        select(ProcessTarget.process_id, ProcessTarget.state, func.count())
        .where(ProcessTarget.process_id.in_(list(process_ids)))
        .group_by(ProcessTarget.process_id, ProcessTarget.state))
    for pid, state, n in rows:
        found[pid][state] = int(n)
    return found


def listing(*, type_: str | None = None, state: str | None = None, before: str | None = None,
            limit: int = 50) -> Select[Process]:
    stmt = select(Process).order_by(Process.id.desc()).limit(limit)
    if type_:
        stmt = stmt.where(Process.type == type_)
    if state:
        stmt = stmt.where(Process.state == state)
    if before:
        stmt = stmt.where(Process.id < before)
    return stmt


def targets(process_id: str, *, state: str | None = None, after: int = 0, limit: int = 100
            ) -> Select[ProcessTarget]:
    stmt = (select(ProcessTarget).where(ProcessTarget.process_id == process_id, ProcessTarget.seq > after)
            .order_by(ProcessTarget.seq).limit(limit))
    if state:
        stmt = stmt.where(ProcessTarget.state == state)
    return stmt


async def next_pending(session: AsyncSession, process_id: str, after_seq: int, limit: int
                       ) -> list[tuple[int, str]]:
    rows = await session.execute(
        select(ProcessTarget.seq, ProcessTarget.gateway_id)
        .where(ProcessTarget.process_id == process_id, ProcessTarget.seq > after_seq,
               ProcessTarget.state == "pending")
        .order_by(ProcessTarget.seq).limit(limit))
    return [(s, g) for s, g in rows]


async def mark_running(session: AsyncSession, process_id: str, seq: int, workflow_id: str, at: dt.datetime) -> bool:
    return bool(await rows_changed(session, update(ProcessTarget)
        .where(ProcessTarget.process_id == process_id, ProcessTarget.seq == seq,
               ProcessTarget.state.in_(("pending", "running")))
        .values(state="running", workflow_id=workflow_id, started_at=func.coalesce(ProcessTarget.started_at, at))))


async def mark_finished(session: AsyncSession, process_id: str, seq: int, state: str, at: dt.datetime, *,
                        error_type: str | None, error_message: str | None, result: dict[str, Any] | None) -> bool:
    """Record a gateway's outcome once; a retried activity finds it done and changes nothing."""
    return bool(await rows_changed(session, update(ProcessTarget)
        .where(ProcessTarget.process_id == process_id, ProcessTarget.seq == seq,
               ProcessTarget.state.in_(ACTIVE_TARGET_STATES))
        .values(state=state, finished_at=at, error_type=error_type, error_message=error_message, result=result)))


async def cancel_pending(session: AsyncSession, process_id: str, at: dt.datetime, *,
                         also_running: Sequence[int] = ()) -> int:
    """Cancel every pending target (and the running ones named, whose workflows never reported)."""
    return await rows_changed(session, update(ProcessTarget)
        .where(ProcessTarget.process_id == process_id,
               (ProcessTarget.state == "pending")
               | (ProcessTarget.seq.in_(list(also_running)) & (ProcessTarget.state == "running")))
        .values(state="cancelled", finished_at=at, error_type="cancelled", error_message="process cancelled"))
