"""Assignments with validity periods, saved filters, imports."""

from __future__ import annotations

import tempfile
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, Field

from api.deps import MasterDataWriter, StateDep, TenantReader
from api.routers.masterdata._common import PREFIX, CountOut
from core.errors import InvalidInput
from domain.filters import count as count_matching
from domain.filters import service as filters
from domain.filters.repository import list_all
from domain.imports.service import ImportResult, run_import
from domain.records import StrictIn
from domain.secrets import SecretBox
from domain.topology import service as topology
from domain.topology.schemas import AssignmentCreate, AssignmentEnd, AssignmentOut

router = APIRouter(prefix=PREFIX)
MAX_UPLOAD = 2 * 1024 * 1024 * 1024


# -- assignments ------------------------------------------------------------------------------

@router.get("/assignments/{kind}", response_model=list[AssignmentOut], tags=["assignments"])
async def list_assignments(
    access: TenantReader, kind: str,
    subject: str | None = None, target: str | None = None,
    as_of: Annotated[datetime | None, Query(description="only assignments valid then; omitted: full history")] = None,
    after: Annotated[int | None, Query(description="id of the last assignment of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AssignmentOut]:
    """Kinds: gateway-connection-point, meter-gateway, meter-metering-point, metering-point-market-location,
    cls-module-gateway. Newest first."""
    async with access.transaction() as session:
        return await topology.list_assignments(session, kind, subject=subject, target=target, at=as_of, after=after,
                                               limit=limit)


@router.post("/assignments/{kind}", response_model=AssignmentOut, status_code=status.HTTP_201_CREATED,
             tags=["assignments"])
async def create_assignment(access: MasterDataWriter, kind: str, body: AssignmentCreate) -> AssignmentOut:
    """409 ``assignment_overlap`` when the period overlaps an assignment of the same device."""
    async with access.transaction() as session:
        return await topology.assign(session, kind, body.subject, body.target, valid_from=body.valid_from,
                                     valid_to=body.valid_to)


@router.post("/assignments/{kind}/{assignment_id}/end", response_model=AssignmentOut, tags=["assignments"])
async def end_assignment(access: MasterDataWriter, kind: str, assignment_id: int, body: AssignmentEnd
                         ) -> AssignmentOut:
    async with access.transaction() as session:
        return await topology.end_assignment(session, kind, assignment_id, valid_to=body.valid_to)


# -- saved filters ----------------------------------------------------------------------------

class FilterIn(StrictIn):
    entity: str = Field(default="gateway", description="gateway, meter, cls_module, connection_point, ...")
    expression: str = Field(max_length=4000)
    description: str = Field(default="", max_length=2000)


class FilterOut(BaseModel):
    name: str
    entity: str
    expression: str
    description: str
    created_by: str
    updated_at: datetime


class FilterCheck(StrictIn):
    entity: str = "gateway"
    expression: str = Field(max_length=4000)


@router.get("/filters", response_model=list[FilterOut], tags=["filters"])
async def list_filters(access: TenantReader, entity: str | None = None) -> list[FilterOut]:
    async with access.transaction() as session:
        return [FilterOut.model_validate(f, from_attributes=True) for f in await list_all(session, entity)]


@router.post("/filters/check", response_model=CountOut, tags=["filters"])
async def check_filter(access: TenantReader, body: FilterCheck) -> CountOut:
    """Validate a filter and count what it selects now, before saving or running anything."""
    async with access.transaction() as session:
        return CountOut(count=await count_matching(session, body.entity, body.expression))


@router.get("/filters/{name}", response_model=FilterOut, tags=["filters"])
async def get_filter(access: TenantReader, name: str) -> FilterOut:
    async with access.transaction() as session:
        return FilterOut.model_validate(await filters.get(session, name), from_attributes=True)


@router.put("/filters/{name}", response_model=FilterOut, tags=["filters"])
async def save_filter(access: MasterDataWriter, name: str, body: FilterIn) -> FilterOut:
    async with access.transaction() as session:
        saved, _ = await filters.save(session, name, body.entity, body.expression, body.description)
        return FilterOut.model_validate(saved, from_attributes=True)


@router.delete("/filters/{name}", status_code=status.HTTP_204_NO_CONTENT, tags=["filters"])
async def delete_filter(access: MasterDataWriter, name: str) -> None:
    async with access.transaction() as session:
        await filters.delete(session, name)


# -- imports ----------------------------------------------------------------------------------

class ImportOut(BaseModel):
    kind: str
    file_name: str
    sha256: str
    rows: int
    created: int
    updated: int
    unchanged: int
    dry_run: bool
    seconds: float
    import_id: int | None


@router.post("/imports/{kind}", response_model=ImportOut, tags=["imports"], openapi_extra={
    "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}})
async def import_file(
    state: StateDep, access: MasterDataWriter, kind: str, request: Request,
    dry_run: Annotated[bool, Query(description="validate and count, store nothing")] = False,
    source_system: Annotated[str | None, Query(description="the rows mirror this external system", max_length=100)]
    = None,
    file_name: Annotated[str, Query(max_length=500)] = "upload.csv",
) -> ImportOut:
    """Import a CSV file sent as the request body (``Content-Type: text/csv``) or as the form field
    ``file`` of a multipart upload. All or nothing: 400 ``import_rejected`` lists every error by
    line and column. Kinds: gateways, meters, cls-modules, connection-points, metering-points,
    market-locations, assignments, delivery."""
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            upload: Any = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidInput("multipart upload needs a file field named 'file'", code="missing_file")
            file_name = upload.filename or file_name
            while chunk := await upload.read(1024 * 1024):
                spool.write(chunk)
        else:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise InvalidInput("the file is larger than 2 GiB", code="file_too_large")
                spool.write(chunk)
        spool.seek(0)
        async with access.transaction() as session:
            result: ImportResult = await run_import(
                session, kind, spool, file_name=file_name, source_system=source_system, dry_run=dry_run,
                box=SecretBox(state.settings, access.tenant.name))
    return ImportOut.model_validate(result, from_attributes=True)
