"""The EMTs' on-demand readout requests: who may ask, which evaluation profile the gateway is to
deliver, and what became of a request.

The values never pass through here: the gateway delivers them to the EMT's meter data endpoint
itself (docs/protocol.md 14) and the EMT reads them from its MDM (``/meter-data/...``). A request
records the delivery the gateway acknowledged (profile, reason, x-CID, time of the values).

Authorisation of an EMT is by its TAF orders only: an EMT may ask for a metering point while one of
its orders on it is in force. Anything else is indistinguishable from an unknown metering point.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, InvalidInput, NotFound
from domain import validators as v
from domain.base import rows_changed
from domain.devices.models import Gateway, Meter
from domain.locations.models import MeteringPoint
from domain.partners.models import MarketPartner
from domain.readouts.models import EmtReadoutRequest
from domain.tariffs import repository as tariffs
from domain.tariffs.models import TafOrder
from domain.tariffs.service import evaluation_profile_id
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


class NoOnDemandOrder(Conflict):
    """The EMT has orders on the metering point, but none that the gateway delivers on request."""

    code = "no_on_demand_order"


class ProfileNotOnGateway(Conflict):
    code = "profile_not_on_gateway"


# -- on-demand readouts (TAF 6, TAF 9) ----------------------------------------------------------

# TAFs whose profile an EMT may have delivered on request, and the gg:reason of that delivery
ON_REQUEST = {6: "on_demand", 9: "feed_in"}


@dataclass(frozen=True)
class Authorised:
    metering_point: str
    meter_id: str
    gateway_id: str
    registers: tuple[str, ...]
    profile_id: str  # the evaluation profile the gateway delivers (the EMT's TAF 6, else TAF 9 order)
    taf: int
    reason: str  # gg:reason of the delivery: on_demand (TAF 6) | feed_in (TAF 9)


async def authorise(session: AsyncSession, emt: str, metering_point: str, at: datetime | None = None) -> Authorised:
    """The gateway, meter and evaluation profile an EMT may have delivered for ``metering_point``
    now: the profile of its TAF 6 order (else its TAF 9 order) on the meter, active on the gateway.

    No current order of the EMT on the metering point (or no such metering point): 404
    ``metering_point_not_found``. Orders, but none of TAF 6 or 9: ``no_on_demand_order``; the
    order's profile not (yet) on the gateway: ``profile_not_on_gateway``."""
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
        select(Meter.device_id, Gateway.id, Gateway.device_id, Gateway.state)
        .select_from(MeteringPoint)
        .join(MeterMeteringPoint, (MeterMeteringPoint.metering_point_id == MeteringPoint.id)
              & valid_at(MeterMeteringPoint, at))
        .join(Meter, Meter.id == MeterMeteringPoint.meter_id)
        .join(MeterGateway, (MeterGateway.meter_id == Meter.id) & valid_at(MeterGateway, at))
        .join(Gateway, Gateway.id == MeterGateway.gateway_id)
        .where(MeteringPoint.melo == melo))).first()
    if row is None:
        raise GatewayNotOperating(f"metering point {melo} has no meter behind a gateway at the moment")
    meter_id, gateway_pk, gateway_id, state = row
    if state != "in_operation":
        raise GatewayNotOperating(f"the gateway of metering point {melo} is not in operation")
    order = next((o for taf in ON_REQUEST for o in sorted(orders, key=lambda o: o.id) if o.taf == taf), None)
    if order is None:
        raise NoOnDemandOrder(f"none of your orders on metering point {melo} is of TAF 6 (on-demand readout) "
                              "or TAF 9 (actual feed-in)")
    profile_id = evaluation_profile_id(order, meter_id)
    if profile_id not in {p.profile_id for p in await tariffs.active_profiles(session, gateway_pk)
                          if p.kind == "evaluation"}:
        raise ProfileNotOnGateway(f"the gateway does not carry the TAF {order.taf} profile {profile_id} of your "
                                  f"order {order.id} yet (a profile rollout writes it)")
    registers = sorted(r for r in order.params.get("registers", [])) or ["1-0:1.8.0"]
    return Authorised(melo, meter_id, gateway_id, tuple(registers), profile_id, order.taf, ON_REQUEST[order.taf])


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


@dataclass(frozen=True)
class Acknowledged:
    """The delivery the gateway started for a request (docs/protocol.md 10.9)."""

    profile_id: str
    taf: int
    reason: str
    delivery_ref: str  # x-CID of the delivery
    values_at: datetime


async def finish_request(session: AsyncSession, request_id: str, *, delivery: Acknowledged | None = None,
                         container_id: int | None = None, error_type: str | None = None,
                         error_message: str | None = None) -> bool:
    """Record the outcome once (a retried activity finds it finished and changes nothing):
    succeeded with the delivery the gateway started (``container_id``: a request finished before
    the change, its container in the former outbox), or failed with the error."""
    values: dict[str, object] = {}
    if delivery is not None:
        values = {"profile_id": delivery.profile_id, "taf": delivery.taf, "reason": delivery.reason,
                  "delivery_ref": delivery.delivery_ref, "values_at": delivery.values_at}
    done = delivery is not None or container_id is not None
    return bool(await rows_changed(session, update(EmtReadoutRequest)
        .where(EmtReadoutRequest.id == request_id, EmtReadoutRequest.state == "running")
        .values(state="succeeded" if done else "failed", container_id=container_id, error_type=error_type,
                error_message=(error_message or "")[:2000] or None, finished_at=await db_now(session), **values)))
