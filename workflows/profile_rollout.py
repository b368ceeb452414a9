"""Profile / TAF rollout of one gateway: bring its meter, communication and evaluation profiles to
the current TAF orders of its metering points, install the EMT certificates they need, delete what
was terminated, and record the history (also of a partial rollout that failed half-way)."""

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
    from activities.tariff_steps import ProfilePlanInput, TariffSteps, UnusedProfilesInput
    from domain.processes.types import ProfileRolloutParams
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink, GatewayStepFailed
    from workflows.profiles import ProfileWork

# Version marker: from here on, a rollout that deleted evaluation profiles also deletes the EMT
# communication profiles no evaluation profile uses any more (delete_communication_profile).
PATCH_UNUSED_COMMUNICATION = "rollout-deletes-unused-communication-profiles"


@dataclass(frozen=True, kw_only=True)
class ProfileRolloutInput(GatewayProcessInput):
    params: ProfileRolloutParams = field(default_factory=ProfileRolloutParams)


@workflow.defn(name="ProfileRollout")
class ProfileRolloutWorkflow(GatewayProcessWorkflow[ProfileRolloutInput]):
    @workflow.run
    async def run(self, inp: ProfileRolloutInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: ProfileRolloutInput, link: GatewayLink) -> dict[str, Any]:
        gw = inp.gateway_id
        self.at("plan_profile_rollout")
        plan = await domain_step(TariffSteps.plan_profile_rollout, ProfilePlanInput(
            gateway_id=gw, taf_order_ids=list(inp.params.taf_order_ids)))
        if not plan.writes and not plan.deletes:
            return {"written": 0, "deleted": 0, "changes": "none"}
        work = ProfileWork()
        try:
            await work.install_certificates(self, link, plan, step="install_emt_certificates")
            await work.write(self, link, plan)
            await work.delete(self, link, gw, plan.deletes)
        finally:
            if work.written or work.deleted:  # also after a failure: the history shows what is on the gateway
                await work.record(gw)
        result = {"written": len(work.written), "created": len(work.created), "deleted": len(work.deleted),
                  "certificates_installed": work.certificates_installed}
        if any(r.kind == "evaluation" for r in work.deleted) and workflow.patched(PATCH_UNUSED_COMMUNICATION):
            result.update(await self.delete_unused_communication_profiles(gw, link))
        return result

    async def delete_unused_communication_profiles(self, gw: str, link: GatewayLink) -> dict[str, int]:
        """The EMTs whose last evaluation profile this rollout terminated get their communication
        profile deleted too. One the gateway still needs (an evaluation profile gridgate does not
        know of uses it: ``rejected``) stays, and stays active in the history."""
        self.at("find_unused_communication_profiles")
        unused = await domain_step(TariffSteps.find_unused_communication_profiles,
                                   UnusedProfilesInput(gateway_id=gw))
        cleanup, kept = ProfileWork(), 0
        try:
            for ref in unused.profiles:
                try:
                    step = self.at(f"delete_communication_profile/{ref.profile_id}")
                    await link.run(Commands.delete_communication_profile, partial(gc.DeleteCommunicationProfileInput,
                        gateway_id=gw, profile_id=ref.profile_id),
                                   step=step)
                except GatewayStepFailed as err:
                    if err.error_type != "rejected":
                        raise
                    kept += 1
                    continue
                cleanup.deleted.append(ref)
        finally:
            if cleanup.deleted:
                await cleanup.record(gw)
        return {"communication_deleted": len(cleanup.deleted), "communication_kept": kept}
