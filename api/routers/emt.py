"""The EMTs' machine interface: on-demand readouts (TAF 6) and the outbox of sealed readouts.

Every route acts for the market partner bound to the caller's membership and sees only its own
data. A metering point the EMT has no current TAF order on is answered exactly like one that does
not exist (404), so the API tells an EMT nothing about metering points that are not its own.
"""

from __future__ import annotations

import asyncio
import base64
from contextlib import suppress
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from api.deps import EmtClient, StateDep, TenantAccess
from api.schemas import Page
from core.errors import Conflict, Forbidden, ServiceUnavailable
from domain.readouts import service as readouts
from domain.readouts.models import EmtReadoutRequest, ReadoutContainer
from workflows.common import search_attributes
from workflows.emt_readout import EmtReadoutInput, EmtReadoutWorkflow, emt_readout_workflow_id

PREFIX = "/api/v1/tenants/{tenant}/emt"
router = APIRouter(prefix=PREFIX, tags=["emt"])
MAX_WAIT_S = 10.0


class ReadoutRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metering_point: str = Field(max_length=40, description="MeLo (Zählpunkt)")
    request_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$",
                                   description="your idempotency key: the same key returns the same readout")


class ContainerOut(BaseModel):
    id: int
    metering_point: str | None
    reason: str
    sha256: str
    created_at: datetime
    fetched_at: datetime | None
    container: str | None = Field(default=None, description="CMS (DER, base64), signed by the gateway and "
                                                            "encrypted for you")


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
    readout: ContainerOut | None = None
    error: ErrorOut | None = None


def _emt(access: TenantAccess) -> str:
    if not access.market_partner_id:
        raise Forbidden("this membership is not bound to a market partner", code="no_market_partner")
    return access.market_partner_id


def _container(c: ReadoutContainer, with_body: bool) -> ContainerOut:
    return ContainerOut(id=c.id, metering_point=c.metering_point, reason=c.reason, sha256=c.sha256,
                        created_at=c.created_at, fetched_at=c.fetched_at,
                        container=base64.b64encode(c.container).decode() if with_body else None)


async def _out(access: TenantAccess, req: EmtReadoutRequest) -> ReadoutOut:
    body = None
    if req.container_id is not None:
        async with access.transaction() as session:
            found = await readouts.fetch_container(session, req.emt, req.container_id)
            body = _container(found, True)
    return ReadoutOut(
        id=req.id, state=req.state, metering_point=req.metering_point, registers=list(req.registers),
        created_at=req.created_at, finished_at=req.finished_at,
        status_url=f"/api/v1/tenants/{access.tenant.name}/emt/readouts/{req.id}", readout=body,
        error=ErrorOut(code=req.error_type, message=req.error_message) if req.error_type else None)


async def _load(access: TenantAccess, emt: str, request_id: str) -> EmtReadoutRequest:
    async with access.transaction() as session:
        return await readouts.get_request(session, emt, request_id)


@router.post("/readouts", response_model=ReadoutOut, responses={202: {"model": ReadoutOut}})
async def request_readout(
    state: StateDep, access: EmtClient, body: ReadoutRequestIn, response: Response,
    wait_s: Annotated[float, Query(ge=0, le=MAX_WAIT_S, description="how long to wait for the gateway")] = 5.0,
) -> ReadoutOut:
    """Read a metering point now (TAF 6). 200 with the sealed readout when the gateway answers within
    ``wait_s``, else 202 with ``status_url``. 404 for a metering point without a current TAF order of
    yours."""
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
                            metering_point=req.metering_point, registers=list(req.registers)),
            id=req.workflow_id, task_queue=state.settings.temporal_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=search_attributes("emt_readout", req.id, f"emt#{emt}", req.gateway_id))
    except RPCError as err:
        async with access.transaction() as session:
            await readouts.finish_request(session, req.id, container_id=None, error_type="temporal_unavailable",
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
    return await _out(access, req)


@router.get("/readouts/{request_id}", response_model=ReadoutOut)
async def readout_status(access: EmtClient, request_id: str) -> ReadoutOut:
    """The state of one of your readouts, with the sealed container once it arrived."""
    return await _out(access, await _load(access, _emt(access), request_id))


@router.get("/outbox", response_model=Page[ContainerOut])
async def outbox(
    access: EmtClient,
    after: Annotated[int, Query(ge=0, description="`next_after` of the previous page")] = 0,
    unfetched: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[ContainerOut]:
    """Readouts gateways sealed for you (first, final, meter exchange, on demand), oldest first,
    without their content: fetch each by id."""
    emt = _emt(access)
    async with access.transaction() as session:
        rows = (await session.scalars(readouts.outbox(emt, after=after, unfetched=unfetched, limit=limit))).all()
    items = [_container(r, False) for r in rows]
    return Page(items=items, next_after=str(items[-1].id) if len(items) == limit else None)


@router.get("/outbox/{container_id}", response_model=ContainerOut)
async def outbox_item(access: EmtClient, container_id: int) -> ContainerOut:
    """One sealed readout with its content; marks it fetched."""
    emt = _emt(access)
    async with access.transaction() as session:
        return _container(await readouts.fetch_container(session, emt, container_id), True)

