"""Queries of gateways, meters and CLS modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from domain.devices.models import ClsModule, Gateway, InitialCertificate, Meter

D = TypeVar("D", Gateway, Meter, ClsModule)


async def by_device_id(session: AsyncSession, model: type[D], device_id: str, *, for_update: bool = False) -> D | None:
    stmt = select(model).options(joinedload(model.device_type)).where(model.device_id == device_id)
    if for_update:
        stmt = stmt.with_for_update(of=model)
    return await session.scalar(stmt)


async def by_id(session: AsyncSession, model: type[D], id: int, *, for_update: bool = False) -> D | None:
    stmt = select(model).options(joinedload(model.device_type)).where(model.id == id)
    if for_update:
        stmt = stmt.with_for_update(of=model)
    return await session.scalar(stmt)


async def id_of(session: AsyncSession, model: type[D], device_id: str) -> int | None:
    found: int | None = await session.scalar(select(model.id).where(model.device_id == device_id))
    return found


async def meters_by_device_id(session: AsyncSession, device_ids: Sequence[str]) -> dict[str, Meter]:
    rows = (await session.scalars(select(Meter).where(Meter.device_id.in_(list(device_ids))))).all()
    return {m.device_id: m for m in rows}


async def first_gateways(session: AsyncSession, cond: ColumnElement[bool], limit: int) -> list[tuple[int, str]]:
    """(pk, device ID) of the first ``limit`` gateways matching ``cond``, in pk order."""
    rows = await session.execute(select(Gateway.id, Gateway.device_id).where(cond).order_by(Gateway.id).limit(limit))
    return [(i, d) for i, d in rows]


async def initial_certificates(session: AsyncSession, gateway_id: int) -> Sequence[InitialCertificate]:
    return (await session.scalars(select(InitialCertificate).where(InitialCertificate.gateway_id == gateway_id)
                                  .order_by(InitialCertificate.id))).all()


async def set_missing_wakeup_addresses(session: AsyncSession, device_ids: Sequence[str], address: str) -> None:
    """Gateways of ``device_ids`` without a wake-up address get ``address``."""
    await session.execute(update(Gateway).where(Gateway.device_id.in_(list(device_ids)),
                                                Gateway.wakeup_address.is_(None)).values(wakeup_address=address))
