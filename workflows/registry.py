"""Every workflow type the worker serves. A new workflow must be listed here."""

from __future__ import annotations

from workflows.logbook import LogbookReadoutWorkflow
from workflows.mass import MassProcessWorkflow
from workflows.selfcheck import TenantSelfCheckWorkflow
from workflows.time_sync import TimeSyncWorkflow

WORKFLOWS: list[type] = [
    TenantSelfCheckWorkflow,
    MassProcessWorkflow,
    TimeSyncWorkflow,
    LogbookReadoutWorkflow,
]
