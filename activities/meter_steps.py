"""Domain steps of LMN work: which meters to pair, whether a meter exchange is consistent with
master data, and moving the assignments from the old meter to the new one (the rules:
``domain/installation/meters.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import activity

from activities.steps_common import Steps, domain_refusals
from activities.tariff_steps import MeterRef, ProfileRef, ReadoutSpec, readout_spec
from domain.installation import meters


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


def _meter_ref(m: meters.LmnMeter) -> MeterRef:
    return MeterRef(meter_id=m.meter_id, interface=m.interface)


class MeterSteps(Steps):
    @activity.defn
    @domain_refusals
    async def choose_meters_to_pair(self, inp: MetersToPairInput) -> MetersToPair:
        async with self._session() as session:
            chosen = await meters.meters_to_pair(session, inp.gateway_id, inp.meter_ids)
        return MetersToPair(meters=[_meter_ref(m) for m in chosen])

    @activity.defn
    @domain_refusals
    async def check_meter_exchange(self, inp: MeterExchangeInput) -> MeterExchangePlan:
        async with self._session() as session:
            ex = await meters.check_meter_exchange(session, inp.gateway_id, inp.old_meter_id, inp.new_meter_id,
                                                   inp.exchanged_at)
        deletes = [ProfileRef(kind=k, profile_id=p) for k, p in ex.profiles_to_delete]
        return MeterExchangePlan(old=_meter_ref(ex.old), new=_meter_ref(ex.new), metering_points=ex.metering_points,
                                 final_readouts=[readout_spec(r) for r in ex.final_readouts],
                                 profiles_to_delete=deletes, already_moved=ex.already_moved)

    @activity.defn
    @domain_refusals
    async def move_meter_assignments(self, inp: MeterExchangeInput) -> MovedAssignments:
        async with self._session() as session, session.begin():
            moved = await meters.move_meter_assignments(session, inp.gateway_id, inp.old_meter_id, inp.new_meter_id,
                                                        inp.exchanged_at)
        return MovedAssignments(ended=moved.ended, created=moved.created)
