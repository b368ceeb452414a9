"""TAF orders of the EMTs per metering point, and the profile history of each gateway."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from api.deps import MasterDataWriter, TenantReader
from api.schemas import Page
from domain.devices.service import get_gateway
from domain.tariffs import repository as repo
from domain.tariffs import service
from domain.tariffs.schemas import (
    GatewayProfileOut,
    TafOrderCreate,
    TafOrderOut,
    TafOrderTerminate,
    TafOrderUpdate,
)

PREFIX = "/api/v1/tenants/{tenant}"
router = APIRouter(prefix=PREFIX)


@router.post("/taf-orders", response_model=TafOrderOut, status_code=status.HTTP_201_CREATED, tags=["tariffs"])
async def create_order(access: MasterDataWriter, body: TafOrderCreate) -> TafOrderOut:
    """Order a TAF for a metering point. An active order of the same TAF on the metering point is
    terminated (``terminated_order``): with another EMT this is an EMT change. The gateway follows
    with the next ``profile_rollout`` of ``gateway``."""
    async with access.transaction() as session:
        order, replaced = await service.create_order(session, body)
        return await service.order_out(session, order.id, replaced)


@router.get("/taf-orders", response_model=Page[TafOrderOut], tags=["tariffs"])
async def list_orders(
    access: TenantReader,
    metering_point: str | None = None,
    emt: Annotated[str | None, Query(description="market partner ID")] = None,
    taf: int | None = None,
    status_: Annotated[Literal["active", "terminated"] | None, Query(alias="status")] = None,
    gateway: Annotated[str | None, Query(description="orders served by this gateway now")] = None,
    after: Annotated[int | None, Query(description="`next_after` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[TafOrderOut]:
    """Newest first."""
    async with access.transaction() as session:
        items = await service.list_orders(session, metering_point=metering_point, emt=emt, taf=taf, status=status_,
                                          gateway=gateway, after=after, limit=limit)
    return Page(items=items, next_after=str(items[-1].id) if len(items) == limit else None)


@router.get("/taf-orders/{order_id}", response_model=TafOrderOut, tags=["tariffs"])
async def get_order(access: TenantReader, order_id: int) -> TafOrderOut:
    async with access.transaction() as session:
        return await service.order_out(session, order_id)


@router.patch("/taf-orders/{order_id}", response_model=TafOrderOut, tags=["tariffs"])
async def update_order(access: MasterDataWriter, order_id: int, body: TafOrderUpdate) -> TafOrderOut:
    """Change parameters (validated for the order's TAF), end date or reference of an active order."""
    async with access.transaction() as session:
        await service.update_order(session, order_id, body)
        return await service.order_out(session, order_id)


@router.post("/taf-orders/{order_id}/terminate", response_model=TafOrderOut, tags=["tariffs"])
async def terminate_order(access: MasterDataWriter, order_id: int, body: TafOrderTerminate | None = None
                          ) -> TafOrderOut:
    """End the order (kept as history); its evaluation profile is deleted by the next rollout."""
    async with access.transaction() as session:
        await service.terminate_order(session, order_id, (body or TafOrderTerminate()).reason)
        return await service.order_out(session, order_id)


@router.delete("/taf-orders/{order_id}", response_model=TafOrderOut, tags=["tariffs"])
async def delete_order(access: MasterDataWriter, order_id: int) -> TafOrderOut:
    """The same as terminate: orders are never erased, they end."""
    async with access.transaction() as session:
        await service.terminate_order(session, order_id, "deleted by operator")
        return await service.order_out(session, order_id)


@router.get("/gateways/{gateway}/profiles", response_model=Page[GatewayProfileOut], tags=["tariffs"])
async def profile_history(
    access: TenantReader, gateway: str,
    status_: Annotated[Literal["active", "superseded", "terminated"] | None, Query(alias="status")] = None,
    kind: Annotated[Literal["meter", "communication", "evaluation"] | None, Query()] = None,
    after: Annotated[int | None, Query(description="`next_after` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[GatewayProfileOut]:
    """The profiles gridgate applied to the gateway with their validity, newest first."""
    async with access.transaction() as session:
        gw = await get_gateway(session, gateway)
        rows = (await session.scalars(repo.profile_history(gw.id, status=status_, kind=kind, after=after,
                                                           limit=limit))).all()
    items = [GatewayProfileOut.model_validate(r, from_attributes=True) for r in rows]
    return Page(items=items, next_after=str(items[-1].id) if len(items) == limit else None)
