"""Deinstallation (Ausbau) of one gateway with final reading: the gateway delivers the final readout
of every active evaluation profile to its EMT itself (the workflow records which deliveries it
started), the profiles are deactivated on the gateway, and in master data the gateway's place and
its meters' assignments end, its profiles are terminated, its certificates are marked for
revocation and it is ``deinstalled``.

Nothing in master data changes before the gateway has delivered the final readout and deactivated
its profiles: a failure leaves the gateway in operation, as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # (imported by its full name so the workflow sandbox registers it: the converter resolves the
    # type hints of nested command dataclasses through sys.modules)
    import headend.contract as gc
    from activities.commissioning_steps import CommissioningSteps, GatewayRef
    from activities.gateway_commands import GatewayCommandActivities as Commands
    from activities.readout_steps import ReadoutSteps, SealedReadout, StoreReadoutsInput, acknowledged
    from domain.processes.types import DeinstallationParams
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink


# Version marker: from here on the gateway delivers the final readout to each EMT itself
# (docs/protocol.md 10.10, 14) and the Notify lists the deliveries, which the workflow records.
# Before it, the Notify carried sealed containers that deliver_readouts_to_outbox stored in the GWA's
# readout outbox (kept for those workflows only).
PATCH_GATEWAY_DELIVERS = "deinstallation-final-readout-delivered-by-gateway"


@dataclass(frozen=True, kw_only=True)
class DeinstallationInput(GatewayProcessInput):
    params: DeinstallationParams = field(default_factory=DeinstallationParams)


@workflow.defn(name="Deinstallation")
class DeinstallationWorkflow(GatewayProcessWorkflow[DeinstallationInput]):
    @workflow.run
    async def run(self, inp: DeinstallationInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: DeinstallationInput, link: GatewayLink) -> dict[str, Any]:
        gw = inp.gateway_id
        details: dict[str, Any] = {"final_readouts": 0}
        if inp.params.final_readout and workflow.patched(PATCH_GATEWAY_DELIVERS):
            final = await link.run(Commands.final_readout, partial(gc.FinalReadoutInput, gateway_id=gw,
                reason="deinstallation", timeout_s=300),
                step=self.at("final_readout"), timeout=timedelta(minutes=6))
            details.update(_acknowledged(final.deliveries))
        elif inp.params.final_readout:  # started before PATCH_GATEWAY_DELIVERS
            final = await link.run(Commands.final_readout, partial(gc.FinalReadoutInput, gateway_id=gw,
                reason="deinstallation", timeout_s=300),
                step=self.at("final_readout"), timeout=timedelta(minutes=6))
            details.update(_acknowledged(final.deliveries))  # a final readout that runs only now
            if final.readouts:
                self.at("deliver_final_readouts")
                stored = await domain_step(ReadoutSteps.deliver_readouts_to_outbox, StoreReadoutsInput(
                    gateway_id=gw, reason="final_readout", process_id=inp.process_id, readouts=[
                        SealedReadout(recipient=r.recipient, meter_id=r.meter_id, container_b64=r.container_b64,
                                      profile_id=r.profile_id) for r in final.readouts]))
                details["final_readouts"] = len(stored.ids)
                details["emts"] = len({r.recipient for r in final.readouts})
        deactivated = await link.run(Commands.deactivate_profiles, partial(gc.DeactivateProfilesInput, gateway_id=gw),
            step=self.at("deactivate_profiles"))
        details["profiles_deactivated"] = sum(1 for p in deactivated.profiles if p.was_active)
        self.at("record_deinstallation")
        done = await domain_step(CommissioningSteps.record_deinstallation, GatewayRef(gateway_id=gw))
        details.update(assignments_ended=done.assignments_ended, certificates_marked=done.certificates_marked)
        return details


def _acknowledged(deliveries: tuple[gc.ReadoutDelivery, ...]) -> dict[str, Any]:
    """What the process records of the final readout: how many deliveries to how many EMTs, and each
    delivery the gateway started (profile, reason, x-CID, time of the values)."""
    if not deliveries:
        return {}
    return {"final_readouts": len(deliveries), "emts": len({d.recipient for d in deliveries}),
            "final_readout_deliveries": [acknowledged(d) for d in deliveries]}
