"""Commissioning (Inbetriebnahme) of one gateway: master data check, wake and connect, operational
certificates (GWA and EMTs), time, LMN pairing of every assigned meter, meter/communication/
evaluation profiles of the assigned TAFs, verification of what the gateway reports, a first readout
the gateway delivers to the EMTs itself (its acknowledgements recorded), and the gateway in operation.

Once the gateway has been contacted, a failure leaves it ``faulty`` with the reason, and the
profiles this run created are deleted again (a half-configured gateway must not deliver data); a
cancellation deletes them too and leaves the gateway ``installed``.
A refusal of the master data check changes nothing (the gateway stays ``installed``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    # (imported by its full name so the workflow sandbox registers it: the converter resolves the
    # type hints of nested command dataclasses through sys.modules)
    import headend.contract as gc
    from activities.commissioning_steps import CommissioningSteps, GatewayRef, TransitionInput
    from activities.gateway_commands import GatewayCommandActivities as Commands
    from activities.readout_steps import ReadoutSteps, SealedReadout, StoreReadoutsInput, acknowledged
    from activities.tariff_steps import RolloutPlan
    from domain.processes.types import CommissioningParams
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink, GatewayStepFailed, error_of
    from workflows.profiles import ProfileWork


# Version marker: from here on the first readout is a trigger_readout of each evaluation profile
# with reason first_readout; the gateway delivers to the EMT itself (docs/protocol.md 10.9, 14) and
# the workflow records the acknowledgements. Before it, the gateway returned sealed containers that
# deliver_readouts_to_outbox stored in the GWA's readout outbox (kept for those workflows only).
PATCH_GATEWAY_DELIVERS = "commissioning-first-readout-delivered-by-gateway"


@dataclass(frozen=True, kw_only=True)
class CommissioningInput(GatewayProcessInput):
    params: CommissioningParams = field(default_factory=CommissioningParams)


@workflow.defn(name="Commissioning")
class CommissioningWorkflow(GatewayProcessWorkflow[CommissioningInput]):
    @workflow.run
    async def run(self, inp: CommissioningInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: CommissioningInput, link: GatewayLink) -> dict[str, Any]:
        gw = inp.gateway_id
        self.at("check_commissioning_readiness")
        plan = await domain_step(CommissioningSteps.check_commissioning_readiness, GatewayRef(gateway_id=gw))
        work = ProfileWork()
        try:
            return await self._configure(inp, link, plan, work)
        except asyncio.CancelledError:
            # Cancelled by the operator: no half-configured gateway either, but it is not faulty.
            cancelled_at = self.step
            await self._undo(link, gw, work)
            self.at(cancelled_at)
            raise

    async def _configure(self, inp: CommissioningInput, link: GatewayLink, plan: RolloutPlan,
                         work: ProfileWork) -> dict[str, Any]:
        gw = inp.gateway_id
        paired: list[str] = []
        first: list[dict[str, Any]] = []  # first readouts: the deliveries the gateway started
        try:
            await link.connect(self.at("wake_and_connect"))
            await work.install_certificates(self, link, plan, step="install_operational_certificates")
            await link.run(Commands.set_time, partial(gc.SetTimeInput, gateway_id=gw, mode="set"),
                           step=self.at("set_time"))
            for meter in plan.meters:
                r = await link.run(Commands.pair_meter, partial(gc.PairMeterInput, gateway_id=gw,
                    meter_id=meter.meter_id, interface=meter.interface),
                    step=self.at(f"pair_meter/{meter.meter_id}"))
                paired.append(r.meter_id)
            await work.write(self, link, plan)
            info = await link.run(Commands.read_device_info, partial(gc.ReadDeviceInfoInput, gateway_id=gw),
                step=self.at("verify_configuration"))
            _verify(plan, info)
            readouts = 0
            if inp.params.first_readout and plan.readouts and workflow.patched(PATCH_GATEWAY_DELIVERS):
                for spec in plan.readouts:
                    started = await link.run(Commands.trigger_readout, partial(gc.TriggerReadoutInput,
                        gateway_id=gw, profile_id=spec.profile_id, reason="first_readout"),
                        step=self.at(f"first_readout/{spec.profile_id}"))
                    if started.delivery is not None:
                        first.append(acknowledged(started.delivery))
                readouts = len(first)
            elif inp.params.first_readout and plan.readouts:  # started before PATCH_GATEWAY_DELIVERS
                sealed = []
                for spec in plan.readouts:
                    # (the profile too: a trigger that runs only now goes to a gateway that delivers itself)
                    read = await link.run(Commands.trigger_readout, partial(gc.TriggerReadoutInput, gateway_id=gw,
                        recipient=spec.recipient, meter_id=spec.meter_id, registers=tuple(spec.registers),
                        reason="first_readout", profile_id=spec.profile_id),
                        step=self.at(f"first_readout/{spec.profile_id}"))
                    if read.readout is not None:  # a container recorded before the change
                        sealed.append(SealedReadout(recipient=spec.recipient, meter_id=spec.meter_id,
                                                    container_b64=read.readout.container_b64,
                                                    profile_id=spec.profile_id, metering_point=spec.metering_point))
                    elif read.delivery is not None:
                        first.append(acknowledged(read.delivery))
                readouts = len(first)
                if sealed:
                    self.at("deliver_first_readouts")
                    stored = await domain_step(ReadoutSteps.deliver_readouts_to_outbox, StoreReadoutsInput(
                        gateway_id=gw, reason="first_readout", readouts=sealed, process_id=inp.process_id))
                    readouts += len(stored.ids)
            self.at("record_profile_history")
            await work.record(gw)
            self.at("move_to_in_operation")
            await domain_step(CommissioningSteps.move_gateway_to_state, TransitionInput(
                gateway_id=gw, state="in_operation", reason=f"commissioned by process {inp.process_id}"))
        except (GatewayStepFailed, ActivityError, ChildWorkflowError, ApplicationError) as err:
            if _is_cancellation(err):
                raise asyncio.CancelledError(str(err)) from None  # handled below, not a fault
            code, message = error_of(err)
            failed_step = self.step
            undone = await self._undo(link, gw, work)
            self.at(failed_step)
            why = f"commissioning failed at {failed_step}: {code}: {message}"[:500]
            await domain_step(CommissioningSteps.move_gateway_to_state,
                              TransitionInput(gateway_id=gw, state="faulty", reason=why))
            if not undone:
                message += " (undo incomplete: profiles may remain on the gateway)"
            raise GatewayStepFailed(code, message) from None
        details: dict[str, Any] = {"meters_paired": len(paired), "profiles_written": len(work.written),
                                   "certificates_installed": work.certificates_installed, "first_readouts": readouts}
        if first:
            details["first_readout_deliveries"] = first
        return details

    async def _undo(self, link: GatewayLink, gw: str, work: ProfileWork) -> bool:
        """Delete the profiles this run created, evaluation profiles first. Best effort, briefly."""
        created = [r for r in work.created if r.kind == "evaluation"] + [r for r in work.created if r.kind == "meter"]
        if not created:
            return True
        link.attempts = 1  # an unreachable gateway should not hold the faulty state back for long
        try:
            await ProfileWork().delete(self, link, gw, created, prefix="undo")
        except (GatewayStepFailed, ActivityError):
            return False
        return True


def _is_cancellation(err: BaseException) -> bool:
    """The process was cancelled while a step ran. (The gateway link reports a cancelled command as
    a failed step ``ActivityError: Activity cancelled``; the cause chain may be cut.)"""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, CancelledError | asyncio.CancelledError):
            return True
        if isinstance(cause, GatewayStepFailed) and cause.error_type == "ActivityError" \
                and cause.message.endswith("cancelled"):
            return True
        cause = cause.__cause__
    return False


def _verify(plan: RolloutPlan, info: gc.DeviceInfoResult) -> None:
    """The gateway must report every assigned meter as paired on its LMN."""
    paired = {m.meter_id for m in info.meters if m.paired}
    missing = [m.meter_id for m in plan.meters if m.meter_id not in paired]
    if missing:
        raise GatewayStepFailed("verification_failed", f"gateway reports meter(s) {', '.join(missing)} as not paired")
    if plan.evaluation_profiles and info.state not in ("operational",):
        raise GatewayStepFailed("verification_failed", f"gateway reports state {info.state} after configuration")

