"""Meter exchange (Zählerwechsel) at one gateway: closing reading of the old meter for the EMTs of its
metering points, its profiles deleted and the meter removed from the LMN, assignments moved to the
new meter at the exchange time, the new meter paired and profiled, an opening reading for the EMTs.

Register values: the GWA never sees them. The readings are deliveries the gateway makes to the EMTs
itself (docs/protocol.md 10.9, 14: ``gg:reason`` ``meter_exchange_closing`` / ``_opening``); the
workflow triggers them and records which deliveries the gateway started (profile, x-CID, time of
the values). An old meter that no longer answers gets no closing reading (noted).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # (imported by its full name so the workflow sandbox registers it: the converter resolves the
    # type hints of nested command dataclasses through sys.modules)
    import headend.contract as gc
    from activities.gateway_commands import GatewayCommandActivities as Commands
    from activities.meter_steps import MeterExchangeInput, MeterSteps
    from activities.readout_steps import ReadoutSteps, SealedReadout, StoreReadoutsInput, acknowledged
    from activities.tariff_steps import ProfilePlanInput, ReadoutSpec, TariffSteps
    from domain.processes.types import MeterExchangeParams
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink, GatewayStepFailed
    from workflows.profiles import ProfileWork


# Version marker: from here on the closing reading of the old meter and the opening reading of the
# new one are trigger_readout of the EMTs' evaluation profiles with reason meter_exchange_closing /
# meter_exchange_opening; the gateway delivers to the EMTs itself (docs/protocol.md 10.9, 14) and the
# workflow records the acknowledgements. Before it, the gateway returned sealed containers that
# deliver_readouts_to_outbox stored in the GWA's readout outbox (kept for those workflows only).
PATCH_GATEWAY_DELIVERS = "meter-exchange-readings-delivered-by-gateway"


@dataclass(frozen=True, kw_only=True)
class MeterExchangeProcessInput(GatewayProcessInput):
    params: MeterExchangeParams  # which meters; no default: a meter exchange names both


@workflow.defn(name="MeterExchange")
class MeterExchangeWorkflow(GatewayProcessWorkflow[MeterExchangeProcessInput]):
    @workflow.run
    async def run(self, inp: MeterExchangeProcessInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: MeterExchangeProcessInput, link: GatewayLink) -> dict[str, Any]:
        gw = inp.gateway_id
        at = inp.params.exchanged_at or workflow.now().isoformat()
        exchange = MeterExchangeInput(gateway_id=gw, old_meter_id=inp.params.old_meter_id,
                                      new_meter_id=inp.params.new_meter_id, exchanged_at=at)
        self.at("check_meter_exchange")
        plan = await domain_step(MeterSteps.check_meter_exchange, exchange)
        old, new = plan.old.meter_id, plan.new.meter_id
        details: dict[str, Any] = {"old_meter": old, "new_meter": new, "exchanged_at": at}

        # 1. closing reading of the old meter for every EMT of its metering points
        delivers = workflow.patched(PATCH_GATEWAY_DELIVERS)
        if delivers:
            closing, missing = await self._triggered(link, gw, plan.final_readouts, "closing_reading",
                                                     "meter_exchange_closing", details)
            details["final_readings"] = len(closing)
            if closing:
                details["closing_reading_deliveries"] = closing
        else:  # started before PATCH_GATEWAY_DELIVERS
            final, missing = await self._readouts(link, gw, plan.final_readouts, "final_reading")
            details["final_readings"] = await self._store(gw, "meter_exchange_final", final, inp.process_id)
        if missing:
            details["final_reading"] = "old meter does not answer: no final reading"

        # 2. the old meter off the gateway: its profiles, then the LMN
        work = ProfileWork()
        await work.delete(self, link, gw, plan.profiles_to_delete)
        await link.run(Commands.unpair_meter, partial(gc.UnpairMeterInput, gateway_id=gw, meter_id=old),
                       step=self.at(f"unpair_meter/{old}"))

        # 3. master data: assignments from the old to the new meter at the exchange time
        self.at("move_meter_assignments")
        moved = await domain_step(MeterSteps.move_meter_assignments, exchange)
        details.update(assignments_ended=moved.ended, assignments_created=moved.created)

        # 4. the new meter on the LMN, its profiles, an initial reading
        await link.run(Commands.pair_meter, partial(gc.PairMeterInput, gateway_id=gw, meter_id=new,
            interface=plan.new.interface),
            step=self.at(f"pair_meter/{new}"))
        self.at("plan_profiles_of_new_meter")
        rollout = await domain_step(TariffSteps.plan_profile_rollout, ProfilePlanInput(gateway_id=gw))
        try:
            await work.install_certificates(self, link, rollout, step="install_emt_certificates")
            await work.write(self, link, rollout)
            await work.delete(self, link, gw, [d for d in rollout.deletes if d not in work.deleted])
        finally:
            if work.written or work.deleted:
                await work.record(gw)
        initial_specs = _one_per_emt([r for r in rollout.readouts if r.meter_id == new])
        if delivers:
            opening, missing_new = await self._triggered(link, gw, initial_specs, "opening_reading",
                                                         "meter_exchange_opening", details)
        else:
            initial, missing_new = await self._readouts(link, gw, initial_specs, "initial_reading")
        if missing_new:
            raise GatewayStepFailed("meter_missing", f"the new meter {new} does not answer on the LMN")
        if delivers:
            details["initial_readings"] = len(opening)
            if opening:
                details["opening_reading_deliveries"] = opening
        else:
            details["initial_readings"] = await self._store(gw, "meter_exchange_initial", initial, inp.process_id)
        details["profiles_written"] = len(work.written)
        return details

    async def _triggered(self, link: GatewayLink, gw: str, specs: list[ReadoutSpec], step: str, reason: str,
                         details: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        """Have the gateway deliver each spec's evaluation profile to its EMT with ``reason``; the
        acknowledgements, and whether the meter did not answer (then the rest is not asked for). A
        profile the gateway does not carry (an order not rolled out yet) is skipped and noted."""
        out: list[dict[str, Any]] = []
        for spec in specs:
            try:
                r = await link.run(Commands.trigger_readout, partial(gc.TriggerReadoutInput, gateway_id=gw,
                    profile_id=spec.profile_id, reason=reason),
                    step=self.at(f"{step}/{spec.recipient}/{spec.metering_point}"))
            except GatewayStepFailed as err:
                if err.error_type == gc.ERROR_METER_MISSING:
                    return out, True
                if err.error_type != gc.ERROR_UNKNOWN_PROFILE:
                    raise
                noted = details.get(f"{step}_skipped")
                details[f"{step}_skipped"] = "; ".join(filter(None, [
                    noted, f"{spec.recipient}/{spec.metering_point}: {spec.profile_id} not on the gateway"]))
                continue
            if r.delivery is not None:
                out.append(acknowledged(r.delivery))
        return out, False

    async def _readouts(self, link: GatewayLink, gw: str, specs: list[ReadoutSpec], step: str
                        ) -> tuple[list[SealedReadout], bool]:
        """Before PATCH_GATEWAY_DELIVERS: the containers the gateway returned. A trigger that runs
        only now (the gateway delivers itself) names the profile and the new reason; its
        acknowledgement leaves nothing to store."""
        new_reason = {"final_reading": "meter_exchange_closing", "initial_reading": "meter_exchange_opening"}[step]
        out: list[SealedReadout] = []
        for spec in specs:
            try:
                r = await link.run(Commands.trigger_readout, partial(gc.TriggerReadoutInput, gateway_id=gw,
                    recipient=spec.recipient, meter_id=spec.meter_id, registers=tuple(spec.registers),
                    reason=new_reason, profile_id=spec.profile_id),
                    step=self.at(f"{step}/{spec.recipient}/{spec.metering_point}"))
            except GatewayStepFailed as err:
                if err.error_type == gc.ERROR_METER_MISSING:
                    return out, True
                raise
            if r.readout is not None:
                out.append(SealedReadout(recipient=spec.recipient, meter_id=spec.meter_id,
                                         container_b64=r.readout.container_b64, profile_id=spec.profile_id,
                                         metering_point=spec.metering_point))
        return out, False

    async def _store(self, gw: str, reason: str, sealed: list[SealedReadout], process_id: str) -> int:
        if not sealed:
            return 0
        self.at(f"deliver_{reason}")  # (the step name of the old branch)
        stored = await domain_step(ReadoutSteps.deliver_readouts_to_outbox, StoreReadoutsInput(
            gateway_id=gw, reason=reason, readouts=sealed, process_id=process_id))
        return len(stored.ids)


def _one_per_emt(specs: list[ReadoutSpec]) -> list[ReadoutSpec]:
    chosen: dict[tuple[str, str], ReadoutSpec] = {}
    for s in specs:
        chosen.setdefault((s.recipient, s.metering_point), s)
    return list(chosen.values())
