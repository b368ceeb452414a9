"""TAF orders (create, change, terminate) and the profiles a gateway should carry because of them.

Public for other areas:

* ``create_order / update_order / terminate_order / order_out / list_orders``
* ``plan_profiles(session, gateway, at, order_ids)``: the desired meter, communication and
  evaluation profiles of a gateway from the current orders of its meters' metering points, compared
  with its active profile history: what to write, what to delete, which EMTs' certificates it needs.
* ``record_profiles(...)``: the history after a process applied (part of) a plan.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, InvalidInput, NotFound
from domain import validators as v
from domain.audit.repository import record
from domain.devices.models import Gateway
from domain.devices.service import get_gateway
from domain.locations.models import MeteringPoint
from domain.partners.models import MarketPartner
from domain.tariffs import repository as repo
from domain.tariffs import tafs
from domain.tariffs.models import GatewayProfile, TafOrder
from domain.tariffs.schemas import TafOrderCreate, TafOrderOut, TafOrderUpdate
from domain.topology.service import db_now


class TafOrderNotFound(NotFound):
    code = "taf_order_not_found"


class UnknownTafOrder(InvalidInput):
    code = "unknown_taf_order"


class UnknownMeteringPoint(InvalidInput):
    code = "unknown_metering_point"


class UnknownEmt(InvalidInput):
    code = "unknown_emt"


class EmtRoleMismatch(InvalidInput):
    code = "emt_role_mismatch"


class EmtWithoutEndpoint(InvalidInput):
    code = "emt_without_endpoint"


class DirectionMismatch(InvalidInput):
    code = "direction_mismatch"


class OrderTerminated(Conflict):
    code = "taf_order_terminated"


def meter_data_endpoint(partner: MarketPartner) -> str | None:
    """Where the gateway delivers the EMT's data: its ``meter_data`` endpoint (https)."""
    for ep in partner.endpoints or []:
        if ep.get("purpose") == "meter_data" and str(ep.get("url", "")).startswith("https://"):
            return str(ep["url"])
    return None


async def _partner(session: AsyncSession, raw: str) -> MarketPartner:
    mp_id = v.mp_id(raw)
    partner = await session.scalar(select(MarketPartner).where(MarketPartner.mp_id == mp_id))
    if partner is None:
        raise UnknownEmt(f"no market partner {mp_id}")
    return partner


async def _metering_point(session: AsyncSession, raw: str) -> MeteringPoint:
    melo = v.melo(raw)
    mp = await session.scalar(select(MeteringPoint).where(MeteringPoint.melo == melo))
    if mp is None:
        raise UnknownMeteringPoint(f"no metering point {melo}")
    return mp


def _check_fit(spec: tafs.TafSpec, partner: MarketPartner, mp: MeteringPoint) -> None:
    if not set(partner.roles) & spec.roles:
        raise EmtRoleMismatch(
            f"TAF {spec.taf} ({spec.title}) goes to a partner in role {', '.join(sorted(spec.roles))}; "
            f"{partner.mp_id} is {', '.join(partner.roles)}",
            details={"allowed_roles": sorted(spec.roles), "roles": list(partner.roles)})
    if meter_data_endpoint(partner) is None:
        raise EmtWithoutEndpoint(f"market partner {partner.mp_id} has no https meter_data endpoint to deliver to")
    if spec.direction and mp.direction != spec.direction:
        raise DirectionMismatch(f"TAF {spec.taf} ({spec.title}) needs a {spec.direction} metering point; "
                                f"{mp.melo} is {mp.direction}")


async def create_order(session: AsyncSession, body: TafOrderCreate) -> tuple[TafOrder, int | None]:
    """Store a new order; an active order for the same metering point and TAF is terminated
    (replaced; with another EMT this is an EMT change). Returns (order, id of the replaced order)."""
    spec = tafs.spec(body.taf)
    params = tafs.validate_params(body.taf, body.params)
    mp = await _metering_point(session, body.metering_point)
    partner = await _partner(session, body.emt)
    _check_fit(spec, partner, mp)
    now = await db_now(session)
    # Timestamps without offset are German local time, as everywhere in the API.
    valid_from, valid_to = v.aware(body.valid_from) or now, v.aware(body.valid_to)
    if valid_to is not None and valid_to <= valid_from:
        raise InvalidInput("valid_to must be after valid_from", code="invalid_period")
    old = await repo.active_order(session, mp.id, body.taf)
    if old is not None:
        old.status = "terminated"
        old.terminated_at = now
        change = "EMT change" if old.emt_id != partner.id else "new order"
        old.termination_reason = f"replaced ({change})"
        await session.flush()
    order = TafOrder(metering_point_id=mp.id, taf=body.taf, emt_id=partner.id, params=params, valid_from=valid_from,
                     valid_to=valid_to, status="active", external_ref=body.external_ref)
    session.add(order)
    await session.flush()
    record(session, "create", "taf_order", str(order.id), {
        "metering_point": {"old": None, "new": mp.melo}, "taf": {"old": None, "new": body.taf},
        "emt": {"old": None, "new": partner.mp_id}, "params": {"old": None, "new": params}})
    if old is not None:
        old.replaced_by = order.id
        old.termination_reason = f"{old.termination_reason} by order {order.id}"
        record(session, "terminate", "taf_order", str(old.id), {
            "status": {"old": "active", "new": "terminated"}, "replaced_by": {"old": None, "new": order.id}})
        await session.flush()
    return order, old.id if old is not None else None


