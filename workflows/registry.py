"""Every workflow type the worker serves. A new workflow must be listed here."""

from __future__ import annotations

from workflows.certificate_renewal import CertificateRenewalWorkflow
from workflows.commissioning import CommissioningWorkflow
from workflows.deinstallation import DeinstallationWorkflow
from workflows.emt_readout import EmtReadoutWorkflow
from workflows.logbook import LogbookReadoutWorkflow
from workflows.mass import MassProcessWorkflow
from workflows.meter_exchange import MeterExchangeWorkflow
from workflows.meter_pairing import MeterPairingWorkflow
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
]
