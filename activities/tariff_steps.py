"""Domain steps of profile work: which profiles a gateway should carry (from the TAF orders of its
metering points) compared with what it carries, and the profile history after a process changed it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities.steps_common import Steps, domain_refusals, emt_certificates, gwa_certificates, refusal
from domain.tariffs import service as tariffs
from domain.tariffs.models import TafOrder
from headend import contract as gc


@dataclass(frozen=True, kw_only=True)
class ProfilePlanInput:
    gateway_id: str
    taf_order_ids: list[int] = field(default_factory=list)  # empty: every current order
    write_all: bool = False  # every desired profile, whatever the history says (commissioning)
    with_gwa_certificates: bool = False


@dataclass(frozen=True, kw_only=True)
class ProfileRecord:
    kind: str
    profile_id: str
    content: dict[str, Any]
    order_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class ProfileRef:
    kind: str
    profile_id: str


@dataclass(frozen=True, kw_only=True)
class ReadoutSpec:
    recipient: str
    meter_id: str
    metering_point: str
    registers: list[str]
    profile_id: str


@dataclass(frozen=True, kw_only=True)
class MeterRef:
    meter_id: str
    interface: str


@dataclass(frozen=True, kw_only=True)
class RolloutPlan:
    gateway_id: str
    certificates: list[gc.CertificateToInstall] = field(default_factory=list)
    meter_profiles: list[gc.MeterProfile] = field(default_factory=list)
    communication_profiles: list[gc.CommunicationProfile] = field(default_factory=list)
    evaluation_profiles: list[gc.EvaluationProfile] = field(default_factory=list)
    deletes: list[ProfileRef] = field(default_factory=list)  # evaluation profiles first
    records: list[ProfileRecord] = field(default_factory=list)  # one per profile to write
    readouts: list[ReadoutSpec] = field(default_factory=list)
    meters: list[MeterRef] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def record_of(self, kind: str, profile_id: str) -> ProfileRecord:
        return next(r for r in self.records if r.kind == kind and r.profile_id == profile_id)

    @property
    def writes(self) -> int:
        return len(self.meter_profiles) + len(self.communication_profiles) + len(self.evaluation_profiles)


@dataclass(frozen=True, kw_only=True)
class RecordProfilesInput:
    gateway_id: str
    written: list[ProfileRecord] = field(default_factory=list)
    ended: list[ProfileRef] = field(default_factory=list)
    end_all: bool = False
    by: str = ""


@dataclass(frozen=True, kw_only=True)
class RecordedProfiles:
    written: int
    ended: int


def _wire(d: tariffs.Desired) -> Any:
    c = d.content
    if d.kind == "meter":
        return gc.MeterProfile(profile_id=c["profile_id"], meter_id=c["meter_id"], interface=c["interface"],
                               capture_period_s=c["capture_period_s"],
                               registers=tuple(gc.RegisterSpec(obis=r["obis"], unit=r.get("unit"))
                                               for r in c["registers"]))
    if d.kind == "communication":
        return gc.CommunicationProfile(profile_id=c["profile_id"], peer=c["peer"], role=c["role"],
                                       endpoint=c["endpoint"], retries=c["retries"],
                                       retry_interval_s=c["retry_interval_s"])
    return gc.EvaluationProfile(profile_id=c["profile_id"], taf=c["taf"], recipient=c["recipient"],
                                communication_profile=c["communication_profile"], meter_profile=c["meter_profile"],
                                interval_s=c["interval_s"], delivery_period_s=c["delivery_period_s"],
                                registers=tuple(c["registers"]), active=c["active"], valid_from=c["valid_from"],
                                valid_to=c["valid_to"],
                                switching_times=tuple(gc.SwitchingTimeSpec(at=s["at"], register=s["register"])
                                                      for s in c.get("switching_times", ())))


async def build_plan(session: AsyncSession, inp: ProfilePlanInput, now: dt.datetime) -> RolloutPlan:
    """The plan as workflow data: profiles in the command contract's shapes, the certificates the
    gateway needs for them, and what the history will record once they are written."""
    order_ids = sorted(set(inp.taf_order_ids)) or None
    if order_ids:
        known = set((await session.scalars(select(TafOrder.id).where(TafOrder.id.in_(order_ids)))).all())
        unknown = [o for o in order_ids if o not in known]
        if unknown:
            raise refusal("unknown_taf_order", f"TAF order(s) {', '.join(map(str, unknown))} do not exist")
    plan = await tariffs.plan_profiles(session, inp.gateway_id, order_ids=order_ids)
    chosen = plan.desired if inp.write_all else plan.writes
    emts = sorted({d.content.get("recipient") or d.content["peer"] for d in chosen
                   if d.kind in ("evaluation", "communication")})
    certs, problems = await emt_certificates(session, emts, now)
    if inp.with_gwa_certificates:
        gwa, gwa_problems = await gwa_certificates(session, now)
        certs, problems = gwa + certs, gwa_problems + problems
    return RolloutPlan(
        gateway_id=plan.gateway, certificates=certs,
        meter_profiles=[_wire(d) for d in chosen if d.kind == "meter"],
        communication_profiles=[_wire(d) for d in chosen if d.kind == "communication"],
        evaluation_profiles=[_wire(d) for d in chosen if d.kind == "evaluation"],
        deletes=[ProfileRef(kind=k, profile_id=p) for k, p in plan.deletes],
        records=[ProfileRecord(kind=d.kind, profile_id=d.profile_id, content=d.content, order_id=d.order_id)
                 for d in chosen],
        readouts=[ReadoutSpec(recipient=r.recipient, meter_id=r.meter_id, metering_point=r.metering_point,
                              registers=list(r.registers), profile_id=r.profile_id) for r in plan.readouts],
        meters=[MeterRef(meter_id=m, interface=i) for m, i in plan.meters],
        problems=[*plan.problems, *problems],
    )


@dataclass(frozen=True, kw_only=True)
class UnusedProfilesInput:
    gateway_id: str


@dataclass(frozen=True, kw_only=True)
class UnusedProfiles:
    profiles: list[ProfileRef] = field(default_factory=list)


class TariffSteps(Steps):
    @activity.defn
    @domain_refusals
    async def plan_profile_rollout(self, inp: ProfilePlanInput) -> RolloutPlan:
        async with self._session() as session:
            plan = await build_plan(session, inp, dt.datetime.now(dt.UTC))
        if plan.problems:
            raise refusal("master_data_incomplete", "; ".join(plan.problems))
        return plan

    @activity.defn
    @domain_refusals
    async def record_profile_history(self, inp: RecordProfilesInput) -> RecordedProfiles:
        async with self._session() as session, session.begin():
            written, ended = await tariffs.record_profiles(
                session, inp.gateway_id, by=inp.by or activity.info().workflow_id or "", end_all=inp.end_all,
                written=[tariffs.AppliedProfile(r.kind, r.profile_id, r.content, r.order_id) for r in inp.written],
                ended=[(r.kind, r.profile_id) for r in inp.ended])
        return RecordedProfiles(written=written, ended=ended)

    @activity.defn
    @domain_refusals
    async def find_unused_communication_profiles(self, inp: UnusedProfilesInput) -> UnusedProfiles:
        """EMT communication profiles active in the gateway's history that no active evaluation
        profile uses any more (the EMT's last one was terminated): to delete from the gateway."""
        from domain.devices.service import get_gateway
        from domain.tariffs import repository as profiles_repo

        async with self._session() as session:
            gw = await get_gateway(session, inp.gateway_id)
            active = await profiles_repo.active_profiles(session, gw.id)
        used = {p.content.get("communication_profile") for p in active if p.kind == "evaluation"}
        return UnusedProfiles(profiles=[ProfileRef(kind="communication", profile_id=p.profile_id) for p in active
                                        if p.kind == "communication" and p.content.get("role", "emt") == "emt"
                                        and p.profile_id not in used])