async def _get(session: AsyncSession, order_id: int, *, for_update: bool = False) -> TafOrder:
    stmt = select(TafOrder).where(TafOrder.id == order_id)
    if for_update:
        stmt = stmt.with_for_update()
    order = await session.scalar(stmt)
    if order is None:
        raise TafOrderNotFound(f"TAF order {order_id} not found")
    return order


async def check_orders_exist(session: AsyncSession, order_ids: list[int]) -> None:
    """Refuses (``unknown_taf_order``) when any of ``order_ids`` is no order."""
    known = await repo.existing_order_ids(session, order_ids)
    unknown = [o for o in order_ids if o not in known]
    if unknown:
        raise UnknownTafOrder(f"TAF order(s) {', '.join(map(str, unknown))} do not exist",
                              details={"unknown": unknown[:20]})


async def update_order(session: AsyncSession, order_id: int, body: TafOrderUpdate) -> TafOrder:
    order = await _get(session, order_id, for_update=True)
    if order.status != "active":
        raise OrderTerminated(f"TAF order {order_id} is terminated; place a new order")
    raw = body.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    if "params" in raw and raw["params"] is not None:
        params = tafs.validate_params(order.taf, raw["params"])
        if params != order.params:
            changes["params"] = {"old": order.params, "new": params}
            order.params = params
    if "valid_to" in raw:
        valid_to = v.aware(raw["valid_to"])
        if valid_to is not None and valid_to <= order.valid_from:
            raise InvalidInput("valid_to must lie after valid_from", code="invalid_period")
        changes["valid_to"] = {"old": str(order.valid_to), "new": str(valid_to)}
        order.valid_to = valid_to
    if "external_ref" in raw:
        changes["external_ref"] = {"old": order.external_ref, "new": raw["external_ref"]}
        order.external_ref = raw["external_ref"]
    if changes:
        record(session, "update", "taf_order", str(order.id), changes)
        await session.flush()
    return order


async def terminate_order(session: AsyncSession, order_id: int, reason: str) -> TafOrder:
    """End an order (kept as history). Idempotent; the profile disappears with the next rollout."""
    order = await _get(session, order_id, for_update=True)
    if order.status == "terminated":
        return order
    order.status = "terminated"
    order.terminated_at = await db_now(session)
    order.termination_reason = reason
    record(session, "terminate", "taf_order", str(order.id), {"status": {"old": "active", "new": "terminated"},
                                                               "reason": {"old": None, "new": reason}})
    await session.flush()
    return order


def _out(row: Any, replaced: int | None = None) -> TafOrderOut:
    o, melo, emt, gateway = row
    return TafOrderOut(id=o.id, metering_point=melo, taf=o.taf, emt=emt, params=o.params, valid_from=o.valid_from,
                       valid_to=o.valid_to, status=o.status, terminated_at=o.terminated_at,
                       termination_reason=o.termination_reason, replaced_by=o.replaced_by,
                       external_ref=o.external_ref, gateway=gateway, terminated_order=replaced,
                       created_at=o.created_at, created_by=o.created_by, updated_at=o.updated_at,
                       updated_by=o.updated_by)


async def order_out(session: AsyncSession, order_id: int, replaced: int | None = None) -> TafOrderOut:
    row = (await session.execute(repo.orders_with_keys(await db_now(session)).where(TafOrder.id == order_id))).first()
    if row is None:
        raise TafOrderNotFound(f"TAF order {order_id} not found")
    return _out(row, replaced)


