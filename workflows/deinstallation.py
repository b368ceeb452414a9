"""Deinstallation (Ausbau) of one gateway with final reading: the final readout of every active
evaluation profile goes to the EMTs' outbox, the profiles are deactivated on the gateway, and in
master data the gateway's place and its meters' assignments end, its profiles are terminated, its
certificates are marked for revocation and it is ``deinstalled``.

Nothing in master data changes before the gateway has delivered the final readout and deactivated
its profiles: a failure leaves the gateway in operation, as it was.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # (imported by its full name so the workflow sandbox registers it: the converter resolves the
    # type hints of nested command dataclasses through sys.modules)
    import headend.contract as gc
    from activities.commissioning_steps import DeinstallationDone, GatewayRef
    from activities.readout_steps import SealedReadout, StoredReadouts, StoreReadoutsInput
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink


@workflow.defn(name="Deinstallation")
class DeinstallationWorkflow(GatewayProcessWorkflow):
    @workflow.run
    async def run(self, inp: GatewayProcessInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: GatewayProcessInput, link: GatewayLink) -> dict[str, Any]:
        gw = inp.gateway_id
        details: dict[str, Any] = {"final_readouts": 0}
        if inp.params.get("final_readout", True):
            final = await link.run("final_readout", lambda cid: gc.FinalReadoutInput(
                gateway_id=gw, command_id=cid, reason="deinstallation", timeout_s=300), gc.FinalReadoutResult,
                step=self.at("final_readout"), timeout=timedelta(minutes=6))
            if final.readouts:
                self.at("deliver_final_readouts")
                stored: StoredReadouts = await domain_step("deliver_readouts_to_outbox", StoreReadoutsInput(
                    gw, "final_readout", [SealedReadout(r.recipient, r.meter_id, r.container_b64, r.profile_id)
                                          for r in final.readouts], inp.process_id), StoredReadouts)
                details["final_readouts"] = len(stored.ids)
                details["emts"] = len({r.recipient for r in final.readouts})
        deactivated = await link.run("deactivate_profiles", lambda cid: gc.DeactivateProfilesInput(
            gateway_id=gw, command_id=cid), gc.DeactivateProfilesResult, step=self.at("deactivate_profiles"))
        details["profiles_deactivated"] = sum(1 for p in deactivated.profiles if p.was_active)
        self.at("record_deinstallation")
        done: DeinstallationDone = await domain_step("record_deinstallation", GatewayRef(gw), DeinstallationDone)
        details.update(assignments_ended=done.assignments_ended, certificates_marked=done.certificates_marked)
        return details
