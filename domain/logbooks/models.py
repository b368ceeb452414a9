"""One row per logbook entry of a gateway; (gateway, log, record) is unique, so re-reading a range
stores nothing twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import TenantBase

LOGS = ("system", "calibration", "consumer")
LEVELS = {1: "info", 2: "warning", 3: "error", 4: "fatal"}


class LogEntry(TenantBase):
    __tablename__ = "gateway_log_entries"
    __table_args__ = (
        UniqueConstraint("gateway_id", "log", "record", name="uq_gateway_log_entries_record"),
        CheckConstraint("log IN ('system', 'calibration', 'consumer')", name="log"),
        CheckConstraint("level BETWEEN 1 AND 4", name="level"),
        Index("ix_gateway_log_entries_at", "at"),
        Index("ix_gateway_log_entries_level_at", "level", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(14), nullable=False)
    log: Mapped[str] = mapped_column(String(12), nullable=False)
    record: Mapped[int] = mapped_column(BigInteger, nullable=False)
    level: Mapped[int] = mapped_column(Integer, nullable=False)  # 1 INFO, 2 WARNING, 3 ERROR, 4 FATAL
    outcome: Mapped[int] = mapped_column(Integer, nullable=False)  # 0 success, 1 failure
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    process_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
