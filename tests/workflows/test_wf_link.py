"""GatewayLink on the time-skipping server: a retryable failure is retried with back-off (5, 10,
20 s ...) on a fresh connection each time, and a gateway that never connects ends ``unreachable``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.gateway_commands import GatewayCommandActivities
from headend import contract as gc
from tests.workflows.harness import running
from workflows.gateway import GatewayLink, GatewayStepFailed

GATEWAY = "EEMH0720000100"


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    error_type: str
    message: str
    waited_s: float


@workflow.defn(sandboxed=False)
class LinkProbe:
    @workflow.run
    async def run(self, attempts: int) -> ProbeResult:
        link = GatewayLink(GATEWAY, attempts=attempts, connect_timeout_s=30)
        started = workflow.now()
        try:
            await link.run(GatewayCommandActivities.set_time, partial(gc.SetTimeInput, gateway_id=GATEWAY, mode="set"),
                           step="set_time")
        except GatewayStepFailed as err:
            return ProbeResult(error_type=err.error_type, message=err.message,
                               waited_s=(workflow.now() - started).total_seconds())
        return ProbeResult(error_type="", message="applied", waited_s=(workflow.now() - started).total_seconds())


@dataclass
class FlakyNode:
    """Connections always found; the command loses its connection until ``succeed_after`` tries."""

    succeed_after: int = 99
    connects: int = 0
    tries: list[str] = field(default_factory=list)

    @activity.defn
    async def ensure_gateway_connected(self, inp: gc.EnsureConnectedInput) -> gc.EnsureConnectedResult:
        self.connects += 1
        return gc.EnsureConnectedResult(gateway_id=inp.gateway_id, node_id="n1", task_queue=gc.node_task_queue("n1"),
                                        woken=True, waited_s=0.1)

    @activity.defn
    async def set_time(self, inp: gc.SetTimeInput) -> gc.SetTimeResult:
        self.tries.append(inp.command_id)
        if len(self.tries) < self.succeed_after:
            raise ApplicationError("connection dropped (stand-in)", type=gc.ERROR_CONNECTION_LOST)
        return gc.SetTimeResult(gateway_id=inp.gateway_id, mode="set", sent_time="2026-12-01T00:00:00Z", shift_ms=None)


@dataclass
class SilentGateway:
    """Woken again and again, the gateway never connects."""

    wakeups: int = 0

    @activity.defn
    async def ensure_gateway_connected(self, inp: gc.EnsureConnectedInput) -> gc.EnsureConnectedResult:
        self.wakeups += 1
        raise ApplicationError(f"gateway {inp.gateway_id} did not connect (stand-in)", type=gc.ERROR_UNREACHABLE)


async def _probe(env: WorkflowEnvironment, queue: str, attempts: int) -> ProbeResult:
    return await env.client.execute_workflow(LinkProbe.run, attempts, id=f"probe-{uuid.uuid4().hex[:8]}",
                                             task_queue=queue, execution_timeout=timedelta(hours=1))


async def test_a_lost_connection_is_retried_with_back_off_on_a_new_connection(time_env: WorkflowEnvironment) -> None:
    node = FlakyNode(succeed_after=3)
    async with running(time_env.client, [], [node.ensure_gateway_connected], [node.set_time],
                       probes=[LinkProbe]) as queue:
        got = await _probe(time_env, queue, attempts=4)
    assert got.message == "applied"
    assert node.connects == 3  # each retry looks for the connection again
    assert len(set(node.tries)) == 1  # the same command ID on every try: the step is one command
    assert got.waited_s >= 5 + 10  # back-off before the second and third try


async def test_giving_up_after_the_attempts_keeps_the_retryable_reason(time_env: WorkflowEnvironment) -> None:
    node = FlakyNode()
    async with running(time_env.client, [], [node.ensure_gateway_connected], [node.set_time],
                       probes=[LinkProbe]) as queue:
        got = await _probe(time_env, queue, attempts=4)
    assert got.error_type == gc.ERROR_CONNECTION_LOST
    assert "failed after 4 attempts" in got.message
    assert got.waited_s >= 5 + 10 + 20 + 40


async def test_a_gateway_that_never_connects_is_unreachable(time_env: WorkflowEnvironment) -> None:
    silent = SilentGateway()
    async with running(time_env.client, [], [silent.ensure_gateway_connected], probes=[LinkProbe]) as queue:
        got = await _probe(time_env, queue, attempts=2)
    assert got.error_type == gc.ERROR_UNREACHABLE
    assert silent.wakeups == 4  # two activity attempts per connect, two connects
