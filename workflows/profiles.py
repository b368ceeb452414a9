"""Applying a profile plan to one gateway from inside a process workflow: certificates first, then
meter, communication and evaluation profiles (each referring to the ones before), then deletions
(evaluation profiles before the meter profiles they use). Remembers what it did, so a caller can
record it in the history or undo it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # (imported by its full name so the workflow sandbox registers it: the converter resolves the
    # type hints of nested command dataclasses through sys.modules)
    import headend.contract as gc
    from activities.gateway_commands import GatewayCommandActivities as Commands
    from activities.tariff_steps import (
        ProfileRecord,
        ProfileRef,
        RecordedProfiles,
        RecordProfilesInput,
        RolloutPlan,
        TariffSteps,
    )
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.gateway import GatewayLink


@dataclass
class ProfileWork:
    """What one workflow did to a gateway's profiles."""

    written: list[ProfileRecord] = field(default_factory=list)
    created: list[ProfileRef] = field(default_factory=list)  # written and not there before (status created)
    deleted: list[ProfileRef] = field(default_factory=list)
    certificates_installed: int = 0

    async def install_certificates(self, wf: GatewayProcessWorkflow[Any], link: GatewayLink, plan: RolloutPlan,
                                   step: str = "install_certificates") -> None:
        if not plan.certificates:
            return
        gw = plan.gateway_id
        result = await link.run(Commands.install_certificates, partial(gc.InstallCertificatesInput, gateway_id=gw,
            certificates=tuple(plan.certificates)), step=wf.at(step))
        self.certificates_installed += sum(1 for c in result.certificates if c.status == "installed")

    async def write(self, wf: GatewayProcessWorkflow[Any], link: GatewayLink, plan: RolloutPlan) -> None:
        gw = plan.gateway_id
        for mp in plan.meter_profiles:
            r = await link.run(Commands.write_meter_profile, partial(gc.WriteMeterProfileInput, gateway_id=gw,
                profile=mp), step=wf.at(f"write_meter_profile/{mp.profile_id}"))
            self._done(plan, "meter", mp.profile_id, r)
        for cp in plan.communication_profiles:
            r = await link.run(Commands.write_communication_profile, partial(gc.WriteCommunicationProfileInput,
                gateway_id=gw, profile=cp),
                step=wf.at(f"write_communication_profile/{cp.profile_id}"))
            self._done(plan, "communication", cp.profile_id, r)
        for ep in plan.evaluation_profiles:
            r = await link.run(Commands.write_evaluation_profile, partial(gc.WriteEvaluationProfileInput,
                gateway_id=gw, profile=ep), step=wf.at(f"write_evaluation_profile/{ep.profile_id}"))
            self._done(plan, "evaluation", ep.profile_id, r)

    def _done(self, plan: RolloutPlan, kind: str, profile_id: str, r: gc.ProfileWriteResult) -> None:
        self.written.append(plan.record_of(kind, profile_id))
        if r.status == "created":
            self.created.append(ProfileRef(kind=kind, profile_id=profile_id))

    async def delete(self, wf: GatewayProcessWorkflow[Any], link: GatewayLink, gateway_id: str,
                     refs: list[ProfileRef], prefix: str = "delete") -> None:
        for ref in refs:
            if ref.kind == "evaluation":
                await link.run(Commands.delete_evaluation_profile, partial(gc.DeleteEvaluationProfileInput,
                    gateway_id=gateway_id, profile_id=ref.profile_id),
                               step=wf.at(f"{prefix}_evaluation_profile/{ref.profile_id}"))
            elif ref.kind == "meter":
                await link.run(Commands.delete_meter_profile, partial(gc.DeleteMeterProfileInput,
                    gateway_id=gateway_id, profile_id=ref.profile_id),
                               step=wf.at(f"{prefix}_meter_profile/{ref.profile_id}"))
            else:
                continue  # the command set has no delete for communication profiles
            self.deleted.append(ref)

    async def record(self, gateway_id: str, *, end_all: bool = False) -> RecordedProfiles:
        return await domain_step(TariffSteps.record_profile_history, RecordProfilesInput(
            gateway_id=gateway_id, written=list(self.written), ended=list(self.deleted), end_all=end_all))
