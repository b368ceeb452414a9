"""TAF orders and the profile history of gateways.

A TAF order is an EMT's order of one tariff use case on one metering point (MeLo), with its
parameters as data (validated per TAF type, ``domain.tariffs.tafs``). At most one order per
metering point and TAF is active: a new one terminates the old one (an EMT change).

The profile history records every profile gridgate applied to a gateway: ``active`` while it is on
the gateway as recorded, ``superseded`` when the same profile ID was rewritten with new content,
``terminated`` when it was deleted or deactivated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Audited, TenantBase

ORDER_STATUSES = ("active", "terminated")
PROFILE_KINDS = ("meter", "communication", "evaluation")
PROFILE_STATUSES = ("active", "superseded", "terminated")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class TafOrder(Audited, TenantBase):
    __tablename__ = "taf_orders"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(ORDER_STATUSES)})", name="status"),
        CheckConstraint("taf BETWEEN 1 AND 14", name="taf"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="period"),
        # One active order per metering point and TAF: a new order terminates the old one.
        Index("uq_taf_orders_active", "metering_point_id", "taf", unique=True,
              postgresql_where="status = 'active'"),
        Index("ix_taf_orders_emt_status", "emt_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    metering_point_id: Mapped[int] = mapped_column(ForeignKey("metering_points.id"), nullable=False, index=True)
    taf: Mapped[int] = mapped_column(Integer, nullable=False)
    # The recipient EMT (a market partner with a role fitting the TAF).
    emt_id: Mapped[int] = mapped_column(ForeignKey("market_partners.id"), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="active")
    terminated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    termination_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    replaced_by: Mapped[int | None] = mapped_column(ForeignKey("taf_orders.id"), nullable=True)
    external_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)  # the EMT's order reference


class GatewayProfile(TenantBase):
    """One profile on one gateway over a period (the profile history)."""

    __tablename__ = "gateway_profiles"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(PROFILE_KINDS)})", name="kind"),
        CheckConstraint(f"status IN ({_in(PROFILE_STATUSES)})", name="status"),
        Index("uq_gateway_profiles_active", "gateway_id", "kind", "profile_id", unique=True,
              postgresql_where="status = 'active'"),
        Index("ix_gateway_profiles_gateway", "gateway_id", "valid_from"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(14), nullable=False)
    profile_id: Mapped[str] = mapped_column(String(120), nullable=False)  # the ID on the gateway
    content: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    content_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    taf_order_id: Mapped[int | None] = mapped_column(ForeignKey("taf_orders.id"), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="active")
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Which process wrote / ended it (workflow ids are the audit trail in Temporal).
    written_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
