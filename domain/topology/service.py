"""Assigning and unassigning with validity periods, and reading the topology as of a moment.

Public for other areas:

* ``assign(session, kind, subject, target, valid_from=None, valid_to=None)``
* ``end_assignment(session, kind, id, valid_to=None)``
* ``gateway_topology(session, gateway, at=None)``: place, meters, MeLos, MaLos, CLS modules and
  market partners valid at ``at`` (default now), in a fixed number of queries.
* ``gateway_assignment_history(session, gateway)``: every assignment the gateway ever had.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from core.errors import InvalidInput
from domain.audit.repository import record
from domain.devices.models import ClsModule, Gateway, Meter
from domain.locations.models import ConnectionPoint, MarketLocation, MeteringPoint
from domain.partners.models import MarketPartner
from domain.records import AssignmentOverlap, check_mirrored, flush_or_conflict
from domain.topology import repository
from domain.topology.errors import AssignmentNotFound, InvalidPeriod, UnknownReference
from domain.topology.kinds import KINDS, AssignmentKind, kind
from domain.topology.models import (
    ClsModuleGateway,
    GatewayConnectionPoint,
    MeterGateway,
    MeteringPointMarketLocation,
    MeterMeteringPoint,
)
from domain.topology.repository import valid_at
from domain.topology.schemas import (
    AssignmentOut,
    ClsModuleNode,
    ConnectionPointNode,
    GatewayTopology,
    MarketLocationNode,
    MeteringPointNode,
    MeterNode,
    PartnerNode,
)
from domain.validators import aware


async def db_now(session: AsyncSession) -> datetime:
    """The transaction's timestamp: "now" for defaults and for filters (``now()``) agree within
    one transaction."""
    return (await session.execute(select(func.now()))).scalar_one()


def _out(kind_: AssignmentKind, row: Any) -> AssignmentOut:
    a = row[0]
    return AssignmentOut(id=a.id, kind=kind_.name, subject=row.subject, target=row.target, valid_from=a.valid_from,
                         valid_to=a.valid_to, leading=a.leading, created_at=a.created_at, created_by=a.created_by,
                         updated_at=a.updated_at, updated_by=a.updated_by)


def _overlap_error(kind_: AssignmentKind, row: Any) -> AssignmentOverlap:
    other = _out(kind_, row)
    side = ", ".join(c.removesuffix("_id") for c in kind_.exclusive)
    return AssignmentOverlap(
        f"overlaps assignment {other.id} ({kind_.subject.name} {other.subject} -> {kind_.target.name} "
        f"{other.target}, {other.valid_from.isoformat()} .. {other.valid_to.isoformat() if other.valid_to else 'open'})"
        f": the same {side} cannot be assigned twice at a time",
        details={"conflicting_assignment": other.model_dump(mode="json")},
    )


def _utc(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def assignment_changes(k: AssignmentKind, subject: str, target: str, valid_from: datetime,
                       valid_to: datetime | None) -> dict[str, Any]:
    """What the change log records for a new assignment (the API and imports alike)."""
    return {k.subject.name: {"old": None, "new": subject}, k.target.name: {"old": None, "new": target},
            "valid_from": {"old": None, "new": _utc(valid_from)}, "valid_to": {"old": None, "new": _utc(valid_to)}}


def _check_period(valid_from: datetime, valid_to: datetime | None) -> None:
    if valid_to is not None and valid_to <= valid_from:
        raise InvalidPeriod(f"valid_to ({valid_to.isoformat()}) must be after valid_from ({valid_from.isoformat()})")


async def _resolve(session: AsyncSession, side: Any, raw: str) -> tuple[int, str]:
    try:
        key = side.normalise(raw)
    except InvalidInput as err:
        raise InvalidInput(f"{side.name}: {err.message}", code=err.code, details={"field": side.name}) from None
    found = await repository.id_by_key(session, side.model, side.key, key)
    if found is None:
        raise UnknownReference(f"no {side.name.replace('_', ' ')} {key!r}", details={"field": side.name, "value": key})
    return found, key


async def assign(session: AsyncSession, kind_name: str, subject: str, target: str, *,
                 valid_from: datetime | None = None, valid_to: datetime | None = None) -> AssignmentOut:
    """Link ``subject`` to ``target`` for ``[valid_from, valid_to)``; refuses overlaps (409)."""
    k = kind(kind_name)
    valid_from = aware(valid_from) or await db_now(session)
    valid_to = aware(valid_to)
    _check_period(valid_from, valid_to)
    subject_id, subject_key = await _resolve(session, k.subject, subject)
    target_id, target_key = await _resolve(session, k.target, target)
    ids = {k.subject.column: subject_id, k.target.column: target_id}
    conflict = await repository.overlapping(session, k, ids, valid_from, valid_to)
    if conflict is not None:
        raise _overlap_error(k, conflict)
    a = k.model(valid_from=valid_from, valid_to=valid_to, **ids)
    session.add(a)
    await flush_or_conflict(session, f"{k.name} assignment")
    record(session, "assign", k.name, str(a.id), assignment_changes(k, subject_key, target_key, valid_from, valid_to))
    row = await repository.assignment(session, k, a.id)
    return _out(k, row)


async def end_assignment(session: AsyncSession, kind_name: str, assignment_id: int, *,
                         valid_to: datetime | None = None) -> AssignmentOut:
    """End (or re-date the end of) an assignment; the row stays as history."""
    k = kind(kind_name)
    row = await repository.assignment(session, k, assignment_id, for_update=True)
    if row is None:
        raise AssignmentNotFound(f"no {k.name} assignment {assignment_id}")
    a = row[0]
    check_mirrored(a, ["valid_to"], frozenset({"valid_to"}), f"{k.name} assignment {assignment_id}")
    valid_to = aware(valid_to) or await db_now(session)
    _check_period(a.valid_from, valid_to)
    if a.valid_to == valid_to:
        return _out(k, row)
    conflict = await repository.overlapping(session, k, {c: getattr(a, c) for c in k.exclusive}, a.valid_from,
                                            valid_to, exclude_id=a.id)
    if conflict is not None:
        raise _overlap_error(k, conflict)
    old = a.valid_to
    a.valid_to = valid_to
    record(session, "end", k.name, str(a.id), {"valid_to": {"old": _utc(old), "new": _utc(valid_to)}})
    await flush_or_conflict(session, f"{k.name} assignment {assignment_id}")
    return _out(k, await repository.assignment(session, k, a.id))


async def list_assignments(session: AsyncSession, kind_name: str, *, subject: str | None = None,
                           target: str | None = None, at: datetime | None = None, after: int | None = None,
                           limit: int = 100) -> list[AssignmentOut]:
    k = kind(kind_name)
    subject_id = (await _resolve(session, k.subject, subject))[0] if subject else None
    target_id = (await _resolve(session, k.target, target))[0] if target else None
    rows = await repository.assignments(session, k, subject_id=subject_id, target_id=target_id, at=aware(at),
                                        after=after, limit=limit)
    return [_out(k, r) for r in rows]


async def gateway_assignment_history(session: AsyncSession, gateway: Gateway, limit: int = 200
                                     ) -> list[AssignmentOut]:
    out: list[AssignmentOut] = []
    for k in KINDS.values():
        if k.subject.model is Gateway:
            rows = await repository.assignments(session, k, subject_id=gateway.id, limit=limit)
        elif k.target.model is Gateway:
            rows = await repository.assignments(session, k, target_id=gateway.id, limit=limit)
        else:
            continue
        out.extend(_out(k, r) for r in rows)
    out.sort(key=lambda a: (a.valid_from, a.id), reverse=True)
    return out[:limit]


def _period(a: Any) -> dict[str, Any]:
    return {"assignment_id": a.id, "valid_from": a.valid_from, "valid_to": a.valid_to}


async def gateway_topology(session: AsyncSession, gateway: Gateway, at: datetime | None = None) -> GatewayTopology:
    """What hung off ``gateway`` at ``at`` (default now)."""
    at = aware(at) or await db_now(session)
    cp_row = (await session.execute(
        select(GatewayConnectionPoint, ConnectionPoint)
        .join(ConnectionPoint, ConnectionPoint.id == GatewayConnectionPoint.connection_point_id)
        .where(GatewayConnectionPoint.gateway_id == gateway.id, valid_at(GatewayConnectionPoint, at)))).first()
    meter_rows = (await session.execute(
        select(MeterGateway, Meter).join(Meter, Meter.id == MeterGateway.meter_id)
        .options(joinedload(Meter.device_type))
        .where(MeterGateway.gateway_id == gateway.id, valid_at(MeterGateway, at))
        .order_by(Meter.device_id))).all()
    meter_ids = [m.id for _, m in meter_rows]
    melo_rows = (await session.execute(
        select(MeterMeteringPoint, MeteringPoint)
        .join(MeteringPoint, MeteringPoint.id == MeterMeteringPoint.metering_point_id)
        .where(MeterMeteringPoint.meter_id.in_(meter_ids), valid_at(MeterMeteringPoint, at))
        .order_by(MeteringPoint.melo))).all() if meter_ids else []
    melo_ids = [mp.id for _, mp in melo_rows]
    malo_rows = (await session.execute(
        select(MeteringPointMarketLocation, MarketLocation)
        .join(MarketLocation, MarketLocation.id == MeteringPointMarketLocation.market_location_id)
        .where(MeteringPointMarketLocation.metering_point_id.in_(melo_ids), valid_at(MeteringPointMarketLocation, at))
        .order_by(MarketLocation.malo))).all() if melo_ids else []
    cls_rows = (await session.execute(
        select(ClsModuleGateway, ClsModule).join(ClsModule, ClsModule.id == ClsModuleGateway.cls_module_id)
        .options(joinedload(ClsModule.device_type))
        .where(ClsModuleGateway.gateway_id == gateway.id, valid_at(ClsModuleGateway, at))
        .order_by(ClsModule.device_id))).all()

    serves: dict[str, set[str]] = defaultdict(set)
    malos_by_melo: dict[int, list[MarketLocationNode]] = defaultdict(list)
    for link, malo in malo_rows:
        malos_by_melo[link.metering_point_id].append(MarketLocationNode(
            **_period(link), malo=malo.malo, direction=malo.direction, supplier=malo.supplier))
        if malo.supplier:
            serves[malo.supplier].add("supplier")
    melos_by_meter: dict[int, list[MeteringPointNode]] = defaultdict(list)
    for measures, mp in melo_rows:
        melos_by_meter[measures.meter_id].append(MeteringPointNode(
            **_period(measures), melo=mp.melo, direction=mp.direction, grid_operator=mp.grid_operator, msb=mp.msb,
            market_locations=malos_by_melo[mp.id]))
        if mp.grid_operator:
            serves[mp.grid_operator].add("grid_operator")
        if mp.msb:
            serves[mp.msb].add("msb")
    connection_point = None
    if cp_row is not None:
        installed, cp = cp_row
        connection_point = ConnectionPointNode(
            **_period(installed), code=cp.code, street=cp.street, house_number=cp.house_number, postcode=cp.postcode,
            city=cp.city, grid_area=cp.grid_area, grid_operator=cp.grid_operator)
        if cp.grid_operator:
            serves[cp.grid_operator].add("grid_operator")
    partners = (await session.scalars(select(MarketPartner).where(MarketPartner.mp_id.in_(list(serves)))
                                      .order_by(MarketPartner.mp_id))).all() if serves else []
    return GatewayTopology(
        as_of=at,
        connection_point=connection_point,
        meters=[MeterNode(**_period(a), device_id=m.device_id, device_type=m.device_type.code, lmn_type=m.lmn_type,
                          firmware_version=m.firmware_version, calibration_valid_until=m.calibration_valid_until,
                          metering_points=melos_by_meter[m.id]) for a, m in meter_rows],
        cls_modules=[ClsModuleNode(**_period(a), device_id=c.device_id, device_type=c.device_type.code,
                                   controls=c.controls) for a, c in cls_rows],
        market_partners=[PartnerNode(mp_id=p.mp_id, name=p.name, roles=list(p.roles), serves_as=sorted(serves[p.mp_id]))
                         for p in partners],
    )
