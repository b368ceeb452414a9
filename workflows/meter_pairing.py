"""LMN pairing of a gateway's meters: pair each (the gateway authenticates the meter with its MK0,
which the head-end reads from master data; it never enters the workflow history), then check that
the gateway reports them as paired."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # (imported by its full name so the workflow sandbox registers it: the converter resolves the
    # type hints of nested command dataclasses through sys.modules)
    import headend.contract as gc
    from activities.meter_steps import MetersToPair, MetersToPairInput
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink, GatewayStepFailed


@workflow.defn(name="MeterPairing")
class MeterPairingWorkflow(GatewayProcessWorkflow):
    @workflow.run
    async def run(self, inp: GatewayProcessInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: GatewayProcessInput, link: GatewayLink) -> dict[str, Any]:
        gw = inp.gateway_id
        self.at("choose_meters_to_pair")
        chosen: MetersToPair = await domain_step("choose_meters_to_pair", MetersToPairInput(
            gw, list(inp.params.get("meter_ids") or [])), MetersToPair)
        newly = 0
        for meter in chosen.meters:
            r = await link.run("pair_meter", lambda cid, m=meter: gc.PairMeterInput(
                gateway_id=gw, command_id=cid, meter_id=m.meter_id, interface=m.interface),
                gc.PairMeterResult, step=self.at(f"pair_meter/{meter.meter_id}"))
            newly += r.status == "paired"
        info = await link.run("read_device_info", lambda cid: gc.ReadDeviceInfoInput(gateway_id=gw, command_id=cid),
                              gc.DeviceInfoResult, step=self.at("verify_pairing"))
        paired = {m.meter_id for m in info.meters if m.paired}
        missing = [m.meter_id for m in chosen.meters if m.meter_id not in paired]
        if missing:
            raise GatewayStepFailed("verification_failed", f"gateway reports {', '.join(missing)} as not paired")
        return {"meters": len(chosen.meters), "newly_paired": newly}
