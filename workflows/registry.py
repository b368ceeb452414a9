"""Every workflow type the worker serves, and the sandbox they run in. A new workflow must be
listed here."""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workflows.certificate_renewal import CertificateRenewalWorkflow
from workflows.commissioning import CommissioningWorkflow
from workflows.deinstallation import DeinstallationWorkflow
from workflows.emt_readout import EmtReadoutWorkflow
from workflows.logbook import LogbookReadoutWorkflow
from workflows.mass import MassProcessWorkflow
from workflows.meter_exchange import MeterExchangeWorkflow
from workflows.meter_pairing import MeterPairingWorkflow
from workflows.meterdata_export import MeterDataExportWorkflow
from workflows.meterdata_validation import (
    NightlyValidationWorkflow,
    PendingValidationWorkflow,
    RangeValidationWorkflow,
)
from workflows.profile_rollout import ProfileRolloutWorkflow
from workflows.scheduled import CrlRefreshWorkflow, ScheduledProcessWorkflow
from workflows.selfcheck import TenantSelfCheckWorkflow
from workflows.time_sync import TimeSyncWorkflow

WORKFLOWS: list[type] = [
    TenantSelfCheckWorkflow,
    MassProcessWorkflow,
    TimeSyncWorkflow,
    LogbookReadoutWorkflow,
    ScheduledProcessWorkflow,
    CrlRefreshWorkflow,
    ProfileRolloutWorkflow,
    CommissioningWorkflow,
    MeterPairingWorkflow,
    MeterExchangeWorkflow,
    DeinstallationWorkflow,
    CertificateRenewalWorkflow,
    EmtReadoutWorkflow,
    MeterDataExportWorkflow,
    PendingValidationWorkflow, RangeValidationWorkflow, NightlyValidationWorkflow,
]


# Our own model modules are passed through the sandbox (imported once, outside it): they are pure
# dataclasses, and the payload converter resolves their string annotations (``from __future__
# import annotations``) through ``sys.modules``, which must hold the real modules.
PASSTHROUGH = ("activities", "domain", "core", "pki", "headend", "workflows.common")


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH))
