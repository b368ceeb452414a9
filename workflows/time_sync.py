"""Time synchronisation of one gateway: measure the clock offset, correct it beyond a threshold,
verify, and raise a clock event when the offset was beyond the alarm limit."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.gateway_commands import GatewayCommandActivities as Commands
    from activities.gwa_steps import GatewayEventInput, GwaSteps
    from domain.processes.types import TimeSyncParams
    from headend import contract as gc
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink, GatewayStepFailed


RESIDUAL_MS = 250.0


@dataclass(frozen=True, kw_only=True)
class TimeSyncInput(GatewayProcessInput):
    params: TimeSyncParams = field(default_factory=TimeSyncParams)


@workflow.defn(name="TimeSync")
class TimeSyncWorkflow(GatewayProcessWorkflow[TimeSyncInput]):
    @workflow.run
    async def run(self, inp: TimeSyncInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: TimeSyncInput, link: GatewayLink) -> dict[str, Any]:
        correct_above = float(inp.params.correct_above_ms)
        alarm_above = float(inp.params.alarm_above_ms)
        gw = inp.gateway_id
        before = await link.run(Commands.measure_clock_offset, partial(gc.MeasureClockOffsetInput, gateway_id=gw),
            step=self.at("measure_clock_offset"))
        details: dict[str, Any] = {"offset_ms": round(before.offset_ms, 1), "clock_valid": before.clock_valid,
                                   "round_trip_ms": round(before.round_trip_ms, 1), "corrected": False}
        if abs(before.offset_ms) > alarm_above or not before.clock_valid:
            await domain_step(GwaSteps.raise_gateway_event, GatewayEventInput(
                event_id=_event_id(workflow.info().workflow_id, "clock_offset"), gateway_id=gw, code="clock_offset",
                level=3 if abs(before.offset_ms) > alarm_above else 2,
                text=f"clock offset {before.offset_ms:.0f} ms beyond {alarm_above:.0f} ms"
                     if before.clock_valid else "gateway reports its clock as not valid",
                details={"offset_ms": f"{before.offset_ms:.0f}", "process": inp.process_id}))
            details["event"] = "clock_offset"
        if abs(before.offset_ms) > correct_above or not before.clock_valid:
            await link.run(Commands.set_time, partial(gc.SetTimeInput, gateway_id=gw, mode="set"),
                           step=self.at("set_time"))
            after = await link.run(Commands.measure_clock_offset, partial(gc.MeasureClockOffsetInput, gateway_id=gw),
                step=self.at("verify_clock_offset"))
            details.update(corrected=True, offset_after_ms=round(after.offset_ms, 1))
            # Setting the clock over the network leaves the one-way delay as residual offset: accept
            # what is within the threshold, the round trip, or RESIDUAL_MS (far below the 9 s a
            # registration period may deviate).
            if abs(after.offset_ms) > max(correct_above, after.round_trip_ms, RESIDUAL_MS):
                raise GatewayStepFailed("clock_not_corrected",
                                        f"offset still {after.offset_ms:.0f} ms after setting the time")
        return details


def _event_id(workflow_id: str, kind: str) -> str:
    return hashlib.sha256(f"{workflow_id}/{kind}".encode()).hexdigest()[:40]
