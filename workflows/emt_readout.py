"""An EMT's on-demand readout (TAF 6, Abruf im Bedarfsfall) of one metering point.

Not a mass process: one request, one gateway, one command, and an EMT waiting for it. It runs at
the EMT priority on the head-end, does not take the gateway's process slot (an on-demand readout
must work while a rollout holds the gateway), and records its outcome on the request row instead of
a process target. The container the gateway returns is sealed for the EMT; gridgate stores it in
the EMT's outbox and never opens it.
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


@dataclass(frozen=True, kw_only=True)
class EmtReadoutResult:
    request_id: str
    outcome: str  # succeeded | failed
    container_id: int | None = None
    error_type: str | None = None
    error_message: str | None = None


_TIMEOUT = timedelta(seconds=30)
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=10)


@workflow.defn(name="EmtReadout")
class EmtReadoutWorkflow:
    @workflow.run
    async def run(self, inp: EmtReadoutInput) -> EmtReadoutResult:
        link = GatewayLink(inp.gateway_id, priority=gc.PRIORITY_EMT_ON_DEMAND, attempts=inp.attempts,
                           connect_timeout_s=inp.connect_timeout_s)
        try:
            r = await link.run(Commands.trigger_readout, partial(gc.TriggerReadoutInput, gateway_id=inp.gateway_id,
                priority=gc.PRIORITY_EMT_ON_DEMAND, recipient=inp.recipient, meter_id=inp.meter_id,
                registers=tuple(inp.registers), reason="on_demand"),
                step="trigger_readout")
            stored = await workflow.execute_activity_method(
                ReadoutSteps.deliver_readouts_to_outbox, StoreReadoutsInput(
                    gateway_id=inp.gateway_id, reason="on_demand", readouts=[SealedReadout(
                        recipient=inp.recipient, meter_id=inp.meter_id, container_b64=r.readout.container_b64,
                        metering_point=inp.metering_point)]),
                start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY)
        except (GatewayStepFailed, ActivityError) as err:
            code, message = error_of(err)
            await workflow.execute_activity_method(
                ReadoutSteps.finish_emt_readout_request, FinishEmtReadoutInput(
                    request_id=inp.request_id, error_type=code, error_message=message),
                start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY)
            return EmtReadoutResult(request_id=inp.request_id, outcome="failed", error_type=code, error_message=message)
        await workflow.execute_activity_method(
            ReadoutSteps.finish_emt_readout_request, FinishEmtReadoutInput(
                request_id=inp.request_id, container_id=stored.ids[0]),
            start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY)
        return EmtReadoutResult(request_id=inp.request_id, outcome="succeeded", container_id=stored.ids[0])
