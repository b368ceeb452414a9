"""Profile / TAF rollout of one gateway: bring its meter, communication and evaluation profiles to
the current TAF orders of its metering points, install the EMT certificates they need, delete what
was terminated, and record the history (also of a partial rollout that failed half-way)."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # (imported by its full name so the workflow sandbox registers it: the converter resolves the
    # type hints of nested command dataclasses through sys.modules)
    import activities.gateway_commands_models  # noqa: F401
    from activities.tariff_steps import ProfilePlanInput, RolloutPlan
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink
    from workflows.profiles import ProfileWork


@workflow.defn(name="ProfileRollout")
class ProfileRolloutWorkflow(GatewayProcessWorkflow):
    @workflow.run
    async def run(self, inp: GatewayProcessInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: GatewayProcessInput, link: GatewayLink) -> dict[str, Any]:
        gw = inp.gateway_id
        self.at("plan_profile_rollout")
        plan: RolloutPlan = await domain_step("plan_profile_rollout", ProfilePlanInput(
            gw, taf_order_ids=list(inp.params.get("taf_order_ids") or [])), RolloutPlan)
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
        return {"written": len(work.written), "created": len(work.created), "deleted": len(work.deleted),
                "certificates_installed": work.certificates_installed}
