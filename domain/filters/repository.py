"""Queries of saved filters."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.filters.models import SavedFilter


async def get_by_name(session: AsyncSession, name: str) -> SavedFilter | None:
    return await session.scalar(select(SavedFilter).where(SavedFilter.name == name))


async def list_all(session: AsyncSession, entity: str | None = None) -> Sequence[SavedFilter]:
    stmt = select(SavedFilter).order_by(SavedFilter.name)
    if entity:
        stmt = stmt.where(SavedFilter.entity == entity)
    return (await session.scalars(stmt)).all()
