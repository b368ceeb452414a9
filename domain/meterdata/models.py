"""Meter data tables (docs/mdm.md, "Storage"). ``meter_days`` and ``grid_measurements`` are
range-partitioned by month; their partitions are created ahead and dropped by retention
(``domain.meterdata.partitions``), so they are not models of their own."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
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

SERIES_KINDS = ("interval", "register", "grid")
LAYERS = {"raw": 0, "validated": 1, "edited": 2}
DELIVERY_OUTCOMES = ("stored", "duplicate", "conflict", "refused")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class MeterSeries(TenantBase):
    """One quantity of one metering point for one market partner: the identity of every value.
    A meter exchange continues the metering point's series (the meter is not part of the key)."""

    __tablename__ = "meter_series"
    __table_args__ = (
        UniqueConstraint("metering_point_id", "obis", "market_partner", name="uq_meter_series_key"),
        CheckConstraint(f"kind IN ({_in(SERIES_KINDS)})", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    metering_point_id: Mapped[int] = mapped_column(ForeignKey("metering_points.id"), nullable=False)
    obis: Mapped[str] = mapped_column(String(20), nullable=False)  # A-B:C.D.E
    market_partner: Mapped[str] = mapped_column(ForeignKey("market_partners.mp_id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    unit: Mapped[int] = mapped_column(SmallInteger, nullable=False)  # DLMS unit code: 30 Wh, 27 W, 35 V ...
    scaler: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)  # value x 10^scaler
    period_s: Mapped[int] = mapped_column(Integer, nullable=False, default=900)  # 0: point readings
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class MeterDay(TenantBase):
    """One version of one series' day. ``values[i]`` belongs to slot ``i`` of the local day
    (``domain.meterdata.days``); ``quality`` holds one ``Quality`` byte per slot; status words as the
    common one plus exceptions, notes only where present. Never updated: every change is a new
    version."""

    __tablename__ = "meter_days"
    __table_args__ = (
        PrimaryKeyConstraint("series_id", "day", "version", name="pk_meter_days"),
        CheckConstraint("layer IN (0, 1, 2)", name="layer"),
        {"postgresql_partition_by": "RANGE (day)"},
    )

    series_id: Mapped[int] = mapped_column(ForeignKey("meter_series.id"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    layer: Mapped[int] = mapped_column(SmallInteger, nullable=False)  # LAYERS
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False)
    values: Mapped[list[int | None]] = mapped_column(ARRAY(BigInteger), nullable=False)
    quality: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # Status words (DS Tab. 15.1): the day's most frequent one, and the slots whose word differs.
    status_common: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    status_slots: Mapped[list[int] | None] = mapped_column(ARRAY(SmallInteger), nullable=True)
    status_words: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger), nullable=True)
    notes: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)  # slot -> rule, method, reason
    source: Mapped[str] = mapped_column(String(120), nullable=False)  # delivery:<id> | vee:<run> | user:<name>
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)


class MeterReading(TenantBase):
    """A register reading at a point in time (TAF 1, 2, 6, 9; the closing and opening readings of a
    meter exchange or deinstallation), versioned like a day."""

    __tablename__ = "meter_readings"
    __table_args__ = (
        UniqueConstraint("series_id", "at", "version", name="uq_meter_readings_version"),
        CheckConstraint("layer IN (0, 1, 2)", name="layer"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("meter_series.id"), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    layer: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False)
    value: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    quality: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)  # docs/protocol.md 14.2 gg:reason
    meter_id: Mapped[str | None] = mapped_column(String(14), nullable=True)
    source: Mapped[str] = mapped_column(String(120), nullable=False)
    notes: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)


class MeterDelivery(TenantBase):
    """A delivery a gateway made, accepted or refused. A refused one keeps who, when and why, its
    size and hash, never its values. The SHA-256 of the opened payload makes redelivery idempotent."""

    __tablename__ = "meter_deliveries"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({_in(DELIVERY_OUTCOMES)})", name="outcome"),
        Index("ix_meter_deliveries_received", "received_at", "id"),
        Index("ix_meter_deliveries_gateway", "gateway_id", "received_at"),
        Index("uq_meter_deliveries_sha256", "sha256", unique=True,
              postgresql_where="outcome IN ('stored', 'conflict')"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False)
    gateway_id: Mapped[str | None] = mapped_column(String(14), nullable=True)  # unknown before the CMS is open
    recipient: Mapped[str] = mapped_column(String(13), nullable=False)
    delivery_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)  # x-CID
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    taf: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    profile_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str] = mapped_column(String(10), nullable=False)
    refusal: Mapped[str | None] = mapped_column(String(40), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    values_stored: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    first_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Values that differed from what was stored before: [{series, day, slot, stored, delivered}].
    conflicts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB, nullable=True)


class GridMeasurement(TenantBase):
    """TAF 10 grid state data: one value of one quantity (voltage, current, power per phase, ...) at
    one time, with the network segment of the gateway when it arrived (for the latest state per
    segment without a join through the topology)."""

    __tablename__ = "grid_measurements"
    __table_args__ = (
        PrimaryKeyConstraint("series_id", "at", name="pk_grid_measurements"),
        Index("ix_grid_measurements_segment", "segment", "at"),
        {"postgresql_partition_by": "RANGE (at)"},
    )

    series_id: Mapped[int] = mapped_column(ForeignKey("meter_series.id"), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    value: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    threshold: Mapped[bool] = mapped_column(nullable=False, default=False)  # sent because a threshold was crossed
    segment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    delivery_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
