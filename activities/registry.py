"""Every activity the main worker serves, built for one tenant. A new activity class must be added here.

(Gateway command activities run in the head-end process, on its own task queues:
``activities.gateway_commands.headend_activities``.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.commissioning_steps import CommissioningSteps
from activities.gwa_steps import GwaSteps
from activities.meter_steps import MeterSteps
from activities.meterdata_export_steps import MeterDataExportSteps
from activities.meterdata_steps import MeterDataSteps
from activities.processes import ProcessActivities
from activities.readout_steps import ReadoutSteps
from activities.renewal_steps import RenewalSteps
from activities.runtime import TenantRuntime
from activities.schedule_steps import ScheduleSteps
from activities.selfcheck import SelfCheckActivities
from activities.tariff_steps import TariffSteps
from core.temporal import activity_methods

MAIN_WORKER_ACTIVITIES = (SelfCheckActivities, ProcessActivities, GwaSteps, ScheduleSteps, TariffSteps,
                          CommissioningSteps, MeterSteps, ReadoutSteps, RenewalSteps, MeterDataExportSteps,
                          MeterDataSteps)


def activities_for(runtime: TenantRuntime) -> list[Callable[..., Any]]:
    return [method for cls in MAIN_WORKER_ACTIVITIES for method in activity_methods(cls(runtime))]