async def list_orders(session: AsyncSession, *, metering_point: str | None = None, emt: str | None = None,
                      taf: int | None = None, status: str | None = None, gateway: str | None = None,
                      after: int | None = None, limit: int = 100) -> list[TafOrderOut]:
    stmt = repo.orders_with_keys(await db_now(session))
    if metering_point:
        stmt = stmt.where(MeteringPoint.melo == v.melo(metering_point))
    if emt:
        stmt = stmt.where(MarketPartner.mp_id == v.mp_id(emt))
    if taf is not None:
        stmt = stmt.where(TafOrder.taf == taf)
    if status:
        stmt = stmt.where(TafOrder.status == status)
    if gateway:
        stmt = stmt.where(stmt.selected_columns["gateway"] == v.gateway_id(gateway))
    if after:
        stmt = stmt.where(TafOrder.id < after)
    rows = (await session.execute(stmt.order_by(TafOrder.id.desc()).limit(limit))).all()
    return [_out(r) for r in rows]


# -- the profiles a gateway should carry -------------------------------------------------------

def content_sha256(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def meter_profile_id(meter_id: str) -> str:
    return f"mp-{meter_id}"


def communication_profile_id(emt: str) -> str:
    return f"cp-{emt}"


def evaluation_profile_id(order: TafOrder, meter_id: str) -> str:
    """Per order and meter: a new order (e.g. another EMT) or an exchanged meter gives a new profile,
    and the old one is deleted rather than silently rewritten."""
    return f"ep-taf{order.taf}-{order.id}-{meter_id}"


@dataclass(frozen=True)
class Desired:
    kind: str  # meter | communication | evaluation
    profile_id: str
    content: dict[str, Any]
    order_id: int | None = None

    @property
    def sha256(self) -> str:
        return content_sha256(self.content)


@dataclass(frozen=True)
class ReadoutTarget:
    """Who gets a readout of which meter (one per evaluation profile)."""

    order_id: int
    taf: int
    recipient: str
    meter_id: str
    metering_point: str
    registers: tuple[str, ...]
    profile_id: str


@dataclass
class ProfilePlan:
    gateway: str
    meters: list[tuple[str, str]] = field(default_factory=list)  # (meter id, LMN interface)
    desired: list[Desired] = field(default_factory=list)
    writes: list[Desired] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)  # (kind, profile id): evaluation first
    emts: list[str] = field(default_factory=list)  # recipients whose certificates the gateway needs
    readouts: list[ReadoutTarget] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # master data that keeps a profile from being built


def lmn_interface(lmn_type: str) -> str:
    """The gateway's LMN interface a meter is paired on."""
    return "lmn-wireless" if lmn_type == "wireless" else "lmn-wired"


async def plan_profiles(session: AsyncSession, gateway: Gateway | str, at: datetime | None = None, *,
                        order_ids: list[int] | None = None) -> ProfilePlan:
    """Desired profiles of ``gateway`` at ``at`` and what differs from its active history.

    With ``order_ids`` only the evaluation profiles of those orders (and the meter/communication
    profiles they use) are considered; otherwise the gateway is brought to all its current orders.
    """
    gw = gateway if isinstance(gateway, Gateway) else await get_gateway(session, gateway)
    at = at or await db_now(session)
    plan = ProfilePlan(gw.device_id)
    meters = await repo.gateway_meters(session, gw.id, at)
    plan.meters = [(m.device_id, lmn_interface(m.lmn_type)) for m in meters]
    by_pk = {m.id: m for m in meters}
    melos = await repo.meters_metering_points(session, list(by_pk), at)
    meter_of_melo = {mp.id: by_pk[m_pk] for m_pk, mp in melos}
    melo_by_pk = {mp.id: mp for _, mp in melos}
    orders = await repo.current_orders_of(session, list(melo_by_pk), at)

    registers: dict[str, set[str]] = {m.device_id: {"1-0:1.8.0"} for m in meters}
    intervals: dict[str, list[int]] = {m.device_id: [tafs.QUARTER_HOUR] for m in meters}
    for _, mp in melos:
        if mp.direction == "feed_in":
            registers[meter_of_melo[mp.id].device_id].add("1-0:2.8.0")
    evaluations: list[Desired] = []
    comms: dict[str, Desired] = {}
    for order, partner in orders:
        meter = meter_of_melo[order.metering_point_id]
        registers[meter.device_id].update(order.params.get("registers", []))
        interval, delivery = tafs.wire_timing(order.taf, order.params)
        intervals[meter.device_id].append(interval)
        if order_ids is not None and order.id not in order_ids:
            continue
        endpoint = meter_data_endpoint(partner)
        if endpoint is None:
            plan.problems.append(f"EMT {partner.mp_id} of order {order.id} has no https meter_data endpoint")
            continue
        cp = communication_profile_id(partner.mp_id)
        comms[partner.mp_id] = Desired("communication", cp, {
            "profile_id": cp, "peer": partner.mp_id, "role": "emt", "endpoint": endpoint, "retries": 3,
            "retry_interval_s": 300})
        ep = evaluation_profile_id(order, meter.device_id)
        content = {
            "profile_id": ep, "taf": order.taf, "recipient": partner.mp_id, "communication_profile": cp,
            "meter_profile": meter_profile_id(meter.device_id), "interval_s": interval, "delivery_period_s": delivery,
            "registers": sorted(order.params.get("registers", [])), "active": True,
            "valid_from": order.valid_from.isoformat(),
            "valid_to": order.valid_to.isoformat() if order.valid_to else None,
        }
        if order.taf == 2:  # the daily tariff schedule travels with the profile (only TAF 2 has one)
            content["switching_times"] = [{"at": s["at"], "register": s["tariff_register"]}
                                          for s in sorted(order.params["switching_times"], key=lambda s: s["at"])]
        evaluations.append(Desired("evaluation", ep, content, order.id))
        plan.readouts.append(ReadoutTarget(order.id, order.taf, partner.mp_id, meter.device_id,
                                           melo_by_pk[order.metering_point_id].melo,
                                           tuple(sorted(order.params.get("registers", []))), ep))
    used_meters = {e.content["meter_profile"] for e in evaluations}
    meter_profiles = []
    for m in meters:
        pid = meter_profile_id(m.device_id)
        if order_ids is not None and pid not in used_meters:
            continue
        meter_profiles.append(Desired("meter", pid, {
            "profile_id": pid, "meter_id": m.device_id, "interface": lmn_interface(m.lmn_type),
            "capture_period_s": math.gcd(*intervals[m.device_id]),
            "registers": [{"obis": r, "unit": tafs.UNITS.get(r)} for r in sorted(registers[m.device_id])]}))
    plan.desired = [*meter_profiles, *comms.values(), *evaluations]

    active = {(p.kind, p.profile_id): p for p in await repo.active_profiles(session, gw.id)}
    plan.writes = [d for d in plan.desired if (a := active.get((d.kind, d.profile_id))) is None
                   or a.content_sha256 != d.sha256]
    wanted = {(d.kind, d.profile_id) for d in plan.desired}
    stale = [p for key, p in active.items() if key not in wanted and p.kind in ("evaluation", "meter")]
    if order_ids is not None:
        stale = [p for p in stale if p.kind == "evaluation" and p.taf_order_id in order_ids]
    plan.deletes = [(p.kind, p.profile_id) for p in sorted(stale, key=lambda p: (p.kind != "evaluation", p.id))]
    plan.emts = sorted({d.content["recipient"] if d.kind == "evaluation" else d.content["peer"]
                        for d in plan.writes if d.kind in ("evaluation", "communication")})
    return plan


