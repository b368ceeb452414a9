"""Gateway logbook entries read out by the GWA, filterable by severity, time, text and gateway."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import TenantReader
from api.schemas import Page
from domain.logbooks import repository as repo
from domain.logbooks.models import LEVELS

router = APIRouter(prefix="/api/v1/tenants/{tenant}", tags=["logbooks"])


class LogEntryOut(BaseModel):
    id: int
    gateway_id: str
    log: str
    record: int
    level: int
    severity: str
    outcome: str
    at: datetime
    text: str
    read_at: datetime
    process_id: str | None


@router.get("/logbook", response_model=Page[LogEntryOut])
async def logbook(
    access: TenantReader,
    gateway: Annotated[str | None, Query(description="one gateway's entries")] = None,
    log: Literal["system", "calibration", "consumer"] | None = None,
    min_level: Annotated[int | None, Query(ge=1, le=4, description="1 info, 2 warning, 3 error, 4 fatal")] = None,
    outcome: Literal["success", "failure"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    text: Annotated[str | None, Query(max_length=200, description="case-insensitive substring")] = None,
    before: Annotated[int | None, Query(ge=1, description="`next_after` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[LogEntryOut]:
    """Newest first."""
    stmt = repo.query(gateway_id=gateway, log=log, min_level=min_level, since=since, until=until, text=text,
                      outcome=None if outcome is None else int(outcome == "failure"), before_id=before, limit=limit)
    async with access.transaction() as session:
        rows = (await session.scalars(stmt)).all()
    items = [LogEntryOut(id=r.id, gateway_id=r.gateway_id, log=r.log, record=r.record, level=r.level,
                         severity=LEVELS.get(r.level, str(r.level)), outcome="failure" if r.outcome else "success",
                         at=r.at, text=r.text, read_at=r.read_at, process_id=r.process_id) for r in rows]
    return Page(items=items, next_after=str(items[-1].id) if len(items) == limit else None)
