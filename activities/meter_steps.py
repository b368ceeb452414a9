"""Domain steps of LMN work: which meters to pair, whether a meter exchange is consistent with
master data, and moving the assignments from the old meter to the new one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from temporalio import activity

from activities.steps_common import Steps, domain_refusals, refusal
from activities.tariff_steps import MeterRef, ProfileRef, ReadoutSpec
from domain.devices.models import Meter
from domain.devices.service import get_gateway, get_meter
from domain.locations.models import MeteringPoint
from domain.tariffs import repository as tariff_repo
from domain.tariffs import service as tariffs
from domain.topology import service as topology
from domain.topology.models import MeterGateway, MeterMeteringPoint
from domain.topology.repository import valid_at


@dataclass(frozen=True, kw_only=True)
class MetersToPairInput:
    gateway_id: str
    meter_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class MetersToPair:
    meters: list[MeterRef]


@dataclass(frozen=True, kw_only=True)
class MeterExchangeInput:
    gateway_id: str
    old_meter_id: str
    new_meter_id: str
    exchanged_at: str  # ISO 8601


@dataclass(frozen=True, kw_only=True)
class MeterExchangePlan:
    old: MeterRef
    new: MeterRef
    metering_points: list[str]
    final_readouts: list[ReadoutSpec]  # one per EMT order on the old meter's metering points
    profiles_to_delete: list[ProfileRef]  # evaluation profiles on the old meter, then its meter profile
    already_moved: bool = False


@dataclass(frozen=True, kw_only=True)
class MovedAssignments:
    ended: int
    created: int


def _interface(m: Meter) -> str:
    return "lmn-wireless" if m.lmn_type == "wireless" else "lmn-wired"


def _at(raw: str) -> dt.datetime:
    at = dt.datetime.fromisoformat(raw)
    if at.tzinfo is None:
        raise refusal("invalid_params", "exchanged_at needs a UTC offset")
    return at


class MeterSteps(Steps):
    @activity.defn
    @domain_refusals
    async def choose_meters_to_pair(self, inp: MetersToPairInput) -> MetersToPair:
        async with self._session() as session:
            gw = await get_gateway(session, inp.gateway_id)
            at = await topology.db_now(session)
            rows = (await session.execute(
                select(Meter).join(MeterGateway, (MeterGateway.meter_id == Meter.id) & valid_at(MeterGateway, at))
                .where(MeterGateway.gateway_id == gw.id).order_by(Meter.device_id))).scalars().all()
        assigned = {m.device_id: m for m in rows}
        wanted = inp.meter_ids or sorted(assigned)
        foreign = [m for m in wanted if m not in assigned]
        if foreign:
            raise refusal("meter_not_assigned", f"meter(s) {', '.join(foreign)} are not assigned to {inp.gateway_id}")
        if not wanted:
            raise refusal("no_meter_assigned", f"no meter is assigned to {inp.gateway_id}")
        keyless = [m for m in wanted if assigned[m].mk0_ciphertext is None]
        if keyless:
            raise refusal("no_meter_key", f"meter(s) {', '.join(keyless)} have no MK0 in master data")
        return MetersToPair(meters=[MeterRef(meter_id=m, interface=_interface(assigned[m])) for m in wanted])

    @activity.defn
    @domain_refusals
    async def check_meter_exchange(self, inp: MeterExchangeInput) -> MeterExchangePlan:
        """The old meter must be on this gateway (or already moved by an earlier attempt), the new one
        known, keyed and free at the exchange time."""
        at = _at(inp.exchanged_at)
        async with self._session() as session:
            gw = await get_gateway(session, inp.gateway_id)
            now = await topology.db_now(session)
            if at > now + dt.timedelta(minutes=5):
                raise refusal("invalid_params", "exchanged_at lies in the future")
            old, new = await get_meter(session, inp.old_meter_id), await get_meter(session, inp.new_meter_id)
            if new.mk0_ciphertext is None:
                raise refusal("no_meter_key", f"meter {new.device_id} has no MK0 in master data")
            old_at = await _gateway_of(session, old.id, at - dt.timedelta(microseconds=1))
            new_at = await _gateway_of(session, new.id, at)
            already = new_at == gw.id and old_at == gw.id and await _gateway_of(session, old.id, at) is None
            if not already:
                if await _gateway_of(session, old.id, at) != gw.id:
                    raise refusal("meter_not_assigned", f"meter {old.device_id} is not on gateway {gw.device_id} "
                                                        f"at {at.isoformat()}")
                if new_at is not None:
                    raise refusal("meter_assigned_elsewhere", f"meter {new.device_id} is already assigned to a "
                                                              f"gateway at {at.isoformat()}")
            melo_at = at - dt.timedelta(microseconds=1) if already else at
            melos = (await session.execute(
                select(MeteringPoint).join(MeterMeteringPoint, MeterMeteringPoint.metering_point_id == MeteringPoint.id)
                .where(MeterMeteringPoint.meter_id == old.id, valid_at(MeterMeteringPoint, melo_at))
                .order_by(MeteringPoint.melo))).scalars().all()
            orders = await tariff_repo.current_orders_of(session, [m.id for m in melos], now)
            melo_of = {m.id: m.melo for m in melos}
            finals: dict[tuple[str, str], ReadoutSpec] = {}  # one per EMT and metering point
            for o, p in orders:
                key = (p.mp_id, melo_of[o.metering_point_id])
                regs = sorted(r for r in o.params.get("registers", []) if ".8." in r) or ["1-0:1.8.0"]
                if key not in finals or o.taf == 6:
                    finals[key] = ReadoutSpec(recipient=p.mp_id, meter_id=old.device_id, metering_point=key[1],
                                              registers=regs,
                                              profile_id=tariffs.evaluation_profile_id(o, old.device_id))
            active = await tariff_repo.active_profiles(session, gw.id)
            old_mp = tariffs.meter_profile_id(old.device_id)
            deletes = [ProfileRef(kind="evaluation", profile_id=p.profile_id) for p in active
                       if p.kind == "evaluation" and p.content.get("meter_profile") == old_mp]
            if any(p.kind == "meter" and p.profile_id == old_mp for p in active):
                deletes.append(ProfileRef(kind="meter", profile_id=old_mp))
            return MeterExchangePlan(old=MeterRef(meter_id=old.device_id, interface=_interface(old)),
                                     new=MeterRef(meter_id=new.device_id, interface=_interface(new)),
                                     metering_points=[m.melo for m in melos], final_readouts=list(finals.values()),
                                     profiles_to_delete=deletes, already_moved=already)

    @activity.defn
    @domain_refusals
    async def move_meter_assignments(self, inp: MeterExchangeInput) -> MovedAssignments:
        """End the old meter's gateway and metering point assignments at the exchange time and start
        the new meter's from then. Idempotent: a second call finds the new ones in place."""
        at = _at(inp.exchanged_at)
        ended = created = 0
        async with self._session() as session, session.begin():
            gw = await get_gateway(session, inp.gateway_id)
            old, new = await get_meter(session, inp.old_meter_id), await get_meter(session, inp.new_meter_id)
            melo_rows = (await session.execute(
                select(MeterMeteringPoint.id, MeteringPoint.melo)
                .join(MeteringPoint, MeteringPoint.id == MeterMeteringPoint.metering_point_id)
                .where(MeterMeteringPoint.meter_id == old.id, valid_at(MeterMeteringPoint, at)))).all()
            mg = await session.scalar(select(MeterGateway.id).where(
                MeterGateway.meter_id == old.id, MeterGateway.gateway_id == gw.id, valid_at(MeterGateway, at)))
            if mg is not None:
                await topology.end_assignment(session, "meter-gateway", mg, valid_to=at)
                ended += 1
            for aid, melo in melo_rows:
                await topology.end_assignment(session, "meter-metering-point", aid, valid_to=at)
                ended += 1
                await topology.assign(session, "meter-metering-point", new.device_id, melo, valid_from=at)
                created += 1
            if await _gateway_of(session, new.id, at) is None:
                await topology.assign(session, "meter-gateway", new.device_id, gw.device_id, valid_from=at)
                created += 1
        return MovedAssignments(ended=ended, created=created)


async def _gateway_of(session, meter_pk: int, at: dt.datetime) -> int | None:  # type: ignore[no-untyped-def]
    return await session.scalar(select(MeterGateway.gateway_id).where(MeterGateway.meter_id == meter_pk,
                                                                      valid_at(MeterGateway, at)))

