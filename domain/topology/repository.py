"""Queries of assignments: overlaps, lists with both natural keys, what hangs off a gateway or a
meter at a moment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.devices.models import Meter
from domain.locations.models import MeteringPoint
from domain.topology.kinds import AssignmentKind
from domain.topology.models import GatewayConnectionPoint, MeterGateway, MeterMeteringPoint


def period(model: Any) -> Any:
    return func.tstzrange(model.valid_from, model.valid_to, literal("[)"))


def valid_at(model: Any, at: Any) -> ColumnElement[bool]:
    return and_(model.valid_from <= at, or_(model.valid_to.is_(None), model.valid_to > at))


async def overlapping(session: AsyncSession, kind: AssignmentKind, ids: dict[str, int], valid_from: datetime,
                      valid_to: datetime | None, *, exclude_id: int | None = None) -> Row[Any] | None:
    """The first assignment that would overlap, with both natural keys."""
    a = kind.model
    conds = [getattr(a, col) == ids[col] for col in kind.exclusive]
    conds.append(period(a).op("&&")(func.tstzrange(valid_from, valid_to, literal("[)"))))
    if exclude_id is not None:
        conds.append(a.id != exclude_id)
    stmt = _with_keys(kind).where(*conds).order_by(a.valid_from).limit(1)
    return (await session.execute(stmt)).first()


def _with_keys(kind: AssignmentKind) -> Any:
    a = kind.model
    subj = aliased(kind.subject.model)
    tgt = aliased(kind.target.model)
    return (select(a, getattr(subj, kind.subject.key).label("subject"), getattr(tgt, kind.target.key).label("target"))
            .join(subj, subj.id == getattr(a, kind.subject.column))
            .join(tgt, tgt.id == getattr(a, kind.target.column)))


async def assignment(session: AsyncSession, kind: AssignmentKind, id: int, *, for_update: bool = False
                     ) -> Row[Any] | None:
    stmt = _with_keys(kind).where(kind.model.id == id)
    if for_update:
        stmt = stmt.with_for_update(of=kind.model)
    return (await session.execute(stmt)).first()


async def assignments(session: AsyncSession, kind: AssignmentKind, *, subject_id: int | None = None,
                      target_id: int | None = None, at: datetime | None = None, after: int | None = None,
                      limit: int = 100) -> Sequence[Row[Any]]:
    a = kind.model
    stmt = _with_keys(kind)
    if subject_id is not None:
        stmt = stmt.where(getattr(a, kind.subject.column) == subject_id)
    if target_id is not None:
        stmt = stmt.where(getattr(a, kind.target.column) == target_id)
    if at is not None:
        stmt = stmt.where(valid_at(a, at))
    if after is not None:
        stmt = stmt.where(a.id < after)
    return (await session.execute(stmt.order_by(a.id.desc()).limit(limit))).all()


async def id_by_key(session: AsyncSession, model: Any, key: str, value: str) -> int | None:
    found: int | None = await session.scalar(select(model.id).where(getattr(model, key) == value))
    return found


async def connection_point_assignment(session: AsyncSession, gateway_pk: int, at: datetime) -> int | None:
    """The gateway's installation at a connection point valid at ``at`` (its assignment id)."""
    return await session.scalar(select(GatewayConnectionPoint.id).where(
        GatewayConnectionPoint.gateway_id == gateway_pk, valid_at(GatewayConnectionPoint, at)))


async def meters_with_keys_and_metering_points(session: AsyncSession, gateway_pk: int, at: datetime
                                               ) -> Sequence[tuple[str, bool, int | None]]:
    """The gateway's meters at ``at``: (meter ID, has an MK0, an assignment to a metering point or
    None), one row per metering point the meter measures."""
    rows = await session.execute(
        select(Meter.device_id, Meter.mk0_ciphertext.is_not(None), MeterMeteringPoint.id)
        .join(MeterGateway, (MeterGateway.meter_id == Meter.id) & valid_at(MeterGateway, at))
        .outerjoin(MeterMeteringPoint, (MeterMeteringPoint.meter_id == Meter.id) & valid_at(MeterMeteringPoint, at))
        .where(MeterGateway.gateway_id == gateway_pk))
    return [(m, k, mm) for m, k, mm in rows]


async def gateway_assignments_begun_before(session: AsyncSession, model: type[GatewayConnectionPoint]
                                           | type[MeterGateway], gateway_pk: int, at: datetime) -> Sequence[int]:
    """Ids of the gateway's assignments of ``model`` valid at ``at`` that began before it."""
    return (await session.scalars(select(model.id).where(model.gateway_id == gateway_pk, valid_at(model, at),
                                                         model.valid_from < at))).all()


async def gateway_of_meter(session: AsyncSession, meter_pk: int, at: datetime) -> int | None:
    """The gateway (pk) the meter is on at ``at``."""
    return await session.scalar(select(MeterGateway.gateway_id).where(MeterGateway.meter_id == meter_pk,
                                                                      valid_at(MeterGateway, at)))


async def meter_gateway_assignment(session: AsyncSession, meter_pk: int, gateway_pk: int, at: datetime
                                   ) -> int | None:
    """The assignment (id) of the meter to this gateway valid at ``at``."""
    return await session.scalar(select(MeterGateway.id).where(
        MeterGateway.meter_id == meter_pk, MeterGateway.gateway_id == gateway_pk, valid_at(MeterGateway, at)))


async def metering_points_of_meter(session: AsyncSession, meter_pk: int, at: datetime) -> Sequence[MeteringPoint]:
    """The metering points the meter measures at ``at``, by MeLo."""
    return (await session.scalars(
        select(MeteringPoint).join(MeterMeteringPoint, MeterMeteringPoint.metering_point_id == MeteringPoint.id)
        .where(MeterMeteringPoint.meter_id == meter_pk, valid_at(MeterMeteringPoint, at))
        .order_by(MeteringPoint.melo))).all()


async def metering_point_assignments(session: AsyncSession, meter_pk: int, at: datetime
                                     ) -> Sequence[tuple[int, str]]:
    """The meter's assignments to metering points valid at ``at``: (assignment id, MeLo)."""
    rows = await session.execute(
        select(MeterMeteringPoint.id, MeteringPoint.melo)
        .join(MeteringPoint, MeteringPoint.id == MeterMeteringPoint.metering_point_id)
        .where(MeterMeteringPoint.meter_id == meter_pk, valid_at(MeterMeteringPoint, at))
        .order_by(MeterMeteringPoint.id))
    return [(a, m) for a, m in rows]
