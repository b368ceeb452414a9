"""LMN work on a gateway: which of its meters to pair, whether a meter exchange (Zählerwechsel) fits
master data, and moving the old meter's assignments to the new one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.devices.models import Meter
from domain.devices.service import get_gateway, get_meter
from domain.installation.errors import (
    InvalidExchange,
    MeterAssignedElsewhere,
    MeterNotAssigned,
    NoMeterAssigned,
    NoMeterKey,
)
from domain.locations.models import MeteringPoint
from domain.partners.models import MarketPartner
from domain.tariffs import repository as tariff_repo
from domain.tariffs import service as tariffs
from domain.tariffs.models import TafOrder
from domain.tariffs.service import ReadoutTarget
from domain.topology import repository as topology_repo
from domain.topology import service as topology

JUST_BEFORE = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class LmnMeter:
    meter_id: str
    interface: str  # the gateway's LMN interface: lmn-wired | lmn-wireless


def lmn_meter(m: Meter) -> LmnMeter:
    return LmnMeter(m.device_id, tariffs.lmn_interface(m.lmn_type))


async def meters_to_pair(session: AsyncSession, gateway: str, meter_ids: Sequence[str] = ()) -> list[LmnMeter]:
    """The meters to pair (``meter_ids``, default every meter on the gateway): each must be on the
    gateway and have an MK0."""
    gw = await get_gateway(session, gateway)
    at = await topology.db_now(session)
    assigned = {m.device_id: m for m in await tariff_repo.gateway_meters(session, gw.id, at)}
    wanted = list(meter_ids) or sorted(assigned)
    foreign = [m for m in wanted if m not in assigned]
    if foreign:
        raise MeterNotAssigned(f"meter(s) {', '.join(foreign)} are not assigned to {gateway}")
    if not wanted:
        raise NoMeterAssigned(f"no meter is assigned to {gateway}")
    keyless = [m for m in wanted if assigned[m].mk0_ciphertext is None]
    if keyless:
        raise NoMeterKey(f"meter(s) {', '.join(keyless)} have no MK0 in master data")
    return [lmn_meter(assigned[m]) for m in wanted]


def exchange_time(raw: str) -> dt.datetime:
    """The exchange time of the process parameters (ISO 8601 with a UTC offset)."""
    at = dt.datetime.fromisoformat(raw)
    if at.tzinfo is None:
        raise InvalidExchange("exchanged_at needs a UTC offset")
    return at


@dataclass(frozen=True)
class MeterExchange:
    old: LmnMeter
    new: LmnMeter
    metering_points: list[str]
    final_readouts: list[ReadoutTarget]  # one per EMT and metering point of the old meter
    profiles_to_delete: list[tuple[str, str]]  # (kind, profile id): evaluation profiles, then the meter profile
    already_moved: bool


def final_readouts(orders: Sequence[tuple[TafOrder, MarketPartner]], melo_of: dict[int, str], meter_id: str
                   ) -> list[ReadoutTarget]:
    """One final readout of the old meter per EMT and metering point, of the order's cumulative
    registers (1.8.0 if it names none); where the EMT has several orders there, its TAF 6 order
    (readout on demand) wins."""
    finals: dict[tuple[str, str], ReadoutTarget] = {}
    for o, p in orders:
        key = (p.mp_id, melo_of[o.metering_point_id])
        regs = sorted(r for r in o.params.get("registers", []) if ".8." in r) or ["1-0:1.8.0"]
        if key not in finals or o.taf == 6:
            finals[key] = ReadoutTarget(o.id, o.taf, p.mp_id, meter_id, key[1], tuple(regs),
                                        tariffs.evaluation_profile_id(o, meter_id))
    return list(finals.values())


async def check_meter_exchange(session: AsyncSession, gateway: str, old_meter: str, new_meter: str,
                               exchanged_at: str) -> MeterExchange:
    """The old meter must be on this gateway (or already moved by an earlier attempt), the new one
    known, keyed and free at the exchange time."""
    at = exchange_time(exchanged_at)
    gw = await get_gateway(session, gateway)
    now = await topology.db_now(session)
    if at > now + dt.timedelta(minutes=5):
        raise InvalidExchange("exchanged_at lies in the future")
    old, new = await get_meter(session, old_meter), await get_meter(session, new_meter)
    if new.mk0_ciphertext is None:
        raise NoMeterKey(f"meter {new.device_id} has no MK0 in master data")
    old_before = await topology_repo.gateway_of_meter(session, old.id, at - JUST_BEFORE)
    old_at = await topology_repo.gateway_of_meter(session, old.id, at)
    new_at = await topology_repo.gateway_of_meter(session, new.id, at)
    already = new_at == gw.id and old_before == gw.id and old_at is None
    if not already:
        if old_at != gw.id:
            raise MeterNotAssigned(f"meter {old.device_id} is not on gateway {gw.device_id} at {at.isoformat()}")
        if new_at is not None:
            raise MeterAssignedElsewhere(f"meter {new.device_id} is already assigned to a gateway "
                                         f"at {at.isoformat()}")
    melos = await topology_repo.metering_points_of_meter(session, old.id, at - JUST_BEFORE if already else at)
    orders = await tariff_repo.current_orders_of(session, [m.id for m in melos], now)
    active = await tariff_repo.active_profiles(session, gw.id)
    old_mp = tariffs.meter_profile_id(old.device_id)
    deletes = [("evaluation", p.profile_id) for p in active
               if p.kind == "evaluation" and p.content.get("meter_profile") == old_mp]
    if any(p.kind == "meter" and p.profile_id == old_mp for p in active):
        deletes.append(("meter", old_mp))
    return MeterExchange(old=lmn_meter(old), new=lmn_meter(new), metering_points=[m.melo for m in melos],
                         final_readouts=final_readouts(orders, _melos(melos), old.device_id),
                         profiles_to_delete=deletes, already_moved=already)


def _melos(melos: Sequence[MeteringPoint]) -> dict[int, str]:
    return {m.id: m.melo for m in melos}


@dataclass(frozen=True)
class MovedAssignments:
    ended: int
    created: int


async def move_meter_assignments(session: AsyncSession, gateway: str, old_meter: str, new_meter: str,
                                 exchanged_at: str) -> MovedAssignments:
    """End the old meter's gateway and metering point assignments at the exchange time and start
    the new meter's from then. Idempotent: a second call finds the new ones in place."""
    at = exchange_time(exchanged_at)
    ended = created = 0
    gw = await get_gateway(session, gateway)
    old, new = await get_meter(session, old_meter), await get_meter(session, new_meter)
    melo_rows = await topology_repo.metering_point_assignments(session, old.id, at)
    mg = await topology_repo.meter_gateway_assignment(session, old.id, gw.id, at)
    if mg is not None:
        await topology.end_assignment(session, "meter-gateway", mg, valid_to=at)
        ended += 1
    for aid, melo in melo_rows:
        await topology.end_assignment(session, "meter-metering-point", aid, valid_to=at)
        ended += 1
        await topology.assign(session, "meter-metering-point", new.device_id, melo, valid_from=at)
        created += 1
    if await topology_repo.gateway_of_meter(session, new.id, at) is None:
        await topology.assign(session, "meter-gateway", new.device_id, gw.device_id, valid_from=at)
        created += 1
    return MovedAssignments(ended=ended, created=created)
