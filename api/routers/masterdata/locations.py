"""Connection points, metering points (MeLo) and market locations (MaLo)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.deps import MasterDataWriter, TenantReader
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
from domain.locations import service
from domain.locations.models import ConnectionPoint, MarketLocation, MeteringPoint
from domain.locations.schemas import (
    ConnectionPointCreate,
    ConnectionPointOut,
    ConnectionPointUpdate,
    MarketLocationCreate,
    MarketLocationOut,
    MarketLocationUpdate,
    MeteringPointCreate,
    MeteringPointOut,
    MeteringPointUpdate,
)

router = APIRouter(prefix=PREFIX)
S = TypeVar("S", bound=BaseModel)
Params = Annotated[ListParams, Depends(list_params)]
Filter = Annotated[str | None, Query(max_length=4000)]
AsOf = Annotated[datetime | None, Query(description="default: now")]


def _out(schema: Any) -> Any:
    return lambda obj: schema.model_validate(obj, from_attributes=True)


def _as(schema: type[S], obj: Any) -> S:
    return schema.model_validate(obj, from_attributes=True)


# -- connection points ------------------------------------------------------------------------

@router.get("/connection-points", response_model=Page[ConnectionPointOut], tags=["connection-points"])
async def list_connection_points(access: TenantReader, params: Params) -> Page[ConnectionPointOut]:
    return await page_of(access, "connection_point", params, _out(ConnectionPointOut))


@router.get("/connection-points/count", response_model=CountOut, tags=["connection-points"])
async def count_connection_points(access: TenantReader, filter: Filter = None, saved_filter: str | None = None,
                                  as_of: AsOf = None) -> CountOut:
    return await count_of(access, "connection_point", filter, saved_filter, as_of)


@router.get("/connection-points/export", tags=["connection-points"], response_class=StreamingResponse)
async def export_connection_points(access: TenantReader, filter: Filter = None, saved_filter: str | None = None,
                                   as_of: AsOf = None) -> StreamingResponse:
    return await export_of(access, "connection_point", filter, saved_filter, as_of, "connection-points.csv")


@router.post("/connection-points", response_model=ConnectionPointOut, status_code=status.HTTP_201_CREATED,
             tags=["connection-points"])
async def create_connection_point(access: MasterDataWriter, body: ConnectionPointCreate) -> ConnectionPointOut:
    async with access.transaction() as session:
        return _as(ConnectionPointOut, await service.create(session, ConnectionPoint, body))


@router.get("/connection-points/{code}", response_model=ConnectionPointOut, tags=["connection-points"])
async def get_connection_point(access: TenantReader, code: str) -> ConnectionPointOut:
    async with access.transaction() as session:
        return _as(ConnectionPointOut, await service.get(session, ConnectionPoint, code))


@router.patch("/connection-points/{code}", response_model=ConnectionPointOut, tags=["connection-points"])
async def update_connection_point(access: MasterDataWriter, code: str, body: ConnectionPointUpdate
                                  ) -> ConnectionPointOut:
    async with access.transaction() as session:
        return _as(ConnectionPointOut, await service.update(session, ConnectionPoint, code, body))


@router.delete("/connection-points/{code}", status_code=status.HTTP_204_NO_CONTENT, tags=["connection-points"])
async def delete_connection_point(access: MasterDataWriter, code: str) -> None:
    async with access.transaction() as session:
        await service.delete(session, ConnectionPoint, code)


@router.get("/connection-points/{code}/history", response_model=list[AuditEntryOut], tags=["connection-points"])
async def connection_point_history(access: TenantReader, code: str) -> list[AuditEntryOut]:
    return await history_of(access, "connection_point", code)


# -- metering points --------------------------------------------------------------------------

@router.get("/metering-points", response_model=Page[MeteringPointOut], tags=["metering-points"])
async def list_metering_points(access: TenantReader, params: Params) -> Page[MeteringPointOut]:
    return await page_of(access, "metering_point", params, _out(MeteringPointOut))


@router.get("/metering-points/count", response_model=CountOut, tags=["metering-points"])
async def count_metering_points(access: TenantReader, filter: Filter = None, saved_filter: str | None = None,
                                as_of: AsOf = None) -> CountOut:
    return await count_of(access, "metering_point", filter, saved_filter, as_of)


@router.get("/metering-points/export", tags=["metering-points"], response_class=StreamingResponse)
async def export_metering_points(access: TenantReader, filter: Filter = None, saved_filter: str | None = None,
                                 as_of: AsOf = None) -> StreamingResponse:
    return await export_of(access, "metering_point", filter, saved_filter, as_of, "metering-points.csv")


@router.post("/metering-points", response_model=MeteringPointOut, status_code=status.HTTP_201_CREATED,
             tags=["metering-points"])
async def create_metering_point(access: MasterDataWriter, body: MeteringPointCreate) -> MeteringPointOut:
    async with access.transaction() as session:
        return _as(MeteringPointOut, await service.create(session, MeteringPoint, body))


@router.get("/metering-points/{melo}", response_model=MeteringPointOut, tags=["metering-points"])
async def get_metering_point(access: TenantReader, melo: str) -> MeteringPointOut:
    async with access.transaction() as session:
        return _as(MeteringPointOut, await service.get(session, MeteringPoint, melo))


@router.patch("/metering-points/{melo}", response_model=MeteringPointOut, tags=["metering-points"])
async def update_metering_point(access: MasterDataWriter, melo: str, body: MeteringPointUpdate) -> MeteringPointOut:
    async with access.transaction() as session:
        return _as(MeteringPointOut, await service.update(session, MeteringPoint, melo, body))


@router.delete("/metering-points/{melo}", status_code=status.HTTP_204_NO_CONTENT, tags=["metering-points"])
async def delete_metering_point(access: MasterDataWriter, melo: str) -> None:
    async with access.transaction() as session:
        await service.delete(session, MeteringPoint, melo)


@router.get("/metering-points/{melo}/history", response_model=list[AuditEntryOut], tags=["metering-points"])
async def metering_point_history(access: TenantReader, melo: str) -> list[AuditEntryOut]:
    return await history_of(access, "metering_point", melo.upper())


# -- market locations -------------------------------------------------------------------------

@router.get("/market-locations", response_model=Page[MarketLocationOut], tags=["market-locations"])
async def list_market_locations(access: TenantReader, params: Params) -> Page[MarketLocationOut]:
    return await page_of(access, "market_location", params, _out(MarketLocationOut))


@router.get("/market-locations/count", response_model=CountOut, tags=["market-locations"])
async def count_market_locations(access: TenantReader, filter: Filter = None, saved_filter: str | None = None,
                                 as_of: AsOf = None) -> CountOut:
    return await count_of(access, "market_location", filter, saved_filter, as_of)


@router.get("/market-locations/export", tags=["market-locations"], response_class=StreamingResponse)
async def export_market_locations(access: TenantReader, filter: Filter = None, saved_filter: str | None = None,
                                  as_of: AsOf = None) -> StreamingResponse:
    return await export_of(access, "market_location", filter, saved_filter, as_of, "market-locations.csv")


@router.post("/market-locations", response_model=MarketLocationOut, status_code=status.HTTP_201_CREATED,
             tags=["market-locations"])
async def create_market_location(access: MasterDataWriter, body: MarketLocationCreate) -> MarketLocationOut:
    async with access.transaction() as session:
        return _as(MarketLocationOut, await service.create(session, MarketLocation, body))


@router.get("/market-locations/{malo}", response_model=MarketLocationOut, tags=["market-locations"])
async def get_market_location(access: TenantReader, malo: str) -> MarketLocationOut:
    async with access.transaction() as session:
        return _as(MarketLocationOut, await service.get(session, MarketLocation, malo))


@router.patch("/market-locations/{malo}", response_model=MarketLocationOut, tags=["market-locations"])
async def update_market_location(access: MasterDataWriter, malo: str, body: MarketLocationUpdate
                                 ) -> MarketLocationOut:
    async with access.transaction() as session:
        return _as(MarketLocationOut, await service.update(session, MarketLocation, malo, body))


@router.delete("/market-locations/{malo}", status_code=status.HTTP_204_NO_CONTENT, tags=["market-locations"])
async def delete_market_location(access: MasterDataWriter, malo: str) -> None:
    async with access.transaction() as session:
        await service.delete(session, MarketLocation, malo)


@router.get("/market-locations/{malo}/history", response_model=list[AuditEntryOut], tags=["market-locations"])
async def market_location_history(access: TenantReader, malo: str) -> list[AuditEntryOut]:
    return await history_of(access, "market_location", malo)
