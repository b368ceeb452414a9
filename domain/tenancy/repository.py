"""Queries of the tenant registry (control database), and which database a session is on."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.tenancy.models import Tenant


async def by_name(session: AsyncSession, name: str) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.name == name))


async def by_namespace(session: AsyncSession, namespace: str) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.namespace == namespace))


async def current_database(session: AsyncSession) -> str:
    name: str | None = await session.scalar(text("SELECT current_database()"))
    return str(name)
