"""What the process step activities share: a tenant session bound to the workflow as actor, and
domain refusals as typed non-retryable failures."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.runtime import TenantRuntime
from core.context import set_actor
from core.errors import GridgateError

P = ParamSpec("P")
R = TypeVar("R")


def refusal(code: str, message: str) -> ApplicationError:
    """A business refusal: the process of this gateway ends with ``code`` (no retry helps)."""
    return ApplicationError(message, type=code, non_retryable=True)


def domain_refusals(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Domain errors (4xx) become non-retryable failures with their reason code."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except GridgateError as err:
            raise refusal(err.code, err.message) from None

    return wrapper


def workflow_session(runtime: TenantRuntime) -> AsyncSession:
    """A session on the runtime's tenant, with the running workflow as the actor of what it changes."""
    set_actor(f"workflow:{activity.info().workflow_id or ''}")
    return runtime.tenant.sessions()


class Steps:
    def __init__(self, runtime: TenantRuntime) -> None:
        self.runtime = runtime

    def _session(self) -> AsyncSession:
        return workflow_session(self.runtime)
