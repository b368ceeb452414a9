"""What the MDM handed to whom (docs/mdm.md, "Export"): one row per export (an MSCONS interchange,
a CSV file, a webhook delivery) with its content kept for download, one row per (series, day or
reading, version) it carried, and the webhook receivers of the tenant's billing / EDM systems.

Exactly once per version: an item row names its recipient and channel, and a unique index over
(recipient, channel, series, day or reading, version) refuses a second claim of the same version,
whichever run, retry or concurrent export tries it. CSV downloads are not deliveries: they repeat
freely and stay out of that index."""

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
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Audited, TenantBase

EXPORT_KINDS = ("mscons", "csv", "webhook")
EXPORT_STATES = ("ready", "sent", "failed")
ITEM_KINDS = ("day", "reading")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class WebhookReceiver(Audited, TenantBase):
    """A billing or EDM system that gets a market partner's meter data by HTTP POST, signed with
    HMAC-SHA256 under its secret (stored encrypted, ``domain.secrets.SecretBox``, purpose
    ``webhook``). ``series_ids`` None: every series of the market partner."""

    __tablename__ = "webhook_receivers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    url: Mapped[str] = mapped_column(String(500), nullable=False)
    secret: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    market_partner: Mapped[str] = mapped_column(ForeignKey("market_partners.mp_id"), nullable=False)
    series_ids: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, server_default=text("true"))


class MeterExport(TenantBase):
    """One export: who sent what kind to whom for which period, its state, and its content."""

    __tablename__ = "meter_exports"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(EXPORT_KINDS)})", name="kind"),
        CheckConstraint(f"state IN ({_in(EXPORT_STATES)})", name="state"),
        Index("ix_meter_exports_recipient", "recipient", "created_at"),
        Index("ix_meter_exports_open", "kind", "recipient", "id", postgresql_where="state <> 'sent'"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Deterministic: "<workflow id>#<n>", so a retried step finds the export it recorded.
    key: Mapped[str] = mapped_column(String(240), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    sender: Mapped[str | None] = mapped_column(String(13), nullable=True)  # market partner of the data
    recipient: Mapped[str] = mapped_column(String(64), nullable=False)  # market partner ID, webhook:<name>, csv
    receiver_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_receivers.id"), nullable=True)
    first_day: Mapped[date] = mapped_column(Date, nullable=False)
    last_day: Mapped[date] = mapped_column(Date, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    state: Mapped[str] = mapped_column(String(10), nullable=False)
    interchange_ref: Mapped[str | None] = mapped_column(String(14), nullable=True)  # UNB DE0020
    messages: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    items: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    corrections: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # bytes of the content
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(60), nullable=True)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # "gzip": ``content`` is stored compressed (EDIFACT shrinks about tenfold; size and sha256 are of
    # the bytes as sent).
    content_encoding: Mapped[str | None] = mapped_column(String(10), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)  # of the last failed attempt, kept
    workflow_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # What was left out and why, e.g. {"held_back": {"missing_values": 3}}.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)


class MeterExportItem(TenantBase):
    """One (series, day or reading, version) an export carried. ``at`` is the reading's time, or
    the start of the day (UTC) for a day; ``corrects`` the version this recipient had before."""

    __tablename__ = "meter_export_items"
    __table_args__ = (
        PrimaryKeyConstraint("export_id", "item", "series_id", "at", "version", name="pk_meter_export_items"),
        CheckConstraint(f"item IN ({_in(ITEM_KINDS)})", name="item"),
        Index("uq_meter_export_items_once", "recipient", "kind", "item", "series_id", "at", "version", unique=True,
              postgresql_where="kind <> 'csv'"),
        Index("ix_meter_export_items_series", "series_id", "day"),
    )

    export_id: Mapped[int] = mapped_column(ForeignKey("meter_exports.id", ondelete="CASCADE"), nullable=False)
    recipient: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    item: Mapped[str] = mapped_column(String(7), nullable=False)
    series_id: Mapped[int] = mapped_column(ForeignKey("meter_series.id"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    corrects: Mapped[int | None] = mapped_column(Integer, nullable=True)
    document: Mapped[str | None] = mapped_column(String(35), nullable=True)  # BGM DE1004 of its message
