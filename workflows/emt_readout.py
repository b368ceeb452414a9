"""An EMT's on-demand readout (TAF 6, Abruf im Bedarfsfall) of one metering point.

Not a mass process: one request, one gateway, one command, and an EMT waiting for it. It runs at
the EMT priority on the head-end, does not take the gateway's process slot (an on-demand readout
must work while a rollout holds the gateway), and records its outcome on the request row instead of
a process target. The gateway delivers the values to the EMT's meter data endpoint itself
(docs/protocol.md 10.9, 14); the request records which delivery it started, and the EMT reads the
values from its MDM. gridgate's GWA never sees them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    # (imported by its full name so the workflow sandbox registers it: the converter resolves the
    # type hints of nested command dataclasses through sys.modules)
    import headend.contract as gc
    from activities.gateway_commands import GatewayCommandActivities as Commands
    from activities.readout_steps import FinishEmtReadoutInput, ReadoutSteps, SealedReadout, StoreReadoutsInput
    from workflows.gateway import GatewayLink, GatewayStepFailed, error_of


def emt_readout_workflow_id(gateway_id: str, request_id: str) -> str:
    return f"emt_readout/{gateway_id}/{request_id}"


# Version marker: from here on the gateway delivers the readout to the EMT itself (docs/protocol.md
# 10.9, 14) and the request records the acknowledgement (profile, reason, x-CID, time of the
# values). Before it, the gateway returned a sealed container that deliver_readouts_to_outbox stored
# in the GWA's readout outbox (kept for those workflows only).
PATCH_GATEWAY_DELIVERS = "emt-readout-delivered-by-gateway"


@dataclass(frozen=True, kw_only=True)
class EmtReadoutInput:
    request_id: str
    gateway_id: str
    meter_id: str
    recipient: str
    metering_point: str
    registers: list[str] = field(default_factory=lambda: ["1-0:1.8.0"])
    connect_timeout_s: float = 60.0
    attempts: int = 2
    # the evaluation profile the gateway delivers (the EMT's TAF 6, else TAF 9 order); None: the
    # gateway picks the recipient's TAF 6 (reason feed_in: TAF 9) profile on the meter
    profile_id: str | None = None
    reason: str = "on_demand"  # gg:reason: on_demand | feed_in


@dataclass(frozen=True, kw_only=True)
class EmtReadoutResult:
    request_id: str
    outcome: str  # succeeded | failed
    container_id: int | None = None  # only before PATCH_GATEWAY_DELIVERS
    error_type: str | None = None
    error_message: str | None = None
    delivery: gc.ReadoutDelivery | None = None  # the delivery the gateway started


_TIMEOUT = timedelta(seconds=30)
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=10)


@workflow.defn(name="EmtReadout")
class EmtReadoutWorkflow:
    @workflow.run
    async def run(self, inp: EmtReadoutInput) -> EmtReadoutResult:
        link = GatewayLink(inp.gateway_id, priority=gc.PRIORITY_EMT_ON_DEMAND, attempts=inp.attempts,
                           connect_timeout_s=inp.connect_timeout_s)
        if not workflow.patched(PATCH_GATEWAY_DELIVERS):
            return await self._sealed(inp, link)
        try:
            r = await link.run(Commands.trigger_readout, partial(gc.TriggerReadoutInput, gateway_id=inp.gateway_id,
                priority=gc.PRIORITY_EMT_ON_DEMAND, profile_id=inp.profile_id, recipient=inp.recipient,
                meter_id=inp.meter_id, reason=inp.reason),
                step="trigger_readout")
            if r.delivery is None:
                raise GatewayStepFailed(gc.ERROR_MALFORMED, "the gateway acknowledged no delivery")
        except (GatewayStepFailed, ActivityError) as err:
            return await self._failed(inp, err)
        await workflow.execute_activity_method(
            ReadoutSteps.finish_emt_readout_request, FinishEmtReadoutInput(request_id=inp.request_id,
                                                                           delivery=r.delivery),
            start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY)
        return EmtReadoutResult(request_id=inp.request_id, outcome="succeeded", delivery=r.delivery)

    async def _failed(self, inp: EmtReadoutInput, err: BaseException) -> EmtReadoutResult:
        code, message = error_of(err)
        await workflow.execute_activity_method(
            ReadoutSteps.finish_emt_readout_request, FinishEmtReadoutInput(
                request_id=inp.request_id, error_type=code, error_message=message),
            start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY)
        return EmtReadoutResult(request_id=inp.request_id, outcome="failed", error_type=code, error_message=message)

    async def _sealed(self, inp: EmtReadoutInput, link: GatewayLink) -> EmtReadoutResult:
        """Before PATCH_GATEWAY_DELIVERS: the gateway's sealed container into the outbox. (A trigger
        that runs only now goes to a gateway that delivers itself: it is recorded as the new path
        records it.)"""
        try:
            r = await link.run(Commands.trigger_readout, partial(gc.TriggerReadoutInput, gateway_id=inp.gateway_id,
                priority=gc.PRIORITY_EMT_ON_DEMAND, recipient=inp.recipient, meter_id=inp.meter_id,
                registers=tuple(inp.registers), reason="on_demand", profile_id=inp.profile_id),
                step="trigger_readout")
            if r.readout is None:
                await workflow.execute_activity_method(
                    ReadoutSteps.finish_emt_readout_request, FinishEmtReadoutInput(request_id=inp.request_id,
                                                                                   delivery=r.delivery),
                    start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY)
                return EmtReadoutResult(request_id=inp.request_id, outcome="succeeded", delivery=r.delivery)
            stored = await workflow.execute_activity_method(
                ReadoutSteps.deliver_readouts_to_outbox, StoreReadoutsInput(
                    gateway_id=inp.gateway_id, reason="on_demand", readouts=[SealedReadout(
                        recipient=inp.recipient, meter_id=inp.meter_id, container_b64=r.readout.container_b64,
                        metering_point=inp.metering_point)]),
                start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY)
        except (GatewayStepFailed, ActivityError) as err:
            return await self._failed(inp, err)
        await workflow.execute_activity_method(
            ReadoutSteps.finish_emt_readout_request, FinishEmtReadoutInput(
                request_id=inp.request_id, container_id=stored.ids[0]),
            start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY)
        return EmtReadoutResult(request_id=inp.request_id, outcome="succeeded", container_id=stored.ids[0])
