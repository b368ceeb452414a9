"""Every activity the worker serves, built for one tenant. A new activity class must be added here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.runtime import TenantRuntime
from activities.selfcheck import SelfCheckActivities


def activities_for(runtime: TenantRuntime) -> list[Callable[..., Any]]:
    selfcheck = SelfCheckActivities(runtime)
    return [selfcheck.check_tenant_database]
