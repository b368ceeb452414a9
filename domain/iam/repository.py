"""Queries of users and memberships (control database)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.iam.models import Membership


async def membership(session: AsyncSession, user_id: int, tenant_id: int) -> Membership | None:
    return await session.scalar(
        select(Membership).where(Membership.user_id == user_id, Membership.tenant_id == tenant_id))
