"""A process and its targets. The target set is frozen at start (stored, never re-evaluated)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Audited, TenantBase

PROCESS_STATES = ("running", "paused", "completed", "failed", "cancelled")
TARGET_STATES = ("pending", "running", "succeeded", "failed", "cancelled")
ACTIVE_TARGET_STATES = ("pending", "running")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Process(Audited, TenantBase):
    __tablename__ = "processes"
    __table_args__ = (CheckConstraint(f"state IN ({_in(PROCESS_STATES)})", name="state"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(12), nullable=False, default="running", index=True)
    # Who and why (the initiator's username; Temporal only sees a pseudonymous reference).
    initiator: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    # How the targets were chosen: "gateways" (explicit list), "filter" (text), "retry" (failed of a process).
    target_kind: Mapped[str] = mapped_column(String(10), nullable=False)
    target_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_of: Mapped[str | None] = mapped_column(ForeignKey("processes.id"), nullable=True)
    total: Mapped[int] = mapped_column(Integer, nullable=False)
    concurrency: Mapped[int] = mapped_column(Integer, nullable=False)
    failure_threshold: Mapped[float] = mapped_column(Float, nullable=False)
    failure_min_samples: Mapped[int] = mapped_column(Integer, nullable=False)
    pause_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    workflow_id: Mapped[str] = mapped_column(String(200), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ProcessTarget(TenantBase):
    __tablename__ = "process_targets"
    __table_args__ = (
        CheckConstraint(f"state IN ({_in(TARGET_STATES)})", name="state"),
        # One gateway is in at most one active process: the second start gets a conflict.
        Index("uq_process_targets_active_gateway", "gateway_pk", unique=True,
              postgresql_where=f"state IN ({_in(ACTIVE_TARGET_STATES)})"),
        Index("ix_process_targets_state", "process_id", "state", "seq"),
    )

    process_id: Mapped[str] = mapped_column(ForeignKey("processes.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1..total, the processing order
    gateway_pk: Mapped[int] = mapped_column(ForeignKey("gateways.id"), nullable=False)
    gateway_id: Mapped[str] = mapped_column(String(14), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(10), nullable=False, default="pending")
    workflow_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(60), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Small step results worth keeping (e.g. measured clock offset); never secrets.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
