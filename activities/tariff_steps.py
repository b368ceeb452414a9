"""Domain steps of profile work: which profiles a gateway should carry (from the TAF orders of its
metering points) compared with what it carries, and the profile history after a process changed it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity

from activities.steps_common import Steps, domain_refusals
from domain.certificates.selection import Installable
from domain.tariffs import rollout as rollouts
from domain.tariffs import service as tariffs
from domain.tariffs.rollout import Rollout
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


def _meter_profile(c: dict[str, Any]) -> gc.MeterProfile:
    return gc.MeterProfile(profile_id=c["profile_id"], meter_id=c["meter_id"], interface=c["interface"],
                           capture_period_s=c["capture_period_s"],
                           registers=tuple(gc.RegisterSpec(obis=r["obis"], unit=r.get("unit")) for r in c["registers"]))


def _communication_profile(c: dict[str, Any]) -> gc.CommunicationProfile:
    return gc.CommunicationProfile(profile_id=c["profile_id"], peer=c["peer"], role=c["role"], endpoint=c["endpoint"],
                                   retries=c["retries"], retry_interval_s=c["retry_interval_s"])


def _evaluation_profile(c: dict[str, Any]) -> gc.EvaluationProfile:
    return gc.EvaluationProfile(profile_id=c["profile_id"], taf=c["taf"], recipient=c["recipient"],
                                communication_profile=c["communication_profile"], meter_profile=c["meter_profile"],
                                interval_s=c["interval_s"], delivery_period_s=c["delivery_period_s"],
                                registers=tuple(c["registers"]), active=c["active"], valid_from=c["valid_from"],
                                valid_to=c["valid_to"],
                                switching_times=tuple(gc.SwitchingTimeSpec(at=s["at"], register=s["register"])
                                                      for s in c.get("switching_times", ())))


def certificate_to_install(c: Installable) -> gc.CertificateToInstall:
    return gc.CertificateToInstall(owner=c.owner, role=c.role, usage=c.usage, pem=c.pem)


def readout_spec(r: tariffs.ReadoutTarget) -> ReadoutSpec:
    return ReadoutSpec(recipient=r.recipient, meter_id=r.meter_id, metering_point=r.metering_point,
                       registers=list(r.registers), profile_id=r.profile_id)


def rollout_plan(r: Rollout) -> RolloutPlan:
    """The plan as workflow data: profiles and certificates in the command contract's shapes, and
    what the history will record once they are written."""
    return RolloutPlan(
        gateway_id=r.gateway, certificates=[certificate_to_install(c) for c in r.certificates],
        meter_profiles=[_meter_profile(d.content) for d in r.profiles if d.kind == "meter"],
        communication_profiles=[_communication_profile(d.content) for d in r.profiles if d.kind == "communication"],
        evaluation_profiles=[_evaluation_profile(d.content) for d in r.profiles if d.kind == "evaluation"],
        deletes=[ProfileRef(kind=k, profile_id=p) for k, p in r.deletes],
        records=[ProfileRecord(kind=d.kind, profile_id=d.profile_id, content=d.content, order_id=d.order_id)
                 for d in r.profiles],
        readouts=[readout_spec(t) for t in r.readouts],
        meters=[MeterRef(meter_id=m, interface=i) for m, i in r.meters],
        problems=list(r.problems),
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
            rollout = await rollouts.complete_rollout(
                session, inp.gateway_id, dt.datetime.now(dt.UTC), order_ids=inp.taf_order_ids,
                write_all=inp.write_all, with_gwa_certificates=inp.with_gwa_certificates)
        return rollout_plan(rollout)

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
        """EMT communication profiles no active evaluation profile uses any more: to delete."""
        async with self._session() as session:
            unused = await tariffs.unused_communication_profiles(session, inp.gateway_id)
        return UnusedProfiles(profiles=[ProfileRef(kind="communication", profile_id=p) for p in unused])
