"""Running filters: resolve text or a saved name, count, and iterate matches in keyset batches.

Batches are separate short queries ordered by primary key, so a mass process can stream 100,000
gateways without holding a cursor or the fleet in memory, and resume after the last id it saw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from domain.devices.models import Gateway
from domain.filters.compiler import compile_filter, entity
from domain.filters.errors import InvalidFilter

FilterArg = str | ColumnElement[bool] | None


def compile_gateway_filter(text: str, *, at: datetime | None = None) -> ColumnElement[bool]:
    return compile_filter("gateway", text, at=at)


async def resolve(session: AsyncSession, entity_name: str, filter: FilterArg = None, *,
                  saved: str | None = None, at: datetime | None = None) -> ColumnElement[bool]:
    """The condition for ``filter`` text (or a compiled expression), a saved filter name, or both
    (combined with ``and``). Empty: every row."""
    from domain.filters.service import get

    parts: list[ColumnElement[bool]] = []
    if saved:
        found = await get(session, saved)
        if found.entity != entity_name:
            raise InvalidFilter(f"saved filter {saved!r} selects {found.entity}s, not {entity_name}s", 0,
                                found.expression)
        parts.append(compile_filter(entity_name, found.expression, at=at))
    if isinstance(filter, str):
        if filter.strip():
            parts.append(compile_filter(entity_name, filter, at=at))
    elif filter is not None:
        parts.append(filter)
    if not parts:
        return true()
    return parts[0] if len(parts) == 1 else parts[0] & parts[1]


async def count(session: AsyncSession, entity_name: str, filter: FilterArg = None, *,
                saved: str | None = None, at: datetime | None = None) -> int:
    model = entity(entity_name).model
    cond = await resolve(session, entity_name, filter, saved=saved, at=at)
    return int(await session.scalar(select(func.count()).select_from(model).where(cond)) or 0)


async def iterate_ids(session: AsyncSession, entity_name: str, filter: FilterArg = None, *, batch: int = 1000,
                      after: int = 0, saved: str | None = None, at: datetime | None = None
                      ) -> AsyncIterator[list[int]]:
    model = entity(entity_name).model
    cond = await resolve(session, entity_name, filter, saved=saved, at=at)
    last = after
    while True:
        ids = list((await session.scalars(
            select(model.id).where(cond, model.id > last).order_by(model.id).limit(batch))).all())
        if not ids:
            return
        yield ids
        last = ids[-1]
        if len(ids) < batch:
            return


async def iterate_gateway_ids(session: AsyncSession, filter: FilterArg = None, *, batch: int = 1000,
                              after: int = 0, saved: str | None = None, at: datetime | None = None
                              ) -> AsyncIterator[list[int]]:
    """Ids of the gateways matching ``filter``, ascending, ``batch`` at a time; ``after`` resumes."""
    async for ids in iterate_ids(session, "gateway", filter, batch=batch, after=after, saved=saved, at=at):
        yield ids


@dataclass(frozen=True)
class GatewayRef:
    id: int
    device_id: str
    network_segment: str | None
    state: str


async def iterate_gateway_refs(session: AsyncSession, filter: FilterArg = None, *, batch: int = 1000,
                               after: int = 0, saved: str | None = None, at: datetime | None = None
                               ) -> AsyncIterator[list[GatewayRef]]:
    """Like ``iterate_gateway_ids`` with what a mass process needs to name and throttle work."""
    cond = await resolve(session, "gateway", filter, saved=saved, at=at)
    last = after
    while True:
        rows = (await session.execute(
            select(Gateway.id, Gateway.device_id, Gateway.network_segment, Gateway.state)
            .where(cond, Gateway.id > last).order_by(Gateway.id).limit(batch))).all()
        if not rows:
            return
        yield [GatewayRef(*r) for r in rows]
        last = rows[-1][0]
        if len(rows) < batch:
            return
