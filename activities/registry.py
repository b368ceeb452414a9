"""Every activity the main worker serves, built for one tenant. A new activity class must be added here.

(Gateway command activities run in the head-end process, on its own task queues.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.gwa_steps import GwaSteps
from activities.processes import ProcessActivities
from activities.runtime import TenantRuntime
from activities.selfcheck import SelfCheckActivities


def activities_for(runtime: TenantRuntime) -> list[Callable[..., Any]]:
    selfcheck = SelfCheckActivities(runtime)
    return [selfcheck.check_tenant_database, *ProcessActivities(runtime).all(), *GwaSteps(runtime).all()]
