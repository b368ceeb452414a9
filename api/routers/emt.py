"""The EMTs' machine interface: on-demand readouts (TAF 6, TAF 9).

A readout request makes the GWA ask the gateway to deliver the EMT's evaluation profile now; the
gateway delivers the values to the EMT's meter data endpoint itself (docs/protocol.md 14) and the
request records which delivery it started. The values are read from the MDM
(``/api/v1/tenants/{tenant}/meter-data/metering-points/{melo}/readings``, reason ``on_demand``),
never from here. (The outbox of sealed readouts, ``GET .../emt/outbox``, is gone: the GWA no
longer receives readouts.)

Every route acts for the market partner bound to the caller's membership and sees only its own
data. A metering point the EMT has no current TAF order on is answered exactly like one that does
not exist (404), so the API tells an EMT nothing about metering points that are not its own.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from api.deps import EmtClient, StateDep, TenantAccess
from core.errors import Conflict, Forbidden, ServiceUnavailable
from domain.readouts import service as readouts
from domain.readouts.models import EmtReadoutRequest
from workflows.common import search_attributes
from workflows.emt_readout import EmtReadoutInput, EmtReadoutWorkflow, emt_readout_workflow_id

PREFIX = "/api/v1/tenants/{tenant}/emt"
router = APIRouter(prefix=PREFIX, tags=["emt"])
MAX_WAIT_S = 10.0
BERLIN = ZoneInfo("Europe/Berlin")  # the MDM's days are local German days


class ReadoutRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metering_point: str = Field(max_length=40, description="MeLo (Zählpunkt)")
    request_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$",
                                   description="your idempotency key: the same key returns the same readout")


class DeliveryOut(BaseModel):
    profile_id: str | None = Field(description="the evaluation profile the gateway delivers")
    taf: int | None
    reason: str | None = Field(description="gg:reason of the delivery: on_demand (TAF 6) or feed_in (TAF 9)")
    delivery_ref: str | None = Field(default=None, description="the delivery's x-CID, as your receiver logs it "
                                                               "(the MDM's delivery log: delivery_ref)")
    values_at: datetime | None = Field(default=None, description="time of the values delivered")
    readings_url: str = Field(description="where the values are read once your MDM has them (MDM API, readings "
                                          "of the metering point, reason on_demand / feed_in)")


class ErrorOut(BaseModel):
    code: str
    message: str | None


class ReadoutOut(BaseModel):
    id: str
    state: str  # running | succeeded | failed
    metering_point: str
    registers: list[str]
    created_at: datetime
    finished_at: datetime | None
    status_url: str
    delivery: DeliveryOut | None = Field(default=None, description="which delivery the gateway was asked for and, "
                                                                   "once it acknowledged, started")
    error: ErrorOut | None = None


def _emt(access: TenantAccess) -> str:
    if not access.market_partner_id:
        raise Forbidden("this membership is not bound to a market partner", code="no_market_partner")
    return access.market_partner_id


def _readings_url(tenant: str, req: EmtReadoutRequest) -> str:
    day = (req.values_at or req.created_at).astimezone(BERLIN).date().isoformat()
    obis = next((r for r in req.registers if ".8." in r), req.registers[0] if req.registers else "1-0:1.8.0")
    return f"/api/v1/tenants/{tenant}/meter-data/metering-points/{req.metering_point}/readings?from={day}&obis={obis}"


def _out(access: TenantAccess, req: EmtReadoutRequest) -> ReadoutOut:
    tenant = access.tenant.name
    delivery = None
    if req.profile_id is not None:
        delivery = DeliveryOut(profile_id=req.profile_id, taf=req.taf, reason=req.reason,
                               delivery_ref=req.delivery_ref, values_at=req.values_at,
                               readings_url=_readings_url(tenant, req))
    return ReadoutOut(
        id=req.id, state=req.state, metering_point=req.metering_point, registers=list(req.registers),
        created_at=req.created_at, finished_at=req.finished_at,
        status_url=f"/api/v1/tenants/{tenant}/emt/readouts/{req.id}", delivery=delivery,
        error=ErrorOut(code=req.error_type, message=req.error_message) if req.error_type else None)


async def _load(access: TenantAccess, emt: str, request_id: str) -> EmtReadoutRequest:
    async with access.transaction() as session:
        return await readouts.get_request(session, emt, request_id)


@router.post("/readouts", response_model=ReadoutOut, responses={202: {"model": ReadoutOut}})
async def request_readout(
    state: StateDep, access: EmtClient, body: ReadoutRequestIn, response: Response,
    wait_s: Annotated[float, Query(ge=0, le=MAX_WAIT_S, description="how long to wait for the gateway")] = 5.0,
) -> ReadoutOut:
    """Have the gateway deliver your TAF 6 (else TAF 9) profile of a metering point now. 200 once the
    gateway started the delivery (``delivery``: its x-CID and the time of the values; read them from
    ``delivery.readings_url`` once your MDM has them) or failed, within ``wait_s``; else 202 with
    ``status_url``. 404 for a metering point without a current TAF order of yours; 409
    ``no_on_demand_order`` without a TAF 6 or 9 order, ``profile_not_on_gateway`` before the
    gateway carries its profile."""
    emt = _emt(access)
    existing = None
    try:
        async with access.transaction() as session:
            if body.request_id:
                existing = await readouts.request_by_ref(session, emt, body.request_id)
            if existing is None:
                auth = await readouts.authorise(session, emt, body.metering_point)
                request_id = readouts.new_request_id()
                req = EmtReadoutRequest(id=request_id, emt=emt, client_ref=body.request_id,
                                        metering_point=auth.metering_point, gateway_id=auth.gateway_id,
                                        meter_id=auth.meter_id, registers=list(auth.registers), state="running",
                                        profile_id=auth.profile_id, taf=auth.taf, reason=auth.reason,
                                        workflow_id=emt_readout_workflow_id(auth.gateway_id, request_id))
                session.add(req)
    except IntegrityError:  # the same request_id raced in twice: the first one stands
        async with access.transaction() as session:
            existing = await readouts.request_by_ref(session, emt, body.request_id or "")
        if existing is None:
            raise
    if existing is not None:
        if existing.metering_point != body.metering_point.strip().upper():
            raise Conflict(f"request_id {body.request_id} was used for another metering point",
                           code="request_id_reused")
        return await _finish_or_accept(access, existing, None, response, 0)
    client = await access.temporal_client()
    try:
        handle: WorkflowHandle[Any, Any] = await client.start_workflow(
            EmtReadoutWorkflow.run,
            EmtReadoutInput(request_id=req.id, gateway_id=req.gateway_id, meter_id=req.meter_id, recipient=emt,
                            metering_point=req.metering_point, registers=list(req.registers),
                            profile_id=req.profile_id, reason=req.reason or "on_demand"),
            id=req.workflow_id, task_queue=state.settings.temporal_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=search_attributes("emt_readout", req.id, f"emt#{emt}", req.gateway_id))
    except RPCError as err:
        async with access.transaction() as session:
            await readouts.finish_request(session, req.id, error_type="temporal_unavailable",
                                          error_message=err.message)
        raise ServiceUnavailable(f"the readout could not be started: {err.message}",
                                 code="temporal_unavailable") from None
    return await _finish_or_accept(access, await _load(access, emt, req.id), handle, response, wait_s)


async def _finish_or_accept(access: TenantAccess, req: EmtReadoutRequest, handle: WorkflowHandle[Any, Any] | None,
                            response: Response, wait_s: float) -> ReadoutOut:
    if req.state == "running" and handle is not None and wait_s > 0:
        with suppress(TimeoutError):
            await asyncio.wait_for(handle.result(), timeout=wait_s)
        req = await _load(access, req.emt, req.id)
    if req.state == "running":
        response.status_code = status.HTTP_202_ACCEPTED
    return _out(access, req)


@router.get("/readouts/{request_id}", response_model=ReadoutOut)
async def readout_status(access: EmtClient, request_id: str) -> ReadoutOut:
    """The state of one of your readouts, with the delivery the gateway started."""
    return _out(access, await _load(access, _emt(access), request_id))
