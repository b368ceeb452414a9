"""Events gridgate itself raises about a gateway (beside the ones gateways push through the head-end)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from domain.communications import repository as repo

NODE = "gridgate"  # node_id of events no head-end node received


async def raise_gateway_event(session: AsyncSession, *, event_id: str, gateway_id: str, code: str, level: int,
                              text: str, details: Mapping[str, str]) -> None:
    """Store the event once per ``event_id`` (a retried step raises it once); ``details`` are
    appended to the text as ``key=value``."""
    full = text + ("" if not details else " " + ", ".join(f"{k}={v}" for k, v in details.items()))
    await repo.add_event(session, event_id=event_id[:64], gateway_id=gateway_id, code=code, level=level,
                         occurred_at=dt.datetime.now(dt.UTC), text=full, node_id=NODE)
