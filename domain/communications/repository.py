"""Queries on the head-end's tenant tables: communication history, events, connection (for the API),
and events gridgate raises itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.communications.models import GatewayCommunication, GatewayConnection, GatewayEvent


def communications(gateway_id: str, *, command: str | None = None, direction: str | None = None,
                   since: datetime | None = None, before_id: int | None = None,
                   limit: int = 100) -> Select[GatewayCommunication]:
    """A gateway's exchanges, newest first, keyset-paginated by id."""
    stmt = select(GatewayCommunication).where(GatewayCommunication.gateway_id == gateway_id)
    if command:
        stmt = stmt.where(GatewayCommunication.command == command)
    if direction:
        stmt = stmt.where(GatewayCommunication.direction == direction)
    if since is not None:
        stmt = stmt.where(GatewayCommunication.at >= since)
    if before_id is not None:
        stmt = stmt.where(GatewayCommunication.id < before_id)
    return stmt.order_by(GatewayCommunication.id.desc()).limit(limit)


def events(gateway_id: str, *, code: str | None = None, before_id: int | None = None,
           limit: int = 100) -> Select[GatewayEvent]:
    stmt = select(GatewayEvent).where(GatewayEvent.gateway_id == gateway_id)
    if code:
        stmt = stmt.where(GatewayEvent.code == code)
    if before_id is not None:
        stmt = stmt.where(GatewayEvent.id < before_id)
    return stmt.order_by(GatewayEvent.id.desc()).limit(limit)


def connection(gateway_id: str) -> Select[GatewayConnection]:
    return select(GatewayConnection).where(GatewayConnection.gateway_id == gateway_id)


async def add_event(session: AsyncSession, *, event_id: str, gateway_id: str, code: str, level: int,
                    occurred_at: datetime, text: str, node_id: str) -> None:
    """Store an event once: a second one with the same ``event_id`` is ignored."""
    await session.execute(insert(GatewayEvent).values(
        event_id=event_id, gateway_id=gateway_id, code=code, level=level, occurred_at=occurred_at, text=text,
        node_id=node_id,
    ).on_conflict_do_nothing(index_elements=["event_id"]))
