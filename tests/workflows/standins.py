"""Stand-in activities for the fast tier, each registered under the real activity's name: a process
with its targets in memory, and a head-end node whose gateways answer as a test scripts them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.processes import (
    CancelPendingInput,
    CountResult,
    NextTargetsInput,
    NextTargetsResult,
    ProcessStateInput,
    TargetFinishedInput,
    TargetRef,
    TargetRunningInput,
)
from headend import contract as gc


@dataclass
class ProcessBook:
    """``process_targets`` and the process row, in memory: what the bookkeeping activities keep."""

    gateways: list[str]
    outcomes: dict[int, str] = field(default_factory=dict)
    states: list[tuple[str, str | None]] = field(default_factory=list)
    cancelled_unreported: list[int] = field(default_factory=list)
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    # record_gateway_outcome fails (and is retried) while this is set: children that never report.
    outcomes_blocked: bool = False

    @activity.defn
    async def next_process_targets(self, inp: NextTargetsInput) -> NextTargetsResult:
        seqs = [s for s in range(inp.after_seq + 1, len(self.gateways) + 1) if s not in self.outcomes][:inp.limit]
        return NextTargetsResult(targets=[TargetRef(seq=s, gateway_id=self.gateways[s - 1]) for s in seqs])

    @activity.defn
    async def mark_target_running(self, inp: TargetRunningInput) -> None:
        return None

    @activity.defn
    async def record_gateway_outcome(self, inp: TargetFinishedInput) -> None:
        if self.outcomes_blocked:
            raise ApplicationError("database unavailable (stand-in)")
        self.outcomes.setdefault(inp.seq, inp.outcome)

    @activity.defn
    async def set_process_state(self, inp: ProcessStateInput) -> None:
        self.states.append((inp.state, inp.pause_reason))
        if inp.state == "paused":
            self.paused.set()

    @activity.defn
    async def cancel_pending_targets(self, inp: CancelPendingInput) -> CountResult:
        self.cancelled_unreported = list(inp.unreported)
        pending = [s for s in range(1, len(self.gateways) + 1) if s not in self.outcomes]
        for seq in pending:
            self.outcomes[seq] = "cancelled"
        return CountResult(count=len(pending))

    def activities(self) -> list[Callable[..., Any]]:
        return [self.next_process_targets, self.mark_target_running, self.record_gateway_outcome,
                self.set_process_state, self.cancel_pending_targets]


@dataclass
class HeadendNode:
    """A head-end node ``n1`` holding every gateway's connection. Gateways in ``failing`` answer
    the clock measurement with a typed final error; ``delay_s`` keeps each command running."""

    failing: set[str] = field(default_factory=set)
    delay_s: float = 0.0
    hold: asyncio.Event | None = None  # when given, commands wait until it is set
    arrived: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # a gateway ID per command received

    @activity.defn
    async def ensure_gateway_connected(self, inp: gc.EnsureConnectedInput) -> gc.EnsureConnectedResult:
        return gc.EnsureConnectedResult(gateway_id=inp.gateway_id, node_id="n1", task_queue=gc.node_task_queue("n1"),
                                        woken=False, waited_s=0.0)

    @activity.defn
    async def measure_clock_offset(self, inp: gc.MeasureClockOffsetInput) -> gc.ClockOffsetResult:
        self.arrived.put_nowait(inp.gateway_id)
        if self.hold is not None:
            await self.hold.wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if inp.gateway_id in self.failing:
            raise ApplicationError("the gateway rejected the request (stand-in)", type=gc.ERROR_REJECTED,
                                   non_retryable=True)
        return gc.ClockOffsetResult(gateway_id=inp.gateway_id, gateway_time="2026-12-01T00:00:00Z", offset_ms=12.0,
                                    round_trip_ms=40.0, clock_valid=True)


def gateways(n: int) -> list[str]:
    return [f"EEMH07{20_000_000 + i:08d}" for i in range(n)]
