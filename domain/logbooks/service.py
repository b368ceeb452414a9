"""Storing the entries a process read from a gateway's logbook."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.logbooks import repository as repo


@dataclass(frozen=True)
class ReadEntry:
    """An entry as the gateway reported it."""

    record: int
    level: int  # 1 INFO, 2 WARNING, 3 ERROR, 4 FATAL
    outcome: int  # 0 success, 1 failure
    time: str  # ISO 8601, "Z" for UTC
    text: str


async def store_read_entries(session: AsyncSession, gateway_id: str, log: str, process_id: str,
                             entries: Sequence[ReadEntry]) -> int:
    """Store entries not stored yet (a re-read range stores nothing twice); returns how many were new.
    A level outside 1..4 is stored as the nearest one, a text cut at 4,000 characters."""
    rows: list[dict[str, Any]] = [{
        "gateway_id": gateway_id, "log": log, "record": e.record, "level": min(max(e.level, 1), 4),
        "outcome": 1 if e.outcome else 0, "at": dt.datetime.fromisoformat(e.time.replace("Z", "+00:00")),
        "text": e.text[:4000], "process_id": process_id,
    } for e in entries]
    return await repo.store(session, rows)
