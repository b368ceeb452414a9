"""The frame of every per-gateway process workflow: bookkeeping before and after the steps, the
outcome reported to the mass workflow, and a failed outcome shown as a failed workflow in the UI."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Generic, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.processes import ProcessActivities, TargetFinishedInput, TargetRunningInput
    from workflows.common import TARGET_FINISHED_SIGNAL, GatewayProcessInput, GatewayProcessResult, TargetFinished
    from workflows.gateway import GatewayLink, GatewayStepFailed, error_of, is_cancellation

A = TypeVar("A")
R = TypeVar("R")
I = TypeVar("I", bound=GatewayProcessInput)  # noqa: E741

# An activity method by symbol, e.g. ``ProcessActivities.mark_target_running``.
Step = Callable[[Any, A], Awaitable[R]]

_BOOKKEEPING_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
_DOMAIN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                            maximum_attempts=10)


async def bookkeeping(activity: Step[A, R], arg: A) -> R:
    """A bookkeeping activity on the main queue: short, retried until it succeeds."""
    return await workflow.execute_activity_method(activity, arg, start_to_close_timeout=timedelta(seconds=30),
                                                  retry_policy=_BOOKKEEPING_RETRY)


async def domain_step(activity: Step[A, R], arg: A, *, timeout: timedelta = timedelta(seconds=60)) -> R:
    """A step against gridgate's own database (main task queue). Domain refusals are typed and
    non-retryable; they end the gateway's process with that reason."""
    try:
        return await workflow.execute_activity_method(activity, arg, start_to_close_timeout=timeout,
                                                      retry_policy=_DOMAIN_RETRY)
    except ActivityError as err:
        if is_cancellation(err):
            raise asyncio.CancelledError(f"{activity.__name__} cancelled") from err
        raise GatewayStepFailed(*error_of(err)) from None


class GatewayProcessWorkflow(Generic[I]):
    """Subclasses implement ``steps`` and decorate ``run`` with ``@workflow.run``."""

    def __init__(self) -> None:
        self.link: GatewayLink | None = None
        self.step = "starting"

    async def steps(self, inp: I, link: GatewayLink) -> dict[str, Any]:
        raise NotImplementedError

    async def execute(self, inp: I) -> GatewayProcessResult:
        info = workflow.info()
        self.link = GatewayLink(inp.gateway_id, attempts=inp.attempts, connect_timeout_s=inp.connect_timeout_s)
        outcome, error_type, message, details = "succeeded", None, None, {}
        try:
            # Inside the try: a cancellation that arrives this early must be reported too.
            await bookkeeping(ProcessActivities.mark_target_running, TargetRunningInput(
                process_id=inp.process_id, seq=inp.seq, workflow_id=info.workflow_id))
            details = await self.steps(inp, self.link)
        except asyncio.CancelledError:
            outcome, error_type, message = "cancelled", "cancelled", f"cancelled during {self.step}"
        except (GatewayStepFailed, ActivityError, ChildWorkflowError, ApplicationError) as err:
            if is_cancellation(err):
                outcome, error_type, message = "cancelled", "cancelled", f"cancelled during {self.step}"
            else:
                outcome = "failed"
                error_type, message = error_of(err)
                message = f"{self.step}: {message}"
        result = GatewayProcessResult(gateway_id=inp.gateway_id, outcome=outcome, error_type=error_type,
                                      error_message=message, details=details)
        # Bookkeeping runs even after a cancellation: the outcome must be recorded.
        await bookkeeping(ProcessActivities.record_gateway_outcome, TargetFinishedInput(
            process_id=inp.process_id, seq=inp.seq, outcome=outcome, error_type=error_type, error_message=message,
            result=_small(details)))
        if inp.parent_workflow_id:
            parent = workflow.get_external_workflow_handle(inp.parent_workflow_id)
            try:
                await parent.signal(TARGET_FINISHED_SIGNAL, TargetFinished(
                    seq=inp.seq, gateway_id=inp.gateway_id, outcome=outcome, error_type=error_type))
            except ApplicationError:
                workflow.logger.warning("mass workflow %s is gone; outcome recorded", inp.parent_workflow_id)
        if outcome == "failed":
            raise ApplicationError(message or "failed", details, type=error_type, non_retryable=True)
        if outcome == "cancelled":
            raise asyncio.CancelledError(message)
        return result

    def at(self, step: str) -> str:
        """Name the current step (shown in failure messages)."""
        self.step = step
        return step


def _small(details: dict[str, Any]) -> dict[str, Any]:
    """Keep scalar step results only (no containers, no secrets) for the outcome row."""
    return {k: v for k, v in details.items() if isinstance(v, str | int | float | bool) or v is None}
