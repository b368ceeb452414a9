"""API shapes of assignments and of a gateway's topology."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from domain.records import StrictIn


class AssignmentCreate(StrictIn):
    subject: str = Field(description="natural key of the first side, e.g. the meter's device ID")
    target: str = Field(description="natural key of the second side, e.g. the gateway's device ID")
    valid_from: datetime | None = Field(default=None, description="default: now")
    valid_to: datetime | None = Field(default=None, description="exclusive end; omitted: open-ended")


class AssignmentEnd(StrictIn):
    valid_to: datetime | None = Field(default=None, description="exclusive end; default: now")


class AssignmentOut(BaseModel):
    id: int
    kind: str
    subject: str
    target: str
    valid_from: datetime
    valid_to: datetime | None
    leading: bool
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


class Period(BaseModel):
    assignment_id: int
    valid_from: datetime
    valid_to: datetime | None


class MarketLocationNode(Period):
    malo: str
    direction: str
    supplier: str | None


class MeteringPointNode(Period):
    melo: str
    direction: str
    grid_operator: str | None
    msb: str | None
    market_locations: list[MarketLocationNode]


class MeterNode(Period):
    device_id: str
    device_type: str
    lmn_type: str
    firmware_version: str | None
    calibration_valid_until: Any
    metering_points: list[MeteringPointNode]


class ConnectionPointNode(Period):
    code: str
    street: str | None
    house_number: str | None
    postcode: str | None
    city: str | None
    grid_area: str | None
    grid_operator: str | None


class ClsModuleNode(Period):
    device_id: str
    device_type: str
    controls: str | None


class PartnerNode(BaseModel):
    mp_id: str
    name: str
    roles: list[str]
    serves_as: list[str] = Field(description="grid_operator, msb or supplier of this gateway's places")


class GatewayTopology(BaseModel):
    as_of: datetime
    connection_point: ConnectionPointNode | None
    meters: list[MeterNode]
    cls_modules: list[ClsModuleNode]
    market_partners: list[PartnerNode]
