"""Checks of process parameters against master data, for a refusal (4xx) before a process starts.

The process framework validates parameters statically (``domain.processes.types``); what needs the
database is here, one async function per process type, called with the start's session, the
condition selecting the target gateways and the cleaned parameters. Each raises an
``InvalidInput``/``Conflict`` with a reason code; the same checks run again inside the workflows,
so a process started without them still fails cleanly per gateway.

To wire (``domain/processes/service.start``, after the lifecycle check)::

    check = PRECHECKS.get(ptype.name)
    if check is not None:
        await check(session, cond, clean)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, InvalidInput
from domain.devices import repository as devices
from domain.tariffs.service import check_orders_exist
from domain.topology.repository import gateway_of_meter

Precheck = Callable[[AsyncSession, ColumnElement[bool], dict[str, Any]], Awaitable[None]]


async def profile_rollout(session: AsyncSession, cond: ColumnElement[bool], params: dict[str, Any]) -> None:
    ids = sorted(set(params.get("taf_order_ids") or []))
    if not ids:
        return
    await check_orders_exist(session, ids)


async def meter_pairing(session: AsyncSession, cond: ColumnElement[bool], params: dict[str, Any]) -> None:
    wanted = list(params.get("meter_ids") or [])
    if not wanted:
        return
    meters = await devices.meters_by_device_id(session, wanted)
    unknown = [m for m in wanted if m not in meters]
    if unknown:
        raise InvalidInput(f"unknown meter(s): {', '.join(unknown)}", code="unknown_meters")
    keyless = [m for m in wanted if meters[m].mk0_ciphertext is None]
    if keyless:
        raise InvalidInput(f"meter(s) {', '.join(keyless)} have no MK0 for pairing", code="no_meter_key")


async def meter_exchange(session: AsyncSession, cond: ColumnElement[bool], params: dict[str, Any]) -> None:
    at = datetime.fromisoformat(params["exchanged_at"]) if params.get("exchanged_at") else datetime.now(UTC)
    if at > datetime.now(UTC):
        raise InvalidInput("exchanged_at lies in the future", code="invalid_params")
    gateways = await devices.first_gateways(session, cond, 2)
    if len(gateways) != 1:
        return  # the framework refuses a target that is not exactly one gateway
    gw_pk, gw_id = gateways[0]
    old_id, new_id = params["old_meter_id"], params["new_meter_id"]
    meters = await devices.meters_by_device_id(session, [old_id, new_id])
    unknown = [m for m in (old_id, new_id) if m not in meters]
    if unknown:
        raise InvalidInput(f"unknown meter(s): {', '.join(unknown)}", code="unknown_meters")
    if meters[new_id].mk0_ciphertext is None:
        raise InvalidInput(f"meter {new_id} has no MK0 for pairing", code="no_meter_key")
    if await gateway_of_meter(session, meters[old_id].id, at) != gw_pk:
        raise Conflict(f"meter {old_id} is not on gateway {gw_id} at {at.isoformat()}", code="meter_not_assigned")
    if await gateway_of_meter(session, meters[new_id].id, at) is not None:
        raise Conflict(f"meter {new_id} is already on a gateway at {at.isoformat()}", code="meter_assigned_elsewhere")


PRECHECKS: dict[str, Precheck] = {
    "profile_rollout": profile_rollout,
    "meter_pairing": meter_pairing,
    "meter_exchange": meter_exchange,
}
