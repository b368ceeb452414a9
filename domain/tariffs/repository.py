"""Every query of TAF orders and the profile history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.devices.models import Gateway, Meter
from domain.locations.models import MeteringPoint
from domain.partners.models import MarketPartner
from domain.tariffs.models import GatewayProfile, TafOrder
from domain.topology.models import MeterGateway, MeterMeteringPoint
from domain.topology.repository import valid_at


def current(at: datetime) -> Any:
    """Orders in force at ``at``: active and inside their validity."""
    return and_(TafOrder.status == "active", TafOrder.valid_from <= at,
                or_(TafOrder.valid_to.is_(None), TafOrder.valid_to > at))


def orders_with_keys(at: datetime) -> Any:
    """Orders with their MeLo, EMT and the gateway serving the MeLo at ``at`` (if any)."""
    mm = aliased(MeterMeteringPoint)
    mg = aliased(MeterGateway)
    gw = aliased(Gateway)
    return (select(TafOrder, MeteringPoint.melo, MarketPartner.mp_id, gw.device_id.label("gateway"))
            .join(MeteringPoint, MeteringPoint.id == TafOrder.metering_point_id)
            .join(MarketPartner, MarketPartner.id == TafOrder.emt_id)
            .outerjoin(mm, and_(mm.metering_point_id == TafOrder.metering_point_id, valid_at(mm, at)))
            .outerjoin(mg, and_(mg.meter_id == mm.meter_id, valid_at(mg, at)))
            .outerjoin(gw, gw.id == mg.gateway_id))


async def order_keys(session: AsyncSession) -> list[tuple[str, int, str]]:
    """(MeLo, TAF, EMT market partner ID) of every active order."""
    rows = await session.execute(select(MeteringPoint.melo, TafOrder.taf, MarketPartner.mp_id)
                                 .join(MeteringPoint, MeteringPoint.id == TafOrder.metering_point_id)
                                 .join(MarketPartner, MarketPartner.id == TafOrder.emt_id)
                                 .where(TafOrder.status == "active"))
    return [(melo, taf, mp) for melo, taf, mp in rows]


async def active_order(session: AsyncSession, metering_point_id: int, taf: int) -> TafOrder | None:
    return await session.scalar(select(TafOrder).where(
        TafOrder.metering_point_id == metering_point_id, TafOrder.taf == taf, TafOrder.status == "active"
    ).with_for_update())


async def existing_order_ids(session: AsyncSession, order_ids: Sequence[int]) -> set[int]:
    """Which of ``order_ids`` are orders (in any status)."""
    return set((await session.scalars(select(TafOrder.id).where(TafOrder.id.in_(list(order_ids))))).all())


async def metering_points_of_profiles(session: AsyncSession, profile_ids: Sequence[str]) -> dict[str, str]:
    """Profile ID -> MeLo of the order the profile was written for (profiles of an order only)."""
    if not profile_ids:
        return {}
    rows = await session.execute(
        select(GatewayProfile.profile_id, MeteringPoint.melo)
        .join(TafOrder, TafOrder.id == GatewayProfile.taf_order_id)
        .join(MeteringPoint, MeteringPoint.id == TafOrder.metering_point_id)
        .where(GatewayProfile.profile_id.in_(list(profile_ids))))
    return {p: m for p, m in rows}


async def gateway_meters(session: AsyncSession, gateway_pk: int, at: datetime) -> Sequence[Meter]:
    return (await session.scalars(
        select(Meter).join(MeterGateway, MeterGateway.meter_id == Meter.id)
        .where(MeterGateway.gateway_id == gateway_pk, valid_at(MeterGateway, at)).order_by(Meter.device_id))).all()


async def meters_metering_points(session: AsyncSession, meter_pks: list[int], at: datetime
                                 ) -> Sequence[tuple[int, MeteringPoint]]:
    if not meter_pks:
        return []
    rows = await session.execute(
        select(MeterMeteringPoint.meter_id, MeteringPoint)
        .join(MeteringPoint, MeteringPoint.id == MeterMeteringPoint.metering_point_id)
        .where(MeterMeteringPoint.meter_id.in_(meter_pks), valid_at(MeterMeteringPoint, at))
        .order_by(MeteringPoint.melo))
    return [(m, mp) for m, mp in rows]


async def current_orders_of(session: AsyncSession, metering_point_pks: list[int], at: datetime
                            ) -> Sequence[tuple[TafOrder, MarketPartner]]:
    if not metering_point_pks:
        return []
    rows = await session.execute(
        select(TafOrder, MarketPartner).join(MarketPartner, MarketPartner.id == TafOrder.emt_id)
        .where(TafOrder.metering_point_id.in_(metering_point_pks), current(at)).order_by(TafOrder.id))
    return [(o, p) for o, p in rows]


async def active_profiles(session: AsyncSession, gateway_pk: int) -> Sequence[GatewayProfile]:
    return (await session.scalars(select(GatewayProfile).where(
        GatewayProfile.gateway_id == gateway_pk, GatewayProfile.status == "active"
    ).order_by(GatewayProfile.id))).all()


def profile_history(gateway_pk: int, *, status: str | None = None, kind: str | None = None,
                    after: int | None = None, limit: int = 100) -> Select[Any]:
    stmt = select(GatewayProfile).where(GatewayProfile.gateway_id == gateway_pk)
    if status:
        stmt = stmt.where(GatewayProfile.status == status)
    if kind:
        stmt = stmt.where(GatewayProfile.kind == kind)
    if after:
        stmt = stmt.where(GatewayProfile.id < after)
    return stmt.order_by(GatewayProfile.id.desc()).limit(limit)
