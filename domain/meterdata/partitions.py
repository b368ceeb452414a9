"""Monthly range partitions of the large meter data tables: created ahead (the ingest path makes
sure the months it writes exist; a daily maintenance run creates the next months) and dropped
whole when they fall out of the retention period, which is cheaper than deleting rows."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

PARTITIONED = {"meter_days": "date", "grid_measurements": "timestamptz"}
NAME_RE = re.compile(r"^(meter_days|grid_measurements)_p(\d{4})(\d{2})$")


def is_partition(table: str) -> bool:
    return NAME_RE.match(table) is not None


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def partition_name(table: str, month: dt.date) -> str:
    return f"{table}_p{month:%Y%m}"


def _bound(table: str, month: dt.date) -> str:
    # Timestamp partitions are bounded by UTC midnights: a German day that starts at 22:00 or 23:00
    # UTC of the previous day still falls into one partition per row (rows are keyed by instants).
    return f"{month:%Y-%m-%d}" if PARTITIONED[table] == "date" else f"{month:%Y-%m-%d} 00:00:00+00"


async def existing(session: AsyncSession, table: str) -> set[dt.date]:
    rows = await session.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t"), {"t": table})
    months = set()
    for (name,) in rows:
        m = NAME_RE.match(name)
        if m:
            months.add(dt.date(int(m.group(2)), int(m.group(3)), 1))
    return months


# Months known to exist, per database and table: the ingest asks on every batch, and a partition
# once created stays until retention drops it (drop_before forgets it here). A session that created
# partitions itself does not fill the cache: its transaction may still roll back.
_CREATED = "gridgate_partitions_created"
_known: dict[tuple[str, str], set[dt.date]] = {}


def _cache_key(session: AsyncSession, table: str) -> tuple[str, str]:
    bind = session.bind
    engine = bind if isinstance(bind, AsyncEngine) else bind.engine if bind is not None else None
    return (str(engine.url.database) if engine is not None else "", table)


async def ensure(session: AsyncSession, table: str, first: dt.date, last: dt.date) -> list[str]:
    """Create the monthly partitions of ``table`` covering ``first`` to ``last`` that do not exist.
    Concurrent callers are serialised by a transaction-level advisory lock per table."""
    wanted = []
    month = month_of(first)
    while month <= last:
        wanted.append(month)
        month = next_month(month)
    known = _known.setdefault(_cache_key(session, table), set())
    if all(m in known for m in wanted):
        return []
    have = await existing(session, table)
    if not session.info.get(_CREATED):
        known |= have
    missing = [m for m in wanted if m not in have]
    if not missing:
        return []
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": f"partitions:{table}"})
    have = await existing(session, table)
    created = []
    for m in missing:
        if m in have:
            continue
        name = partition_name(table, m)
        await session.execute(text(
            f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{table}" '
            f"FOR VALUES FROM ('{_bound(table, m)}') TO ('{_bound(table, next_month(m))}')"))
        created.append(name)
    session.info[_CREATED] = True
    return created


async def drop_before(session: AsyncSession, table: str, month: dt.date) -> list[str]:
    """Drop the partitions of ``table`` for months before ``month`` (retention)."""
    dropped = []
    for m in sorted(await existing(session, table)):
        if m < month_of(month):
            name = partition_name(table, m)
            await session.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
            dropped.append(name)
            _known.get(_cache_key(session, table), set()).discard(m)
    return dropped
