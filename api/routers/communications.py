"""A gateway's communication history, the events it pushed, and where it is connected (head-end
state, docs/protocol.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from api.deps import TenantReader
from api.schemas import Page
from core.errors import InvalidInput
from core.ids import InvalidId, parse_device_id
from domain.communications import repository as repo

router = APIRouter(prefix="/api/v1/tenants/{tenant}/gateways/{gateway}", tags=["head-end"])

GatewayPath = Annotated[str, Path(description="DIN 43849 gateway ID, e.g. EDNT0116909060", max_length=14)]


def _gateway(value: str) -> str:
    try:
        return str(parse_device_id(value.strip().upper(), gateway=True))
    except InvalidId as err:
        raise InvalidInput(err.message, code="invalid_gateway_id") from None


class CommunicationOut(BaseModel):
    id: int
    at: datetime
    direction: str
    command: str
    method: str | None
    path: str | None
    correlation_id: str | None
    command_id: str | None
    status: int | None
    result: str
    duration_ms: int
    bytes_out: int
    bytes_in: int
    node_id: str


class EventOut(BaseModel):
    id: int
    event_id: str
    code: str
    vendor_code: str | None
    level: int
    occurred_at: datetime
    meter_id: str | None
    log: str | None
    record: int | None
    text: str
    received_at: datetime


class ConnectionOut(BaseModel):
    connected: bool
    node_id: str | None = None
    connected_at: datetime | None = None
    last_activity_at: datetime | None = None
    peer: str | None = None
    certificate_serial: str | None = None


@router.get("/communications", response_model=Page[CommunicationOut])
async def list_communications(
    access: TenantReader,
    gateway: GatewayPath,
    command: Annotated[str | None, Query(max_length=40)] = None,
    direction: Literal["in", "out"] | None = None,
    since: datetime | None = None,
    after: Annotated[int | None, Query(ge=0, description="`next_after` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[CommunicationOut]:
    """Every exchange with the gateway, newest first: time, direction, command, correlation ID
    (x-CID), command ID, HTTP status, result, duration and bytes."""
    stmt = repo.communications(_gateway(gateway), command=command, direction=direction, since=since,
                               before_id=after, limit=limit)
    async with access.transaction() as session:
        rows = (await session.scalars(stmt)).all()
    items = [CommunicationOut.model_validate(r, from_attributes=True) for r in rows]
    return Page(items=items, next_after=str(rows[-1].id) if len(rows) == limit else None)


@router.get("/events", response_model=Page[EventOut])
async def list_events(
    access: TenantReader,
    gateway: GatewayPath,
    code: Annotated[str | None, Query(max_length=40)] = None,
    after: Annotated[int | None, Query(ge=0, description="`next_after` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[EventOut]:
    """Alarms and events the gateway pushed, newest first."""
    stmt = repo.events(_gateway(gateway), code=code, before_id=after, limit=limit)
    async with access.transaction() as session:
        rows = (await session.scalars(stmt)).all()
    items = [EventOut.model_validate(r, from_attributes=True) for r in rows]
    return Page(items=items, next_after=str(rows[-1].id) if len(rows) == limit else None)


@router.get("/connection", response_model=ConnectionOut)
async def get_connection(access: TenantReader, gateway: GatewayPath) -> ConnectionOut:
    """Whether the gateway holds a management connection, to which head-end node, since when."""
    async with access.transaction() as session:
        row = await session.scalar(repo.connection(_gateway(gateway)))
    if row is None:
        return ConnectionOut(connected=False)
    return ConnectionOut(connected=True, node_id=row.node_id, connected_at=row.connected_at,
                         last_activity_at=row.last_activity_at, peer=row.peer,
                         certificate_serial=row.certificate_serial)
