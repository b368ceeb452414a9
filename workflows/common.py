"""Models and search attributes shared by the process workflows. Additive changes only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

SA_PROCESS_TYPE = SearchAttributeKey.for_keyword("GridgateProcessType")
SA_GATEWAY = SearchAttributeKey.for_keyword("GridgateGatewayRef")
SA_MASS_PROCESS = SearchAttributeKey.for_keyword("GridgateMassProcessId")
SA_INITIATOR = SearchAttributeKey.for_keyword("GridgateInitiator")


def search_attributes(process_type: str, process_id: str, initiator_ref: str,
                      gateway_id: str | None = None) -> TypedSearchAttributes:
    """No personal data: the initiator is a pseudonymous reference (``user#<id>``), not a name."""
    pairs = [SearchAttributePair(SA_PROCESS_TYPE, process_type), SearchAttributePair(SA_MASS_PROCESS, process_id),
             SearchAttributePair(SA_INITIATOR, initiator_ref)]
    if gateway_id:
        pairs.append(SearchAttributePair(SA_GATEWAY, gateway_id))
    return TypedSearchAttributes(pairs)


@dataclass(frozen=True)
class GatewayProcessInput:
    """Input of every per-gateway process workflow."""

    process_id: str
    seq: int
    gateway_id: str
    process_type: str
    params: dict[str, Any] = field(default_factory=dict)
    # The mass workflow to tell when done (None when run on its own, e.g. in tests).
    parent_workflow_id: str | None = None
    initiator_ref: str = ""
    # How hard to try reaching the gateway (wake-up + wait, then retries of a step).
    connect_timeout_s: float = 120.0
    attempts: int = 4


@dataclass(frozen=True)
class GatewayProcessResult:
    gateway_id: str
    outcome: str  # succeeded | failed | cancelled
    error_type: str | None = None
    error_message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetFinished:
    """Signal from a gateway workflow to its mass workflow."""

    seq: int
    gateway_id: str
    outcome: str
    error_type: str | None = None


@dataclass(frozen=True)
class PauseRequest:
    reason: str = "paused by operator"


@dataclass
class MassProcessInput:
    process_id: str
    process_type: str
    workflow_type: str
    params: dict[str, Any]
    concurrency: int
    failure_threshold: float
    failure_min_samples: int
    initiator_ref: str
    connect_timeout_s: float = 120.0
    attempts: int = 4
    # Children started per run before continuing as new (bounds each run's history).
    starts_per_run: int = 1000
    # Carried over continue-as-new; the target list itself never enters the history.
    cursor: int = 0
    in_flight: dict[int, str] = field(default_factory=dict)  # seq -> gateway
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    paused: bool = False
    pause_reason: str | None = None
    cancel_requested: bool = False
    runs: int = 0
    # Outcomes at the last resume: the failure rate that pauses again counts only what came after.
    rate_base_succeeded: int = 0
    rate_base_failed: int = 0


@dataclass(frozen=True)
class MassProcessResult:
    process_id: str
    state: str
    succeeded: int
    failed: int
    cancelled: int


@dataclass(frozen=True)
class Progress:
    process_id: str
    state: str
    started: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    pause_reason: str | None
