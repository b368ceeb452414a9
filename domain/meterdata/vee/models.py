"""VEE tables (docs/mdm.md, "VEE"): the rule chains per market role (versioned, one active), the
validation runs and their findings, and the queue of (series, day) waiting for validation after a
delivery touched them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import TenantBase

TRIGGERS = ("delivery", "daily", "rerun")
RUN_STATES = ("running", "completed", "failed")
SEVERITIES = ("info", "warning", "error")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class VeeChain(TenantBase):
    """One version of the rule chain of a market role (``VNB``, ``MSB``, ``LF``, ...): the rules as
    declarative JSON (``domain.meterdata.vee.chain``). Never changed: a new version is a new row,
    and exactly one version per role is active."""

    __tablename__ = "vee_chains"
    __table_args__ = (
        UniqueConstraint("role", "version", name="uq_vee_chains_role_version"),
        Index("uq_vee_chains_active", "role", unique=True, postgresql_where="active"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(10), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class VeeRun(TenantBase):
    """A validation pass: what started it, which chain versions it applied, over which days, how far
    it got. ``workflow_id`` makes opening a run idempotent for the workflow that runs it."""

    __tablename__ = "vee_runs"
    __table_args__ = (
        CheckConstraint(f"trigger IN ({_in(TRIGGERS)})", name="trigger"),
        CheckConstraint(f"state IN ({_in(RUN_STATES)})", name="state"),
        Index("ix_vee_runs_started", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(10), nullable=False)
    workflow_id: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    initiator: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    last_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    chain_versions: Mapped[dict[str, int]] = mapped_column(JSONB, nullable=False, default=dict)  # role -> version
    state: Mapped[str] = mapped_column(String(10), nullable=False, default="running")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    days: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # (series, day) validated
    values: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    versions: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # validated versions written
    findings: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    substitutes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    missing: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class VeeFinding(TenantBase):
    """What one rule found on one (series, day) in one run; ``slots`` the quarter hours concerned
    (None: the day as a whole)."""

    __tablename__ = "vee_findings"
    __table_args__ = (
        CheckConstraint(f"severity IN ({_in(SEVERITIES)})", name="severity"),
        Index("ix_vee_findings_series_day", "series_id", "day"),
        Index("ix_vee_findings_run", "run_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("vee_runs.id"), nullable=False)
    series_id: Mapped[int] = mapped_column(ForeignKey("meter_series.id"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    rule_id: Mapped[str] = mapped_column(String(40), nullable=False)
    severity: Mapped[str] = mapped_column(String(8), nullable=False)
    slots: Mapped[list[int] | None] = mapped_column(ARRAY(SmallInteger), nullable=True)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)


class VeePending(TenantBase):
    """A (series, day) a delivery gave a new raw version (or a conflict), waiting for validation.
    ``queued_at`` is the wall clock of the last enqueue: a validation removes the row only if it is
    still the one it read, so a delivery arriving meanwhile queues the day again."""

    __tablename__ = "vee_pending"
    __table_args__ = (PrimaryKeyConstraint("series_id", "day", name="pk_vee_pending"),)

    series_id: Mapped[int] = mapped_column(ForeignKey("meter_series.id"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
