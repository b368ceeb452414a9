"""Which workflow runs one gateway of each process type, and the input it gets. The mass workflow
starts children from here; ``domain.processes.types`` names the types and validates their params."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.processes.types import TYPES
    from workflows.certificate_renewal import CertificateRenewalInput, CertificateRenewalWorkflow
    from workflows.commissioning import CommissioningInput, CommissioningWorkflow
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.deinstallation import DeinstallationInput, DeinstallationWorkflow
    from workflows.logbook import LogbookReadoutInput, LogbookReadoutWorkflow
    from workflows.meter_exchange import MeterExchangeProcessInput, MeterExchangeWorkflow
    from workflows.meter_pairing import MeterPairingInput, MeterPairingWorkflow
    from workflows.profile_rollout import ProfileRolloutInput, ProfileRolloutWorkflow
    from workflows.time_sync import TimeSyncInput, TimeSyncWorkflow

I = TypeVar("I", bound=GatewayProcessInput)  # noqa: E741


@dataclass(frozen=True)
class ProcessWorkflow(Generic[I]):
    run: Callable[[Any, I], Awaitable[GatewayProcessResult]]
    input: Callable[..., I]  # the input class: GatewayProcessInput's fields and ``params``

    def input_for(self, *, process_type: str, params: dict[str, Any], **common: Any) -> I:
        """The gateway workflow's input, with the stored (already validated) params as the type's
        params model."""
        return self.input(process_type=process_type, params=TYPES[process_type].params(**params), **common)


PROCESS_WORKFLOWS: dict[str, ProcessWorkflow[Any]] = {
    "commissioning": ProcessWorkflow(CommissioningWorkflow.run, CommissioningInput),
    "meter_pairing": ProcessWorkflow(MeterPairingWorkflow.run, MeterPairingInput),
    "meter_exchange": ProcessWorkflow(MeterExchangeWorkflow.run, MeterExchangeProcessInput),
    "profile_rollout": ProcessWorkflow(ProfileRolloutWorkflow.run, ProfileRolloutInput),
    "time_sync": ProcessWorkflow(TimeSyncWorkflow.run, TimeSyncInput),
    "logbook_readout": ProcessWorkflow(LogbookReadoutWorkflow.run, LogbookReadoutInput),
    "deinstallation": ProcessWorkflow(DeinstallationWorkflow.run, DeinstallationInput),
    "certificate_renewal": ProcessWorkflow(CertificateRenewalWorkflow.run, CertificateRenewalInput),
}
