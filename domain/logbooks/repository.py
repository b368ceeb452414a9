"""Storing and querying logbook entries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.logbooks.models import LogEntry


async def last_record(session: AsyncSession, gateway_id: str, log: str) -> int | None:
    return await session.scalar(select(func.max(LogEntry.record)).where(LogEntry.gateway_id == gateway_id,
                                                                         LogEntry.log == log))


async def store(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert entries, ignoring ones already stored. Returns how many were new."""
    if not rows:
        return 0
    stmt = (insert(LogEntry).values(list(rows)).on_conflict_do_nothing(constraint="uq_gateway_log_entries_record")
            .returning(LogEntry.id))
    # RETURNING counts what was new (rowcount is not reported for this statement by the async driver).
    return len((await session.execute(stmt)).all())


def query(*, gateway_id: str | None = None, log: str | None = None, min_level: int | None = None,
          since: datetime | None = None, until: datetime | None = None, text: str | None = None,
          outcome: int | None = None, before_id: int | None = None, limit: int = 100) -> Select[LogEntry]:
    """Newest first, keyset by id."""
    stmt = select(LogEntry).order_by(LogEntry.id.desc()).limit(limit)
    if gateway_id:
        stmt = stmt.where(LogEntry.gateway_id == gateway_id)
    if log:
        stmt = stmt.where(LogEntry.log == log)
    if min_level:
        stmt = stmt.where(LogEntry.level >= min_level)
    if since:
        stmt = stmt.where(LogEntry.at >= since)
    if until:
        stmt = stmt.where(LogEntry.at < until)
    if outcome is not None:
        stmt = stmt.where(LogEntry.outcome == outcome)
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(LogEntry.text.ilike(f"%{escaped}%", escape="\\"))
    if before_id:
        stmt = stmt.where(LogEntry.id < before_id)
    return stmt
