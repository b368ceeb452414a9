"""LMN pairing of a gateway's meters: pair each (the gateway authenticates the meter with its MK0,
which the head-end reads from master data; it never enters the workflow history), then check that
the gateway reports them as paired."""

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
    from activities.meter_steps import MeterSteps, MetersToPairInput
    from domain.processes.types import MeterPairingParams
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink, GatewayStepFailed


@dataclass(frozen=True, kw_only=True)
class MeterPairingInput(GatewayProcessInput):
    params: MeterPairingParams = field(default_factory=MeterPairingParams)


@workflow.defn(name="MeterPairing")
class MeterPairingWorkflow(GatewayProcessWorkflow[MeterPairingInput]):
    @workflow.run
    async def run(self, inp: MeterPairingInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: MeterPairingInput, link: GatewayLink) -> dict[str, Any]:
        gw = inp.gateway_id
        self.at("choose_meters_to_pair")
        chosen = await domain_step(MeterSteps.choose_meters_to_pair, MetersToPairInput(
            gateway_id=gw, meter_ids=list(inp.params.meter_ids)))
        newly = 0
        for meter in chosen.meters:
            r = await link.run(Commands.pair_meter, partial(gc.PairMeterInput, gateway_id=gw,
                meter_id=meter.meter_id, interface=meter.interface),
                step=self.at(f"pair_meter/{meter.meter_id}"))
            newly += r.status == "paired"
        info = await link.run(Commands.read_device_info, partial(gc.ReadDeviceInfoInput, gateway_id=gw),
            step=self.at("verify_pairing"))
        paired = {m.meter_id for m in info.meters if m.paired}
        missing = [m.meter_id for m in chosen.meters if m.meter_id not in paired]
        if missing:
            raise GatewayStepFailed("verification_failed", f"gateway reports {', '.join(missing)} as not paired")
        return {"meters": len(chosen.meters), "newly_paired": newly}
