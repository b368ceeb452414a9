"""Storing sealed readouts for EMTs, handing them out, and the EMTs' on-demand readout requests.

Authorisation of an EMT is by its TAF orders only: an EMT may ask for a metering point while one of
its orders on it is in force. Anything else is indistinguishable from an unknown metering point.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, InvalidInput, NotFound
from domain import validators as v
from domain.base import rows_changed
from domain.devices.models import Gateway, Meter
from domain.locations.models import MeteringPoint
from domain.partners.models import MarketPartner
from domain.readouts.models import EmtReadoutRequest, ReadoutContainer
from domain.tariffs import repository as tariffs
from domain.tariffs.models import TafOrder
from domain.topology.models import MeterGateway, MeterMeteringPoint
from domain.topology.repository import valid_at
from domain.topology.service import db_now


class MeteringPointNotFound(NotFound):
    """Also what an EMT without a current order on the metering point gets (no hint it exists)."""

    code = "metering_point_not_found"


class ReadoutNotFound(NotFound):
    code = "readout_not_found"


class GatewayNotOperating(Conflict):
    code = "gateway_not_in_operation"


@dataclass(frozen=True)
class Container:
    recipient: str
    meter_id: str
    container_b64: str
    profile_id: str | None = None
    metering_point: str | None = None


async def store_containers(session: AsyncSession, gateway_id: str, reason: str, containers: list[Container], *,
                           workflow_id: str, process_id: str | None = None) -> list[int]:
    """Put sealed containers into the outbox once each (by hash); returns their outbox ids. A container
    named by its profile only (a final readout) gets the metering point of the profile's order."""
    melos = await tariffs.metering_points_of_profiles(
        session, [c.profile_id for c in containers if c.profile_id and not c.metering_point])
    ids: list[int] = []
    for c in containers:
        raw = base64.b64decode(c.container_b64)
        sha = hashlib.sha256(raw).hexdigest()
        await session.execute(insert(ReadoutContainer).values(
            recipient=c.recipient, gateway_id=gateway_id, meter_id=c.meter_id,
            metering_point=c.metering_point or melos.get(c.profile_id or ""),
            profile_id=c.profile_id, reason=reason, container=raw, sha256=sha, workflow_id=workflow_id,
            process_id=process_id).on_conflict_do_nothing(index_elements=["sha256"]))
        found = await session.scalar(select(ReadoutContainer.id).where(ReadoutContainer.sha256 == sha))
        assert found is not None
        ids.append(int(found))
    return ids


def outbox(recipient: str, *, after: int = 0, unfetched: bool = False, limit: int = 100) -> Select[ReadoutContainer]:
    stmt = select(ReadoutContainer).where(ReadoutContainer.recipient == recipient, ReadoutContainer.id > after)
    if unfetched:
        stmt = stmt.where(ReadoutContainer.fetched_at.is_(None))
    return stmt.order_by(ReadoutContainer.id).limit(limit)


async def fetch_container(session: AsyncSession, recipient: str, container_id: int) -> ReadoutContainer:
    row = await session.scalar(select(ReadoutContainer).where(ReadoutContainer.id == container_id,
                                                              ReadoutContainer.recipient == recipient))
    if row is None:
        raise ReadoutNotFound(f"readout {container_id} not found")
    if row.fetched_at is None:
        row.fetched_at = await db_now(session)
    return row


# -- on-demand readouts (TAF 6) ----------------------------------------------------------------

@dataclass(frozen=True)
class Authorised:
    metering_point: str
    meter_id: str
    gateway_id: str
    registers: tuple[str, ...]


async def authorise(session: AsyncSession, emt: str, metering_point: str, at: datetime | None = None) -> Authorised:
    """The gateway and meter an EMT may read for ``metering_point`` through a current order of its own.
    Registers: those of its TAF 6 order if it has one, else the energy registers of its orders."""
    try:
        melo = v.melo(metering_point)
    except InvalidInput:
        raise MeteringPointNotFound(f"metering point {metering_point!r} not found") from None
    at = at or await db_now(session)
    orders = (await session.execute(
        select(TafOrder).join(MeteringPoint, MeteringPoint.id == TafOrder.metering_point_id)
        .join(MarketPartner, MarketPartner.id == TafOrder.emt_id)
        .where(MeteringPoint.melo == melo, MarketPartner.mp_id == emt, tariffs.current(at)))).scalars().all()
    if not orders:
        raise MeteringPointNotFound(f"metering point {melo} not found")
    row = (await session.execute(
        select(Meter.device_id, Gateway.device_id, Gateway.state)
        .select_from(MeteringPoint)
        .join(MeterMeteringPoint, (MeterMeteringPoint.metering_point_id == MeteringPoint.id)
              & valid_at(MeterMeteringPoint, at))
        .join(Meter, Meter.id == MeterMeteringPoint.meter_id)
        .join(MeterGateway, (MeterGateway.meter_id == Meter.id) & valid_at(MeterGateway, at))
        .join(Gateway, Gateway.id == MeterGateway.gateway_id)
        .where(MeteringPoint.melo == melo))).first()
    if row is None:
        raise GatewayNotOperating(f"metering point {melo} has no meter behind a gateway at the moment")
    meter_id, gateway_id, state = row
    if state != "in_operation":
        raise GatewayNotOperating(f"the gateway of metering point {melo} is not in operation")
    taf6 = [o for o in orders if o.taf == 6]
    chosen = taf6 or orders
    registers = sorted({r for o in chosen for r in o.params.get("registers", []) if ".8." in r}) or ["1-0:1.8.0"]
    return Authorised(melo, meter_id, gateway_id, tuple(registers))


def new_request_id() -> str:
    return f"r-{secrets.token_hex(8)}"


async def request_by_ref(session: AsyncSession, emt: str, client_ref: str) -> EmtReadoutRequest | None:
    return await session.scalar(select(EmtReadoutRequest).where(EmtReadoutRequest.emt == emt,
                                                                EmtReadoutRequest.client_ref == client_ref))


async def get_request(session: AsyncSession, emt: str, request_id: str) -> EmtReadoutRequest:
    row = await session.scalar(select(EmtReadoutRequest).where(EmtReadoutRequest.id == request_id,
                                                               EmtReadoutRequest.emt == emt))
    if row is None:
        raise ReadoutNotFound(f"readout {request_id} not found")
    return row


async def finish_request(session: AsyncSession, request_id: str, *, container_id: int | None,
                         error_type: str | None = None, error_message: str | None = None) -> bool:
    """Record the outcome once (a retried activity finds it finished and changes nothing)."""
    return bool(await rows_changed(session, update(EmtReadoutRequest)
        .where(EmtReadoutRequest.id == request_id, EmtReadoutRequest.state == "running")
        .values(state="succeeded" if container_id else "failed", container_id=container_id, error_type=error_type,
                error_message=(error_message or "")[:2000] or None, finished_at=await db_now(session))))


async def container_of(session: AsyncSession, container_id: int) -> ReadoutContainer | None:
    return await session.get(ReadoutContainer, container_id)
