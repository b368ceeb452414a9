"""API shapes of gateways, meters and CLS modules. A meter's MK0 goes in, never out."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import Field, SecretStr

from domain.records import RecordOut, StrictIn

_ADDRESS = Field(default=None, max_length=255)


class GatewayCreate(StrictIn):
    device_id: str = Field(description="DIN 43849 device ID, Sparte E, e.g. EDNT0116909060")
    device_type: str = Field(description="device type code, e.g. emh-casa")
    firmware_version: str | None = Field(default=None, max_length=40)
    wan_address: str | None = _ADDRESS
    wakeup_address: str | None = _ADDRESS
    network_segment: str | None = Field(default=None, max_length=64)
    state: str = Field(default="in_stock", description="initial lifecycle state")


class GatewayUpdate(StrictIn):
    """Changeable fields; the state changes through ``POST .../state`` (checked transitions)."""

    device_type: str | None = None
    firmware_version: str | None = Field(default=None, max_length=40)
    wan_address: str | None = _ADDRESS
    wakeup_address: str | None = _ADDRESS
    network_segment: str | None = Field(default=None, max_length=64)


class StateChange(StrictIn):
    state: str
    reason: str | None = Field(default=None, max_length=500)


class _DeviceOut(RecordOut):
    id: int
    device_id: str
    device_type: str
    manufacturer: str
    model: str
    firmware_version: str | None

    @classmethod
    def device_fields(cls, obj: Any) -> dict[str, Any]:
        dt = obj.device_type
        return {"device_type": dt.code, "manufacturer": dt.manufacturer, "model": dt.model}


class GatewayOut(_DeviceOut):
    wan_address: str | None
    wakeup_address: str | None
    network_segment: str | None
    state: str
    state_changed_at: datetime

    @classmethod
    def of(cls, gw: Any) -> GatewayOut:
        return cls.model_validate({**_attrs(gw, cls), **cls.device_fields(gw)})


class MeterCreate(StrictIn):
    device_id: str = Field(description="DIN 43849 device ID, e.g. 1EMH0005347102")
    device_type: str
    firmware_version: str | None = Field(default=None, max_length=40)
    calibration_date: date | None = None
    calibration_valid_until: date | None = Field(default=None, description="end of calibration validity (Eichfrist)")
    lmn_type: str = Field(default="wired", description="wired or wireless")
    mk0: SecretStr | None = Field(default=None, description="meter master key, hex; write-only")


class MeterUpdate(StrictIn):
    device_type: str | None = None
    firmware_version: str | None = Field(default=None, max_length=40)
    calibration_date: date | None = None
    calibration_valid_until: date | None = None
    lmn_type: str | None = None
    mk0: SecretStr | None = Field(default=None, description="replace the meter master key; write-only")


class MeterOut(_DeviceOut):
    calibration_date: date | None
    calibration_valid_until: date | None
    lmn_type: str
    has_mk0: bool = Field(description="a master key MK0 is stored (its value is never returned)")

    @classmethod
    def of(cls, meter: Any) -> MeterOut:
        return cls.model_validate({**_attrs(meter, cls, skip={"has_mk0"}), **cls.device_fields(meter),
                                   "has_mk0": meter.mk0_ciphertext is not None})


class ClsModuleCreate(StrictIn):
    device_id: str
    device_type: str
    firmware_version: str | None = Field(default=None, max_length=40)
    controls: str | None = Field(default=None, max_length=100, description="what it switches, e.g. wallbox")


class ClsModuleUpdate(StrictIn):
    device_type: str | None = None
    firmware_version: str | None = Field(default=None, max_length=40)
    controls: str | None = Field(default=None, max_length=100)


class ClsModuleOut(_DeviceOut):
    controls: str | None

    @classmethod
    def of(cls, module: Any) -> ClsModuleOut:
        return cls.model_validate({**_attrs(module, cls), **cls.device_fields(module)})


def _attrs(obj: Any, schema: type[RecordOut], skip: set[str] | None = None) -> dict[str, Any]:
    names = set(schema.model_fields) - {"device_type", "manufacturer", "model"} - (skip or set())
    return {n: getattr(obj, n) for n in names}
