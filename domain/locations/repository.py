"""Queries of connection points, metering points and market locations."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.locations.models import ConnectionPoint, MarketLocation, MeteringPoint

L = TypeVar("L", ConnectionPoint, MeteringPoint, MarketLocation)

KEYS: dict[type, str] = {ConnectionPoint: "code", MeteringPoint: "melo", MarketLocation: "malo"}


async def by_key(session: AsyncSession, model: type[L], key: str, *, for_update: bool = False) -> L | None:
    stmt = select(model).where(getattr(model, KEYS[model]) == key)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)
