"""Queries of the device catalogue."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from domain.catalogue.models import DeviceType, FirmwareVersion


async def device_type_by_code(session: AsyncSession, code: str) -> DeviceType | None:
    return await session.scalar(select(DeviceType).where(DeviceType.code == code))


async def device_types(session: AsyncSession, kind: str | None = None) -> Sequence[DeviceType]:
    stmt = select(DeviceType).order_by(DeviceType.kind, DeviceType.code)
    if kind:
        stmt = stmt.where(DeviceType.kind == kind)
    return (await session.scalars(stmt)).all()


async def firmware_version(session: AsyncSession, id: int) -> FirmwareVersion | None:
    return await session.scalar(
        select(FirmwareVersion).options(joinedload(FirmwareVersion.device_type)).where(FirmwareVersion.id == id))


async def firmware_versions(session: AsyncSession, device_type: str | None = None) -> Sequence[FirmwareVersion]:
    stmt = (select(FirmwareVersion).join(FirmwareVersion.device_type).options(joinedload(FirmwareVersion.device_type))
            .order_by(DeviceType.code, FirmwareVersion.version_key, FirmwareVersion.version))
    if device_type:
        stmt = stmt.where(DeviceType.code == device_type)
    return (await session.scalars(stmt)).all()
