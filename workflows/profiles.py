"""Applying a profile plan to one gateway from inside a process workflow: certificates first, then
meter, communication and evaluation profiles (each referring to the ones before), then deletions
(evaluation profiles before the meter profiles they use). Remembers what it did, so a caller can
record it in the history or undo it."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # (imported by its full name so the workflow sandbox registers it: the converter resolves the
    # type hints of nested command dataclasses through sys.modules)
    import headend.contract as gc
    from activities.tariff_steps import ProfileRecord, ProfileRef, RecordedProfiles, RecordProfilesInput, RolloutPlan
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.gateway import GatewayLink


@dataclass
class ProfileWork:
    """What one workflow did to a gateway's profiles."""

    written: list[ProfileRecord] = field(default_factory=list)
    created: list[ProfileRef] = field(default_factory=list)  # written and not there before (status created)
    deleted: list[ProfileRef] = field(default_factory=list)
    certificates_installed: int = 0

    async def install_certificates(self, wf: GatewayProcessWorkflow, link: GatewayLink, plan: RolloutPlan,
                                   step: str = "install_certificates") -> None:
        if not plan.certificates:
            return
        gw = plan.gateway_id
        result = await link.run("install_certificates", lambda cid: gc.InstallCertificatesInput(
            gateway_id=gw, command_id=cid, certificates=tuple(plan.certificates)),
            gc.InstallCertificatesResult, step=wf.at(step))
        self.certificates_installed += sum(1 for c in result.certificates if c.status == "installed")

    async def write(self, wf: GatewayProcessWorkflow, link: GatewayLink, plan: RolloutPlan) -> None:
        gw = plan.gateway_id
        for mp in plan.meter_profiles:
            r = await link.run("write_meter_profile", lambda cid, p=mp: gc.WriteMeterProfileInput(
                gateway_id=gw, command_id=cid, profile=p), gc.ProfileWriteResult,
                step=wf.at(f"write_meter_profile/{mp.profile_id}"))
            self._done(plan, "meter", mp.profile_id, r)
        for cp in plan.communication_profiles:
            r = await link.run("write_communication_profile", lambda cid, p=cp: gc.WriteCommunicationProfileInput(
                gateway_id=gw, command_id=cid, profile=p), gc.ProfileWriteResult,
                step=wf.at(f"write_communication_profile/{cp.profile_id}"))
            self._done(plan, "communication", cp.profile_id, r)
        for ep in plan.evaluation_profiles:
            r = await link.run("write_evaluation_profile", lambda cid, p=ep: gc.WriteEvaluationProfileInput(
                gateway_id=gw, command_id=cid, profile=p), gc.ProfileWriteResult,
                step=wf.at(f"write_evaluation_profile/{ep.profile_id}"))
            self._done(plan, "evaluation", ep.profile_id, r)

    def _done(self, plan: RolloutPlan, kind: str, profile_id: str, r: gc.ProfileWriteResult) -> None:
        self.written.append(plan.record_of(kind, profile_id))
        if r.status == "created":
            self.created.append(ProfileRef(kind, profile_id))

    async def delete(self, wf: GatewayProcessWorkflow, link: GatewayLink, gateway_id: str,
                     refs: list[ProfileRef], prefix: str = "delete") -> None:
        for ref in refs:
            if ref.kind == "evaluation":
                await link.run("delete_evaluation_profile", lambda cid, pid=ref.profile_id:
                               gc.DeleteEvaluationProfileInput(gateway_id=gateway_id, command_id=cid, profile_id=pid),
                               gc.ProfileDeleteResult, step=wf.at(f"{prefix}_evaluation_profile/{ref.profile_id}"))
            elif ref.kind == "meter":
                await link.run("delete_meter_profile", lambda cid, pid=ref.profile_id:
                               gc.DeleteMeterProfileInput(gateway_id=gateway_id, command_id=cid, profile_id=pid),
                               gc.ProfileDeleteResult, step=wf.at(f"{prefix}_meter_profile/{ref.profile_id}"))
            else:
                continue  # the command set has no delete for communication profiles
            self.deleted.append(ref)

    async def record(self, gateway_id: str, *, end_all: bool = False) -> RecordedProfiles:
        return await domain_step("record_profile_history", RecordProfilesInput(
            gateway_id, written=list(self.written), ended=list(self.deleted), end_all=end_all), RecordedProfiles)
