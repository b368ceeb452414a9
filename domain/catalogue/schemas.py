"""API shapes of device types and firmware versions."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from domain.records import RecordOut, StrictIn

CAPABILITY_PATTERN = r"^[a-z0-9_:.-]{1,40}$"


class DeviceTypeCreate(StrictIn):
    code: str = Field(description="stable key, e.g. emh-casa", max_length=60)
    kind: str = Field(description="gateway, meter or cls")
    manufacturer: str = Field(max_length=100, min_length=1)
    manufacturer_flag: str = Field(description="3-letter FLAG code in device IDs", pattern=r"^[A-Z]{3}$")
    model: str = Field(max_length=100, min_length=1)
    capabilities: list[str] = Field(default_factory=list, description="e.g. taf7, lmn_wired")
    description: str = Field(default="", max_length=2000)


class DeviceTypeUpdate(StrictIn):
    manufacturer: str | None = Field(default=None, max_length=100, min_length=1)
    model: str | None = Field(default=None, max_length=100, min_length=1)
    capabilities: list[str] | None = None
    description: str | None = Field(default=None, max_length=2000)


class DeviceTypeOut(RecordOut):
    code: str
    kind: str
    manufacturer: str
    manufacturer_flag: str
    model: str
    capabilities: list[str]
    description: str


class FirmwareVersionCreate(StrictIn):
    device_type: str = Field(description="device type code")
    version: str = Field(max_length=40)
    released_on: date | None = None
    approved: bool = False
    notes: str = Field(default="", max_length=2000)


class FirmwareVersionUpdate(StrictIn):
    released_on: date | None = None
    approved: bool | None = None
    notes: str | None = Field(default=None, max_length=2000)


class FirmwareVersionOut(RecordOut):
    id: int
    device_type: str
    version: str
    released_on: date | None
    approved: bool
    notes: str


