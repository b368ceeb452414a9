"""The frame of every per-gateway process workflow: bookkeeping before and after the steps, the
outcome reported to the mass workflow, and a failed outcome shown as a failed workflow in the UI."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.processes import TargetFinishedInput, TargetRunningInput
    from workflows.common import GatewayProcessInput, GatewayProcessResult, TargetFinished
    from workflows.gateway import GatewayLink, GatewayStepFailed, error_of, is_cancellation

T = TypeVar("T")


async def bookkeeping(activity: str, arg: Any, result_type: type[T] | None = None) -> T:
    """A bookkeeping activity on the main queue: short, retried until it succeeds."""
    return await workflow.execute_activity(  # type: ignore[no-any-return]
        activity, arg, result_type=result_type, start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)))


async def domain_step(activity: str, arg: Any, result_type: type | None = None, *,
                      timeout: timedelta = timedelta(seconds=60)) -> Any:
    """A step against gridgate's own database (main task queue). Domain refusals are typed and
    non-retryable; they end the gateway's process with that reason."""
    try:
        return await workflow.execute_activity(
            activity, arg, result_type=result_type, start_to_close_timeout=timeout,
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                                     maximum_attempts=10),
        )
    except ActivityError as err:
        if is_cancellation(err):
            raise asyncio.CancelledError(f"{activity} cancelled") from err
        raise GatewayStepFailed(*error_of(err)) from None


class GatewayProcessWorkflow:
    """Subclasses implement ``steps`` and decorate ``run`` with ``@workflow.run``."""

    def __init__(self) -> None:
        self.link: GatewayLink | None = None
        self.step = "starting"

    async def steps(self, inp: GatewayProcessInput, link: GatewayLink) -> dict[str, Any]:
        raise NotImplementedError

    async def execute(self, inp: GatewayProcessInput) -> GatewayProcessResult:
        info = workflow.info()
        self.link = GatewayLink(inp.gateway_id, attempts=inp.attempts, connect_timeout_s=inp.connect_timeout_s)
        outcome, error_type, message, details = "succeeded", None, None, {}
        try:
            # Inside the try: a cancellation that arrives this early must be reported too.
            await bookkeeping("mark_target_running", TargetRunningInput(inp.process_id, inp.seq, info.workflow_id))
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
        result = GatewayProcessResult(inp.gateway_id, outcome, error_type, message, details)
        # Bookkeeping runs even after a cancellation: the outcome must be recorded.
        await bookkeeping("record_gateway_outcome", TargetFinishedInput(
            inp.process_id, inp.seq, outcome, error_type, message, _small(details)))
        if inp.parent_workflow_id:
            parent = workflow.get_external_workflow_handle(inp.parent_workflow_id)
            try:
                await parent.signal("target_finished", TargetFinished(inp.seq, inp.gateway_id, outcome, error_type))
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
