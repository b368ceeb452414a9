"""API shapes of TAF orders and the profile history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from domain.records import StrictIn


class TafOrderCreate(StrictIn):
    metering_point: str = Field(description="MeLo (Zählpunkt), 33 characters")
    taf: int = Field(description="TAF number: 1, 2, 6, 7, 9 or 10")
    emt: str = Field(description="market partner ID of the recipient EMT")
    params: dict[str, Any] = Field(default_factory=dict, description="per TAF: registers, interval_s, "
                                                                     "delivery_period_s, ... (docs/processes.md)")
    valid_from: datetime | None = Field(default=None, description="default: now")
    valid_to: datetime | None = Field(default=None, description="exclusive end; omitted: until terminated")
    external_ref: str | None = Field(default=None, max_length=100, description="the EMT's own order reference")


class TafOrderUpdate(StrictIn):
    params: dict[str, Any] | None = None
    valid_to: datetime | None = None
    external_ref: str | None = Field(default=None, max_length=100)


class TafOrderTerminate(StrictIn):
    reason: str = Field(default="terminated by operator", min_length=3, max_length=500)


class TafOrderOut(BaseModel):
    id: int
    metering_point: str
    taf: int
    emt: str
    params: dict[str, Any]
    valid_from: datetime
    valid_to: datetime | None
    status: str
    terminated_at: datetime | None
    termination_reason: str | None
    replaced_by: int | None
    external_ref: str | None
    gateway: str | None = Field(description="the gateway currently serving the metering point (roll out there)")
    terminated_order: int | None = Field(default=None, description="the order this one replaced, if any")
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


class GatewayProfileOut(BaseModel):
    id: int
    kind: str
    profile_id: str
    status: str
    taf_order_id: int | None
    content: dict[str, Any]
    content_sha256: str
    valid_from: datetime
    valid_to: datetime | None
    written_by: str | None
    ended_by: str | None
