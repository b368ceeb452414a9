"""GatewayLink when no head-end takes up the connection request: the gateway is ``unreachable``
(the reason an operator acts on), both when a step connects explicitly (commissioning's
``wake_and_connect``) and inside a command's retries. Runs in the ``default`` namespace, where no
head-end polls the ``headend`` queue, so the request's schedule-to-start timeout expires."""

from __future__ import annotations

import uuid
from functools import partial

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.gateway_commands import GatewayCommandActivities
from headend import contract as gc
from workflows.gateway import GatewayLink, GatewayStepFailed


@workflow.defn(name="LinkProbe")
class LinkProbe:
    @workflow.run
    async def run(self, mode: str) -> list[str]:
        link = GatewayLink("EEMH0000000001", attempts=1, connect_timeout_s=1)
        try:
            if mode == "connect":
                await link.connect("wake_and_connect")
            else:
                await link.run(GatewayCommandActivities.set_time,
                               partial(gc.SetTimeInput, gateway_id="EEMH0000000001", mode="set"), step="set_time")
        except GatewayStepFailed as err:
            return [err.error_type, err.message]
        return ["connected", ""]


async def test_no_head_end_taking_the_request_means_unreachable(temporal_env: WorkflowEnvironment) -> None:
    queue = f"link-{uuid.uuid4().hex[:8]}"
    client = temporal_env.client
    async with Worker(client, task_queue=queue, workflows=[LinkProbe], workflow_runner=UnsandboxedWorkflowRunner()):
        for mode in ("connect", "run"):
            reason, message = await client.execute_workflow(LinkProbe.run, mode, id=f"{queue}-{mode}",
                                                            task_queue=queue)
            assert reason == gc.ERROR_UNREACHABLE, (mode, message)
            assert message