# -- profile history ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AppliedProfile:
    kind: str
    profile_id: str
    content: dict[str, Any]
    order_id: int | None = None


async def record_profiles(session: AsyncSession, gateway: str, *, written: list[AppliedProfile],
                          ended: list[tuple[str, str]], by: str, end_all: bool = False) -> tuple[int, int]:
    """Bring the history in line with what a process did on the gateway. Idempotent: a profile
    recorded with the same content stays as it is. Returns (rows written, rows ended)."""
    gw = await get_gateway(session, gateway)
    now = await db_now(session)
    active = {(p.kind, p.profile_id): p for p in await repo.active_profiles(session, gw.id)}
    new = ended_count = 0
    for item in written:
        sha = content_sha256(item.content)
        old = active.get((item.kind, item.profile_id))
        if old is not None and old.content_sha256 == sha:
            continue
        if old is not None:
            old.status, old.valid_to, old.ended_by = "superseded", now, by
            await session.flush()
        session.add(GatewayProfile(gateway_id=gw.id, kind=item.kind, profile_id=item.profile_id, content=item.content,
                                   content_sha256=sha, taf_order_id=item.order_id, status="active", valid_from=now,
                                   written_by=by))
        new += 1
    targets = list(active.values()) if end_all else [active[k] for k in ended if k in active]
    for p in targets:
        if p.status == "active":
            p.status, p.valid_to, p.ended_by = "terminated", now, by
            ended_count += 1
    await session.flush()
    if new or ended_count:
        record(session, "profiles", "gateway", gw.device_id, {"written": {"old": None, "new": new},
                                                              "ended": {"old": None, "new": ended_count},
                                                              "by": {"old": None, "new": by}})
    return new, ended_count


async def unused_communication_profiles(session: AsyncSession, gateway: str) -> list[str]:
    """EMT communication profiles active in the gateway's history that no active evaluation profile
    uses any more (the EMT's last one was terminated): to delete from the gateway."""
    gw = await get_gateway(session, gateway)
    active = await repo.active_profiles(session, gw.id)
    used = {p.content.get("communication_profile") for p in active if p.kind == "evaluation"}
    return [p.profile_id for p in active
            if p.kind == "communication" and p.content.get("role", "emt") == "emt" and p.profile_id not in used]
