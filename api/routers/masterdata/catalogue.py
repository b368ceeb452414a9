"""The device catalogue (device types, firmware versions) and market partners."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from api.deps import MasterDataWriter, TenantReader
from api.routers.masterdata._common import PREFIX, ListParams, history_of, list_params, page_of
from api.schemas import AuditEntryOut, Page
from domain.catalogue import repository as catalogue
from domain.catalogue import service as catalogue_service
from domain.catalogue.models import FirmwareVersion
from domain.catalogue.schemas import (
    DeviceTypeCreate,
    DeviceTypeOut,
    DeviceTypeUpdate,
    FirmwareVersionCreate,
    FirmwareVersionOut,
    FirmwareVersionUpdate,
)
from domain.partners import service as partners
from domain.partners.schemas import MarketPartnerCreate, MarketPartnerOut, MarketPartnerUpdate

router = APIRouter(prefix=PREFIX)
Params = Annotated[ListParams, Depends(list_params)]


def _firmware(fw: FirmwareVersion) -> FirmwareVersionOut:
    return FirmwareVersionOut.model_validate({**{k: getattr(fw, k) for k in FirmwareVersionOut.model_fields
                                                 if k != "device_type"}, "device_type": fw.device_type.code})


# -- device types -----------------------------------------------------------------------------

@router.get("/device-types", response_model=list[DeviceTypeOut], tags=["catalogue"])
async def list_device_types(access: TenantReader, kind: str | None = None) -> list[DeviceTypeOut]:
    async with access.transaction() as session:
        return [DeviceTypeOut.model_validate(d) for d in await catalogue.device_types(session, kind)]


@router.post("/device-types", response_model=DeviceTypeOut, status_code=status.HTTP_201_CREATED, tags=["catalogue"])
async def create_device_type(access: MasterDataWriter, body: DeviceTypeCreate) -> DeviceTypeOut:
    async with access.transaction() as session:
        return DeviceTypeOut.model_validate(await catalogue_service.create_device_type(session, body))


@router.get("/device-types/{code}", response_model=DeviceTypeOut, tags=["catalogue"])
async def get_device_type(access: TenantReader, code: str) -> DeviceTypeOut:
    async with access.transaction() as session:
        return DeviceTypeOut.model_validate(await catalogue_service.get_device_type(session, code))


@router.patch("/device-types/{code}", response_model=DeviceTypeOut, tags=["catalogue"])
async def update_device_type(access: MasterDataWriter, code: str, body: DeviceTypeUpdate) -> DeviceTypeOut:
    async with access.transaction() as session:
        return DeviceTypeOut.model_validate(await catalogue_service.update_device_type(session, code, body))


@router.delete("/device-types/{code}", status_code=status.HTTP_204_NO_CONTENT, tags=["catalogue"])
async def delete_device_type(access: MasterDataWriter, code: str) -> None:
    async with access.transaction() as session:
        await catalogue_service.delete_device_type(session, code)


# -- firmware versions ------------------------------------------------------------------------

@router.get("/firmware-versions", response_model=list[FirmwareVersionOut], tags=["catalogue"])
async def list_firmware_versions(access: TenantReader, device_type: str | None = None) -> list[FirmwareVersionOut]:
    async with access.transaction() as session:
        return [_firmware(f) for f in await catalogue.firmware_versions(session, device_type)]


@router.post("/firmware-versions", response_model=FirmwareVersionOut, status_code=status.HTTP_201_CREATED,
             tags=["catalogue"])
async def create_firmware_version(access: MasterDataWriter, body: FirmwareVersionCreate) -> FirmwareVersionOut:
    async with access.transaction() as session:
        return _firmware(await catalogue_service.create_firmware_version(session, body))


@router.get("/firmware-versions/{id}", response_model=FirmwareVersionOut, tags=["catalogue"])
async def get_firmware_version(access: TenantReader, id: int) -> FirmwareVersionOut:
    async with access.transaction() as session:
        return _firmware(await catalogue_service.get_firmware_version(session, id))


@router.patch("/firmware-versions/{id}", response_model=FirmwareVersionOut, tags=["catalogue"])
async def update_firmware_version(access: MasterDataWriter, id: int, body: FirmwareVersionUpdate
                                  ) -> FirmwareVersionOut:
    async with access.transaction() as session:
        return _firmware(await catalogue_service.update_firmware_version(session, id, body))


@router.delete("/firmware-versions/{id}", status_code=status.HTTP_204_NO_CONTENT, tags=["catalogue"])
async def delete_firmware_version(access: MasterDataWriter, id: int) -> None:
    async with access.transaction() as session:
        await catalogue_service.delete_firmware_version(session, id)


# -- market partners --------------------------------------------------------------------------

@router.get("/market-partners", response_model=Page[MarketPartnerOut], tags=["market-partners"])
async def list_market_partners(access: TenantReader, params: Params) -> Page[MarketPartnerOut]:
    return await page_of(access, "market_partner", params, MarketPartnerOut.model_validate)


@router.post("/market-partners", response_model=MarketPartnerOut, status_code=status.HTTP_201_CREATED,
             tags=["market-partners"])
async def create_market_partner(access: MasterDataWriter, body: MarketPartnerCreate) -> MarketPartnerOut:
    async with access.transaction() as session:
        return MarketPartnerOut.model_validate(await partners.create(session, body))


@router.get("/market-partners/{mp_id}", response_model=MarketPartnerOut, tags=["market-partners"])
async def get_market_partner(access: TenantReader, mp_id: str) -> MarketPartnerOut:
    async with access.transaction() as session:
        return MarketPartnerOut.model_validate(await partners.get(session, mp_id))


@router.patch("/market-partners/{mp_id}", response_model=MarketPartnerOut, tags=["market-partners"])
async def update_market_partner(access: MasterDataWriter, mp_id: str, body: MarketPartnerUpdate) -> MarketPartnerOut:
    async with access.transaction() as session:
        return MarketPartnerOut.model_validate(await partners.update(session, mp_id, body))


@router.delete("/market-partners/{mp_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["market-partners"])
async def delete_market_partner(access: MasterDataWriter, mp_id: str) -> None:
    async with access.transaction() as session:
        await partners.delete(session, mp_id)


@router.get("/market-partners/{mp_id}/history", response_model=list[AuditEntryOut], tags=["market-partners"])
async def market_partner_history(access: TenantReader, mp_id: str) -> list[AuditEntryOut]:
    return await history_of(access, "market_partner", mp_id)
