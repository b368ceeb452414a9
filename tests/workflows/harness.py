"""Workers for a fast-tier test: every real workflow, the test's stand-in activities."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from temporalio.client import Client
from temporalio.worker import (
    Interceptor,
    StartChildWorkflowInput,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from headend import contract as gc
from workflows.registry import WORKFLOWS, workflow_runner


class _Outbound(WorkflowOutboundInterceptor):
    def start_child_workflow(self, input: StartChildWorkflowInput) -> Any:
        return self.next.start_child_workflow(dataclasses.replace(input, search_attributes=None))


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_Outbound(outbound))


class WithoutSearchAttributes(Interceptor):
    """The time-skipping test server knows no custom search attributes and never starts a child
    that carries them; the tier drops them (tests/processes checks them on the dev server)."""

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _Inbound


@asynccontextmanager
async def running(client: Client, main: Sequence[Callable[..., Any]], headend: Sequence[Callable[..., Any]] = (),
                  node_commands: Sequence[Callable[..., Any]] = (), *,
                  probes: Sequence[type] = ()) -> AsyncIterator[str]:
    """Workers for every workflow on a fresh task queue with the ``main`` stand-ins, and (when
    given) a stand-in head-end node ``n1`` polling the ``headend`` and ``headend-n1`` queues;
    ``probes`` are the test's own workflows. Yields the main task queue."""
    queue = f"tier-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(Worker(client, task_queue=queue, workflows=[*WORKFLOWS, *probes],
                                               activities=list(main),
                                               workflow_runner=workflow_runner(),
                                               interceptors=[WithoutSearchAttributes()]))
        if headend:
            await stack.enter_async_context(Worker(client, task_queue=gc.TASK_QUEUE, activities=list(headend)))
        if node_commands:
            await stack.enter_async_context(Worker(client, task_queue=gc.node_task_queue("n1"),
                                                   activities=list(node_commands)))
        yield queue
