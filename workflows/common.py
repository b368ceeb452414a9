"""Models and search attributes shared by the process workflows. Additive changes only: committed
histories are decoded with these types (unknown fields are ignored, missing ones take defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

SA_PROCESS_TYPE = SearchAttributeKey.for_keyword("GridgateProcessType")
SA_GATEWAY = SearchAttributeKey.for_keyword("GridgateGatewayRef")
SA_MASS_PROCESS = SearchAttributeKey.for_keyword("GridgateMassProcessId")
SA_INITIATOR = SearchAttributeKey.for_keyword("GridgateInitiator")

# The signal a gateway workflow sends its mass workflow. A name, not the handler's symbol: the
# mass workflow imports the gateway workflows it starts, so they cannot import it back.
TARGET_FINISHED_SIGNAL = "target_finished"


def search_attributes(process_type: str, process_id: str, initiator_ref: str,
                      gateway_id: str | None = None) -> TypedSearchAttributes:
    """No personal data: the initiator is a pseudonymous reference (``user#<id>``), not a name."""
    pairs = [SearchAttributePair(SA_PROCESS_TYPE, process_type), SearchAttributePair(SA_MASS_PROCESS, process_id),
             SearchAttributePair(SA_INITIATOR, initiator_ref)]
    if gateway_id:
        pairs.append(SearchAttributePair(SA_GATEWAY, gateway_id))
    return TypedSearchAttributes(pairs)


@dataclass(frozen=True, kw_only=True)
class GatewayProcessInput:
    """What every per-gateway process workflow gets. Each process type extends it with ``params``,
    its validated parameter model (``workflows.processes``)."""

    process_id: str
    seq: int
    gateway_id: str
    process_type: str
    # The mass workflow to tell when done (None when run on its own, e.g. in tests).
    parent_workflow_id: str | None = None
    initiator_ref: str = ""
    # How hard to try reaching the gateway (wake-up + wait, then retries of a step).
    connect_timeout_s: float = 120.0
    attempts: int = 4


@dataclass(frozen=True, kw_only=True)
class GatewayProcessResult:
    gateway_id: str
    outcome: str  # succeeded | failed | cancelled
    error_type: str | None = None
    error_message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TargetFinished:
    """Signal from a gateway workflow to its mass workflow."""

    seq: int
    gateway_id: str
    outcome: str
    error_type: str | None = None


@dataclass(frozen=True, kw_only=True)
class PauseRequest:
    reason: str = "paused by operator"


@dataclass(frozen=True, kw_only=True)
class MassProcessInput:
    """A mass process: what to run over which stored target set, and (after continue-as-new) where
    the previous run stopped. The workflow keeps its live state in a copy (``MassProcessState``)."""

    process_id: str
    process_type: str
    # The type's validated params as stored with the process (JSON); each gateway workflow gets
    # them as its own params model.
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


@dataclass(frozen=True, kw_only=True)
class MassProcessResult:
    process_id: str
    state: str
    succeeded: int
    failed: int
    cancelled: int


@dataclass(frozen=True, kw_only=True)
class Progress:
    process_id: str
    state: str
    started: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    pause_reason: str | None
