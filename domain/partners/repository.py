"""Queries of market partners."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.partners.models import MarketPartner


async def by_mp_id(session: AsyncSession, mp_id: str) -> MarketPartner | None:
    return await session.scalar(select(MarketPartner).where(MarketPartner.mp_id == mp_id))


async def existing_mp_ids(session: AsyncSession, mp_ids: set[str]) -> set[str]:
    if not mp_ids:
        return set()
    return set((await session.scalars(select(MarketPartner.mp_id).where(MarketPartner.mp_id.in_(mp_ids)))).all())


async def all_partners(session: AsyncSession) -> Sequence[MarketPartner]:
    return (await session.scalars(select(MarketPartner).order_by(MarketPartner.mp_id))).all()
