"""Maintaining the device catalogue; resolving a device type for a device."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput, NotFound
from core.ids import DeviceId
from domain import validators as v
from domain.catalogue import repository
from domain.catalogue.models import DEVICE_KINDS, DeviceType, FirmwareVersion
from domain.catalogue.schemas import (
    DeviceTypeCreate,
    DeviceTypeUpdate,
    FirmwareVersionCreate,
    FirmwareVersionUpdate,
)
from domain.records import AlreadyExists, apply_update, flush_or_conflict, record_change
from domain.versions import validate_version

_CAPABILITY_RE = re.compile(r"^[a-z0-9_:.-]{1,40}$")
MIRRORED = frozenset({"manufacturer", "model", "capabilities", "description"})


class UnknownDeviceType(InvalidInput):
    code = "unknown_device_type"


class DeviceTypeMismatch(InvalidInput):
    code = "device_type_mismatch"


class DeviceTypeNotFound(NotFound):
    code = "device_type_not_found"


class FirmwareVersionNotFound(NotFound):
    code = "firmware_version_not_found"


def snapshot(dt: DeviceType) -> dict[str, Any]:
    return {"kind": dt.kind, "manufacturer": dt.manufacturer, "manufacturer_flag": dt.manufacturer_flag,
            "model": dt.model, "capabilities": list(dt.capabilities), "description": dt.description}


def _capabilities(values: list[str]) -> list[str]:
    for cap in values:
        if not _CAPABILITY_RE.fullmatch(cap):
            raise InvalidInput(f"invalid capability {cap!r}: lower-case letters, digits, '_', ':', '.', '-'",
                               code="invalid_capability")
    return sorted(set(values))


async def get_device_type(session: AsyncSession, code: str) -> DeviceType:
    found = await repository.device_type_by_code(session, code)
    if found is None:
        raise DeviceTypeNotFound(f"no device type {code!r}")
    return found


async def device_type_for(session: AsyncSession, code: str, kind: str, device: DeviceId | None = None) -> DeviceType:
    """The device type ``code`` for a device of ``kind``; its FLAG must match the device ID's."""
    found = await repository.device_type_by_code(session, code)
    if found is None:
        raise UnknownDeviceType(f"unknown device type {code!r}", details={"device_type": code})
    check_device_type(found.kind, found.manufacturer_flag, found.code, kind, device)
    return found


def check_device_type(type_kind: str, flag: str, code: str, kind: str, device: DeviceId | None) -> None:
    if type_kind != kind:
        raise DeviceTypeMismatch(f"device type {code!r} is a {type_kind} type, not a {kind} type")
    if device is not None and device.manufacturer != flag:
        raise DeviceTypeMismatch(f"device ID {device} carries manufacturer code {device.manufacturer}, "
                                 f"device type {code!r} is made by {flag}")


async def create_device_type(session: AsyncSession, body: DeviceTypeCreate) -> DeviceType:
    code = v.device_type_code(body.code)
    v.choice(body.kind, DEVICE_KINDS, "kind")
    if await repository.device_type_by_code(session, code):
        raise AlreadyExists(f"device type {code!r} already exists")
    dt = DeviceType(code=code, kind=body.kind, manufacturer=v.text(body.manufacturer, 100, "manufacturer"),
                    manufacturer_flag=body.manufacturer_flag, model=v.text(body.model, 100, "model"),
                    capabilities=_capabilities(body.capabilities), description=body.description)
    session.add(dt)
    record_change(session, "create", "device_type", code, None, snapshot(dt))
    await flush_or_conflict(session, f"device type {code!r}")
    return dt


async def update_device_type(session: AsyncSession, code: str, body: DeviceTypeUpdate) -> DeviceType:
    dt = await get_device_type(session, code)
    changes = body.model_dump(exclude_unset=True)
    if "capabilities" in changes:
        changes["capabilities"] = _capabilities(changes["capabilities"] or [])
    apply_update(session, dt, {k: val for k, val in changes.items() if val is not None}, object_type="device_type",
                 object_id=code, snapshot=snapshot, mirrored=MIRRORED)
    await flush_or_conflict(session, f"device type {code!r}")
    return dt


async def delete_device_type(session: AsyncSession, code: str) -> None:
    dt = await get_device_type(session, code)
    record_change(session, "delete", "device_type", code, snapshot(dt), None)
    await session.delete(dt)
    await flush_or_conflict(session, f"device type {code!r}")


def firmware_snapshot(fw: FirmwareVersion) -> dict[str, Any]:
    return {"device_type": fw.device_type.code, "version": fw.version, "released_on": fw.released_on,
            "approved": fw.approved, "notes": fw.notes}


async def get_firmware_version(session: AsyncSession, id: int) -> FirmwareVersion:
    found = await repository.firmware_version(session, id)
    if found is None:
        raise FirmwareVersionNotFound(f"no firmware version {id}")
    return found


async def create_firmware_version(session: AsyncSession, body: FirmwareVersionCreate) -> FirmwareVersion:
    dt = await repository.device_type_by_code(session, body.device_type)
    if dt is None:
        raise UnknownDeviceType(f"unknown device type {body.device_type!r}")
    fw = FirmwareVersion(device_type=dt, version=validate_version(body.version), released_on=body.released_on,
                         approved=body.approved, notes=body.notes)
    session.add(fw)
    await flush_or_conflict(session, f"firmware version {body.version} of {dt.code}")
    record_change(session, "create", "firmware_version", str(fw.id), None, firmware_snapshot(fw))
    return fw


async def update_firmware_version(session: AsyncSession, id: int, body: FirmwareVersionUpdate) -> FirmwareVersion:
    fw = await get_firmware_version(session, id)
    changes = {k: val for k, val in body.model_dump(exclude_unset=True).items()
               if val is not None or k == "released_on"}
    apply_update(session, fw, changes, object_type="firmware_version", object_id=str(id),
                 snapshot=firmware_snapshot, mirrored=frozenset({"released_on", "notes"}))
    await flush_or_conflict(session, f"firmware version {id}")
    return fw


async def delete_firmware_version(session: AsyncSession, id: int) -> None:
    fw = await get_firmware_version(session, id)
    record_change(session, "delete", "firmware_version", str(id), firmware_snapshot(fw), None)
    await session.delete(fw)
    await flush_or_conflict(session, f"firmware version {id}")
