"""EMT readout requests, and the table of the former readout outbox.

An EMT's on-demand readout is a request the GWA passes on to the gateway (``trigger_readout``); the
gateway delivers the values to the EMT's meter data endpoint itself (docs/protocol.md 14), and the
request records which delivery the gateway started (profile, reason, x-CID, time of the values).

``readout_outbox`` held the CMS containers gateways used to return inside admin answers, before
they delivered readouts themselves. Nothing reads it any more; it stays only for workflows started
before that change (docs/processes.md, "Readouts before the gateway delivered them itself") and is
to be dropped with :mod:`domain.readouts.legacy_outbox`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import TenantBase

READOUT_REASONS = ("on_demand", "first_readout", "final_readout", "meter_exchange_final", "meter_exchange_initial")
REQUEST_STATES = ("running", "succeeded", "failed")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class ReadoutContainer(TenantBase):
    """A sealed readout of the former outbox (kept only for workflows started before the change)."""

    __tablename__ = "readout_outbox"
    __table_args__ = (
        CheckConstraint(f"reason IN ({_in(READOUT_REASONS)})", name="reason"),
        Index("ix_readout_outbox_recipient", "recipient", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    recipient: Mapped[str] = mapped_column(String(13), nullable=False)  # EMT market partner ID
    gateway_id: Mapped[str] = mapped_column(String(14), nullable=False, index=True)
    meter_id: Mapped[str] = mapped_column(String(14), nullable=False)
    metering_point: Mapped[str | None] = mapped_column(String(33), nullable=True)
    profile_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    reason: Mapped[str] = mapped_column(String(24), nullable=False)
    container: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # A retried store finds the container by its hash and stores nothing twice.
    sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    workflow_id: Mapped[str] = mapped_column(String(200), nullable=False)
    process_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EmtReadoutRequest(TenantBase):
    """An EMT's on-demand readout (TAF 6) of one metering point."""

    __tablename__ = "emt_readout_requests"
    __table_args__ = (
        CheckConstraint(f"state IN ({_in(REQUEST_STATES)})", name="state"),
        Index("uq_emt_readout_requests_client_ref", "emt", "client_ref", unique=True,
              postgresql_where="client_ref IS NOT NULL"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    emt: Mapped[str] = mapped_column(String(13), nullable=False, index=True)
    client_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    metering_point: Mapped[str] = mapped_column(String(33), nullable=False)
    gateway_id: Mapped[str] = mapped_column(String(14), nullable=False)
    meter_id: Mapped[str] = mapped_column(String(14), nullable=False)
    registers: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False, default="running")
    error_type: Mapped[str | None] = mapped_column(String(60), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the delivery the gateway started (docs/protocol.md 10.9): profile, TAF, gg:reason, x-CID and
    # the time of the values; the values are in the EMT's MDM, never here
    profile_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    taf: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    delivery_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    values_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # requests finished before the change: the sealed container in the former outbox
    container_id: Mapped[int | None] = mapped_column(ForeignKey("readout_outbox.id"), nullable=True)
    workflow_id: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
