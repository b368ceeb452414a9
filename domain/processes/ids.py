"""Deterministic workflow IDs of processes (pure functions: imported by workflows too)."""

from __future__ import annotations


def mass_workflow_id(process_id: str) -> str:
    return f"mass/{process_id}"


def gateway_workflow_id(process_type: str, gateway_id: str, process_id: str) -> str:
    """``<process>/<gateway>/<process id>``: the same gateway in the same process is always the
    same workflow, so a duplicate start is rejected rather than run twice."""
    return f"{process_type}/{gateway_id}/{process_id}"
