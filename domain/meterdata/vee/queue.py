"""The queue of (series, day) waiting for validation: the ingest adds what a delivery touched in
the delivery's own transaction; the pending-validation workflow takes it in keyset order.

A row names a day, not a delivery: a second delivery for a queued day only moves ``queued_at``
(the wall clock, ``clock_timestamp()``, not the transaction's start). A validation deletes a row
only where ``queued_at`` is still what it read, so a day re-queued while it was being validated
stays queued and is validated again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import column, delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.meterdata.models import MeterDelivery
from domain.meterdata.vee.models import VeePending


class Touched(Protocol):
    """What the ingest reports per delivery (``domain.meterdata.ingest.Outcome``)."""

    @property
    def outcome(self) -> str: ...

    @property
    def delivery_id(self) -> int | None: ...

    @property
    def touched(self) -> tuple[tuple[int, dt.date], ...]: ...


async def enqueue_validation(session: AsyncSession, outcomes: Sequence[Touched]) -> int:
    """Queue every (series, day) the batch gave a new raw version, and the days of its conflicting
    duplicates (the stored value stayed, so no new version, but the day gets a finding)."""
    keys = {k for o in outcomes for k in o.touched}
    conflicted = [o.delivery_id for o in outcomes if o.outcome == "conflict" and o.delivery_id is not None]
    if conflicted:
        keys |= await _conflict_days(session, conflicted)
    return await enqueue(session, keys)


async def enqueue(session: AsyncSession, keys: Iterable[tuple[int, dt.date]]) -> int:
    wanted = sorted(set(keys))  # one order for every writer: no deadlock between concurrent batches
    if not wanted:
        return 0
    stmt = pg_insert(VeePending).values([{"series_id": s, "day": d, "queued_at": func.clock_timestamp()}
                                         for s, d in wanted])
    await session.execute(stmt.on_conflict_do_update(constraint="pk_vee_pending",
                                                     set_={"queued_at": func.clock_timestamp()}))
    return len(wanted)


async def _conflict_days(session: AsyncSession, delivery_ids: list[int]) -> set[tuple[int, dt.date]]:
    conflict = func.jsonb_array_elements(MeterDelivery.conflicts).table_valued(column("value", JSONB)).alias("c")
    rows = await session.execute(
        select(conflict.c.value["series"].astext, conflict.c.value["day"].astext)
        .select_from(MeterDelivery).join(conflict, conflict.c.value.has_key("day"))
        .where(MeterDelivery.id.in_(delivery_ids)))
    return {(int(s), dt.date.fromisoformat(d)) for s, d in rows}


@dataclass(frozen=True, kw_only=True)
class Queued:
    series_id: int
    day: dt.date
    queued_at: dt.datetime


async def next_queued(session: AsyncSession, after: tuple[int, dt.date] | None, limit: int) -> list[Queued]:
    """The next ``limit`` queued days after ``after`` in (series, day) order."""
    stmt = select(VeePending.series_id, VeePending.day, VeePending.queued_at)
    if after is not None:
        stmt = stmt.where(tuple_(VeePending.series_id, VeePending.day) > tuple_(*after))
    rows = await session.execute(stmt.order_by(VeePending.series_id, VeePending.day).limit(limit))
    return [Queued(series_id=s, day=d, queued_at=q) for s, d, q in rows]


async def done(session: AsyncSession, rows: Sequence[Queued]) -> None:
    """Remove the rows validated, unless a delivery queued them again meanwhile."""
    if rows:
        await session.execute(delete(VeePending).where(tuple_(VeePending.series_id, VeePending.day,
                                                              VeePending.queued_at).in_(
            [(r.series_id, r.day, r.queued_at) for r in rows])))


async def any_queued(session: AsyncSession) -> bool:
    return bool((await session.execute(select(select(VeePending.series_id).exists()))).scalar())


async def count_queued(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(VeePending))).scalar_one())
