"""Talking to one gateway from a workflow: find (or wake) the head-end node holding its connection,
run a command there, and recover from the connection going away.

Command IDs are ``<workflow id>/<step>``: stable across every retry of one step, so a gateway that
already applied a command answers with the stored result instead of applying it twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.gateway_commands import GatewayCommandActivities
    from headend import contract as gc

I = TypeVar("I", bound=gc.GatewayCommand)  # noqa: E741
I_co = TypeVar("I_co", bound=gc.GatewayCommand, covariant=True)
R = TypeVar("R")

# A gateway command activity by symbol, e.g. ``GatewayCommandActivities.read_device_info``.
Command = Callable[[Any, I], Awaitable[R]]


class CommandInput(Protocol[I_co]):
    """Makes a command's input for the step's command ID, e.g.
    ``partial(gc.SetTimeInput, gateway_id=gw, mode="set")``."""

    def __call__(self, *, command_id: str) -> I_co: ...

# How long a head-end node may take to pick up a command before we look for the connection again.
SCHEDULE_TO_START = timedelta(seconds=30)


class GatewayStepFailed(Exception):
    """A step failed for good; ``error_type`` is the reason code kept in the outcome."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


# Version marker: before it, a cancelled activity ended the gateway's process as "failed".
PATCH_CANCELLED_OUTCOME = "cancellation-recorded-as-cancelled"


def is_cancellation(err: BaseException) -> bool:
    """True when ``err`` is (or was caused by) the cancellation of this workflow or its activity,
    in workflows started since PATCH_CANCELLED_OUTCOME (older histories keep their behaviour)."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, CancelledError | asyncio.CancelledError):
            return workflow.patched(PATCH_CANCELLED_OUTCOME)
        cause = cause.__cause__
    return False


def error_of(err: BaseException) -> tuple[str, str]:
    """(reason code, message) of an activity or child failure."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, GatewayStepFailed):
            return cause.error_type, cause.message
        if isinstance(cause, ApplicationError):
            return cause.type or "error", cause.message
        if isinstance(cause, TimeoutError):
            return "timeout", str(cause) or "timed out"
        cause = cause.__cause__
    return type(err).__name__, str(err)


class GatewayLink:
    def __init__(self, gateway_id: str, *, priority: int = gc.PRIORITY_PROCESS, attempts: int = 4,
                 connect_timeout_s: float = 120.0) -> None:
        self.gateway_id = gateway_id
        self.priority = priority
        self.attempts = attempts
        self.connect_timeout_s = connect_timeout_s
        self._queue: str | None = None

    def command_id(self, step: str) -> str:
        return f"{workflow.info().workflow_id}/{step}"

    async def connect(self, step: str = "connect") -> str:
        """The task queue of the node holding the gateway's connection (waking it if needed).
        No head-end taking up the request in time (busy waking others, or down) means the
        gateway could not be reached: ``unreachable``, like a gateway that does not answer."""
        try:
            result = await workflow.execute_activity_method(
                GatewayCommandActivities.ensure_gateway_connected,
                gc.EnsureConnectedInput(gateway_id=self.gateway_id, command_id=self.command_id(step),
                                        priority=self.priority, timeout_s=self.connect_timeout_s),
                task_queue=gc.TASK_QUEUE,
                schedule_to_start_timeout=timedelta(seconds=min(60.0, self.connect_timeout_s)),
                start_to_close_timeout=timedelta(seconds=self.connect_timeout_s + 30),
                retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=5),
                                         non_retryable_error_types=sorted(_NON_RETRYABLE)),
            )
        except ActivityError as err:
            reason, message = error_of(err)
            if reason != "timeout" or is_cancellation(err):
                raise
            raise GatewayStepFailed(gc.ERROR_UNREACHABLE, f"no head-end connected the gateway in time ({message})") \
                from err
        self._queue = result.task_queue
        return result.task_queue

    async def run(self, command: Command[I, R], make_input: CommandInput[I], *, step: str,
                  timeout: timedelta = timedelta(seconds=45)) -> R:
        """Run ``command`` with ``make_input(command_id=...)`` on the node holding the connection;
        reconnect and retry on retryable errors."""
        command_id = self.command_id(step)
        last: tuple[str, str] = ("unreachable", "no attempt made")
        for attempt in range(self.attempts):
            try:
                queue = self._queue or await self.connect(f"{step}/connect-{attempt}")
                return await workflow.execute_activity_method(
                    command, make_input(command_id=command_id), task_queue=queue,
                    schedule_to_start_timeout=SCHEDULE_TO_START, start_to_close_timeout=timeout,
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
            except (ActivityError, GatewayStepFailed) as err:
                if is_cancellation(err):
                    raise asyncio.CancelledError(f"{_name(command)} cancelled") from err
                last = error_of(err)
                if last[0] not in gc.RETRYABLE_ERRORS and last[0] != "timeout":
                    raise GatewayStepFailed(*last) from None
                self._queue = None
                await workflow.sleep(timedelta(seconds=min(5 * 2**attempt, 60)))
        raise GatewayStepFailed(last[0] if last[0] != "timeout" else "unreachable",
                                f"{_name(command)} failed after {self.attempts} attempts: {last[1]}")


def _name(command: Callable[..., Any]) -> str:
    return command.__name__


_NON_RETRYABLE = {gc.ERROR_UNKNOWN_GATEWAY}
