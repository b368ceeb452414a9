"""What every master data list shares: filter/sort/page parameters, count and CSV export."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.deps import TenantAccess
from api.schemas import AuditEntryOut, Page
from domain import listing
from domain.audit.repository import history
from domain.filters import count as count_matching
from domain.filters import resolve
from domain.imports.export import export_csv

PREFIX = "/api/v1/tenants/{tenant}"


@dataclass
class ListParams:
    filter: str | None
    saved_filter: str | None
    sort: str | None
    after: str | None
    limit: int
    as_of: datetime | None


def list_params(
    filter: Annotated[str | None, Query(description="filter expression, e.g. state = in_operation and "
                                                    "firmware < 2.1 (see docs/masterdata.md)", max_length=4000)] = None,
    saved_filter: Annotated[str | None, Query(description="name of a saved filter (combined with `filter` by and)")]
    = None,
    sort: Annotated[str | None, Query(description="sort field, '-' for descending, e.g. -updated_at")] = None,
    after: Annotated[str | None, Query(description="next_after of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    as_of: Annotated[datetime | None, Query(description="evaluate assignment fields as of this moment")] = None,
) -> ListParams:
    return ListParams(filter, saved_filter, sort, after, limit, as_of)


class CountOut(BaseModel):
    count: int


async def page_of(access: TenantAccess, entity: str, params: ListParams, out: Callable[[Any], Any]) -> Page[Any]:
    async with access.transaction() as session:
        items, next_after = await listing.page(session, entity, filter=params.filter, saved=params.saved_filter,
                                               sort=params.sort, after=params.after, limit=params.limit,
                                               at=params.as_of)
        return Page(items=[out(i) for i in items], next_after=next_after)


async def count_of(access: TenantAccess, entity: str, filter: str | None, saved: str | None,
                   as_of: datetime | None) -> CountOut:
    async with access.transaction() as session:
        return CountOut(count=await count_matching(session, entity, filter, saved=saved, at=as_of))


async def export_of(access: TenantAccess, entity: str, filter: str | None, saved: str | None,
                    as_of: datetime | None, filename: str) -> StreamingResponse:
    # Compile before streaming starts, so a bad filter is a 400 and not a broken download.
    async with access.transaction() as session:
        await resolve(session, entity, filter, saved=saved, at=as_of)

    async def body() -> AsyncIterator[bytes]:
        async with access.transaction() as session:
            async for chunk in export_csv(session, entity, filter, saved=saved, at=as_of):
                yield chunk.encode()

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def history_of(access: TenantAccess, object_type: str, object_id: str, limit: int = 100) -> list[AuditEntryOut]:
    async with access.transaction() as session:
        rows = await history(session, object_type=object_type, object_id=object_id, limit=limit)
    return [AuditEntryOut.model_validate(r, from_attributes=True) for r in rows]
