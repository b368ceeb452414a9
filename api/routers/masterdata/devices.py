"""Gateways (with lifecycle, topology and history), meters and CLS modules."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.deps import MasterDataWriter, StateDep, TenantAccess, TenantReader
from api.routers.masterdata._common import (
    PREFIX,
    CountOut,
    ListParams,
    count_of,
    export_of,
    history_of,
    list_params,
    page_of,
)
from api.schemas import AuditEntryOut, Page
from domain.devices import service
from domain.devices.schemas import (
    ClsModuleCreate,
    ClsModuleOut,
    ClsModuleUpdate,
    GatewayCreate,
    GatewayOut,
    GatewayUpdate,
    MeterCreate,
    MeterOut,
    MeterUpdate,
    StateChange,
)
from domain.secrets import SecretBox
from domain.topology.schemas import AssignmentOut, GatewayTopology
from domain.topology.service import gateway_assignment_history, gateway_topology

router = APIRouter(prefix=PREFIX)
Params = Annotated[ListParams, Depends(list_params)]
Filter = Annotated[str | None, Query(max_length=4000)]
AsOf = Annotated[datetime | None, Query(description="default: now")]


def _box(state: StateDep, access: TenantAccess) -> SecretBox:
    return SecretBox(state.settings, access.tenant.name)


# -- gateways ---------------------------------------------------------------------------------

class InitialCertificateOut(BaseModel):
    sha256: str
    subject: str
    not_after: datetime


class GatewayDetail(BaseModel):
    gateway: GatewayOut
    topology: GatewayTopology
    assignments: list[AssignmentOut]
    history: list[AuditEntryOut]
    initial_certificates: list[InitialCertificateOut] = Field(description="as delivered by the manufacturer")
    links: dict[str, str] = Field(description="the gateway's operational certificates (PKI area), its change log")


@router.get("/gateways", response_model=Page[GatewayOut], tags=["gateways"])
async def list_gateways(access: TenantReader, params: Params) -> Page[GatewayOut]:
    return await page_of(access, "gateway", params, GatewayOut.of)


@router.get("/gateways/count", response_model=CountOut, tags=["gateways"])
async def count_gateways(access: TenantReader, filter: Filter = None, saved_filter: str | None = None,
                         as_of: AsOf = None) -> CountOut:
    return await count_of(access, "gateway", filter, saved_filter, as_of)


@router.get("/gateways/export", tags=["gateways"], response_class=StreamingResponse)
async def export_gateways(access: TenantReader, filter: Filter = None, saved_filter: str | None = None,
                          as_of: AsOf = None) -> StreamingResponse:
    """The matching gateways as CSV in the import format, streamed."""
    return await export_of(access, "gateway", filter, saved_filter, as_of, "gateways.csv")


@router.post("/gateways", response_model=GatewayOut, status_code=status.HTTP_201_CREATED, tags=["gateways"])
async def create_gateway(access: MasterDataWriter, body: GatewayCreate) -> GatewayOut:
    async with access.transaction() as session:
        return GatewayOut.of(await service.create_gateway(session, body))


@router.get("/gateways/{device_id}", response_model=GatewayDetail, tags=["gateways"])
async def get_gateway(access: TenantReader, device_id: str, as_of: AsOf = None) -> GatewayDetail:
    """The gateway, its topology as of ``as_of`` (default now), its assignment history and change log."""
    async with access.transaction() as session:
        gw = await service.get_gateway(session, device_id)
        topology = await gateway_topology(session, gw, as_of)
        assignments = await gateway_assignment_history(session, gw)
        initial = [InitialCertificateOut.model_validate(c, from_attributes=True)
                   for c in await service.initial_certificates(session, gw)]
        out = GatewayOut.of(gw)
    base = f"/api/v1/tenants/{access.tenant.name}"
    return GatewayDetail(gateway=out, topology=topology, assignments=assignments,
                         history=await history_of(access, "gateway", gw.device_id), initial_certificates=initial,
                         links={"certificates": f"{base}/certificates?owner=gateway&gateway={gw.device_id}",
                                "history": f"{base}/gateways/{gw.device_id}/history"})


@router.patch("/gateways/{device_id}", response_model=GatewayOut, tags=["gateways"])
async def update_gateway(access: MasterDataWriter, device_id: str, body: GatewayUpdate) -> GatewayOut:
    async with access.transaction() as session:
        return GatewayOut.of(await service.update_gateway(session, device_id, body))


@router.post("/gateways/{device_id}/state", response_model=GatewayOut, tags=["gateways"])
async def change_state(access: MasterDataWriter, device_id: str, body: StateChange) -> GatewayOut:
    """A lifecycle transition; 409 ``illegal_state_transition`` names the allowed next states."""
    async with access.transaction() as session:
        return GatewayOut.of(await service.transition_gateway(session, device_id, body.state, reason=body.reason))


@router.delete("/gateways/{device_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["gateways"])
async def delete_gateway(access: MasterDataWriter, device_id: str) -> None:
    async with access.transaction() as session:
        await service.delete_gateway(session, device_id)


@router.get("/gateways/{device_id}/history", response_model=list[AuditEntryOut], tags=["gateways"])
async def gateway_history(access: TenantReader, device_id: str) -> list[AuditEntryOut]:
    async with access.transaction() as session:
        gw = await service.get_gateway(session, device_id)
    return await history_of(access, "gateway", gw.device_id)


# -- meters -----------------------------------------------------------------------------------

@router.get("/meters", response_model=Page[MeterOut], tags=["meters"])
async def list_meters(access: TenantReader, params: Params) -> Page[MeterOut]:
    return await page_of(access, "meter", params, MeterOut.of)


@router.get("/meters/count", response_model=CountOut, tags=["meters"])
async def count_meters(access: TenantReader, filter: Filter = None, saved_filter: str | None = None,
                       as_of: AsOf = None) -> CountOut:
    return await count_of(access, "meter", filter, saved_filter, as_of)


@router.get("/meters/export", tags=["meters"], response_class=StreamingResponse)
async def export_meters(access: TenantReader, filter: Filter = None, saved_filter: str | None = None,
                        as_of: AsOf = None) -> StreamingResponse:
    """The matching meters as CSV (without MK0), streamed."""
    return await export_of(access, "meter", filter, saved_filter, as_of, "meters.csv")


@router.post("/meters", response_model=MeterOut, status_code=status.HTTP_201_CREATED, tags=["meters"])
async def create_meter(state: StateDep, access: MasterDataWriter, body: MeterCreate) -> MeterOut:
    async with access.transaction() as session:
        return MeterOut.of(await service.create_meter(session, _box(state, access), body))


@router.get("/meters/{device_id}", response_model=MeterOut, tags=["meters"])
async def get_meter(access: TenantReader, device_id: str) -> MeterOut:
    async with access.transaction() as session:
        return MeterOut.of(await service.get_meter(session, device_id))


@router.patch("/meters/{device_id}", response_model=MeterOut, tags=["meters"])
async def update_meter(state: StateDep, access: MasterDataWriter, device_id: str, body: MeterUpdate) -> MeterOut:
    async with access.transaction() as session:
        return MeterOut.of(await service.update_meter(session, _box(state, access), device_id, body))


@router.delete("/meters/{device_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["meters"])
async def delete_meter(access: MasterDataWriter, device_id: str) -> None:
    async with access.transaction() as session:
        await service.delete_meter(session, device_id)


@router.get("/meters/{device_id}/history", response_model=list[AuditEntryOut], tags=["meters"])
async def meter_history(access: TenantReader, device_id: str) -> list[AuditEntryOut]:
    async with access.transaction() as session:
        meter = await service.get_meter(session, device_id)
    return await history_of(access, "meter", meter.device_id)


# -- CLS modules ------------------------------------------------------------------------------

@router.get("/cls-modules", response_model=Page[ClsModuleOut], tags=["cls-modules"])
async def list_cls_modules(access: TenantReader, params: Params) -> Page[ClsModuleOut]:
    return await page_of(access, "cls_module", params, ClsModuleOut.of)


@router.get("/cls-modules/count", response_model=CountOut, tags=["cls-modules"])
async def count_cls_modules(access: TenantReader, filter: Filter = None, saved_filter: str | None = None,
                            as_of: AsOf = None) -> CountOut:
    return await count_of(access, "cls_module", filter, saved_filter, as_of)


@router.get("/cls-modules/export", tags=["cls-modules"], response_class=StreamingResponse)
async def export_cls_modules(access: TenantReader, filter: Filter = None, saved_filter: str | None = None,
                             as_of: AsOf = None) -> StreamingResponse:
    return await export_of(access, "cls_module", filter, saved_filter, as_of, "cls-modules.csv")


@router.post("/cls-modules", response_model=ClsModuleOut, status_code=status.HTTP_201_CREATED, tags=["cls-modules"])
async def create_cls_module(access: MasterDataWriter, body: ClsModuleCreate) -> ClsModuleOut:
    async with access.transaction() as session:
        return ClsModuleOut.of(await service.create_cls_module(session, body))


@router.get("/cls-modules/{device_id}", response_model=ClsModuleOut, tags=["cls-modules"])
async def get_cls_module(access: TenantReader, device_id: str) -> ClsModuleOut:
    async with access.transaction() as session:
        return ClsModuleOut.of(await service.get_cls_module(session, device_id))


@router.patch("/cls-modules/{device_id}", response_model=ClsModuleOut, tags=["cls-modules"])
async def update_cls_module(access: MasterDataWriter, device_id: str, body: ClsModuleUpdate) -> ClsModuleOut:
    async with access.transaction() as session:
        return ClsModuleOut.of(await service.update_cls_module(session, device_id, body))


@router.delete("/cls-modules/{device_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["cls-modules"])
async def delete_cls_module(access: MasterDataWriter, device_id: str) -> None:
    async with access.transaction() as session:
        await service.delete_cls_module(session, device_id)
