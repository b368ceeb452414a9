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

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    # (imported by its full name so the workflow sandbox registers it: the converter resolves the
    # type hints of nested command dataclasses through sys.modules)
    import headend.contract as gc
    from activities.readout_steps import FinishEmtReadoutInput, SealedReadout, StoredReadouts, StoreReadoutsInput
    from workflows.gateway import GatewayLink, GatewayStepFailed, error_of


def emt_readout_workflow_id(gateway_id: str, request_id: str) -> str:
    return f"emt_readout/{gateway_id}/{request_id}"


@dataclass(frozen=True)
class EmtReadoutInput:
    request_id: str
    gateway_id: str
    meter_id: str
    recipient: str
    metering_point: str
    registers: list[str] = field(default_factory=lambda: ["1-0:1.8.0"])
    connect_timeout_s: float = 60.0
    attempts: int = 2


@dataclass(frozen=True)
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
            r = await link.run("trigger_readout", lambda cid: gc.TriggerReadoutInput(
                gateway_id=inp.gateway_id, command_id=cid, priority=gc.PRIORITY_EMT_ON_DEMAND,
                recipient=inp.recipient, meter_id=inp.meter_id, registers=tuple(inp.registers), reason="on_demand"),
                gc.TriggerReadoutResult, step="trigger_readout")
            stored: StoredReadouts = await workflow.execute_activity(
                "deliver_readouts_to_outbox", StoreReadoutsInput(inp.gateway_id, "on_demand", [SealedReadout(
                    inp.recipient, inp.meter_id, r.readout.container_b64, None, inp.metering_point)]),
                result_type=StoredReadouts, start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY)
        except (GatewayStepFailed, ActivityError) as err:
            code, message = error_of(err)
            await workflow.execute_activity("finish_emt_readout_request", FinishEmtReadoutInput(
                inp.request_id, None, code, message), start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY)
            return EmtReadoutResult(inp.request_id, "failed", None, code, message)
        await workflow.execute_activity("finish_emt_readout_request", FinishEmtReadoutInput(
            inp.request_id, stored.ids[0]), start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY)
        return EmtReadoutResult(inp.request_id, "succeeded", stored.ids[0])
