"""API shapes of connection points, metering points (MeLo) and market locations (MaLo)."""

from __future__ import annotations

from pydantic import Field

from domain.records import RecordOut, StrictIn

_MP = Field(default=None, description="market partner ID, 13 digits")


class ConnectionPointCreate(StrictIn):
    code: str = Field(description="your key for the place, e.g. AS-000123")
    street: str | None = Field(default=None, max_length=200)
    house_number: str | None = Field(default=None, max_length=20)
    postcode: str | None = None
    city: str | None = Field(default=None, max_length=100)
    grid_area: str | None = Field(default=None, max_length=64)
    grid_operator: str | None = _MP


class ConnectionPointUpdate(StrictIn):
    street: str | None = Field(default=None, max_length=200)
    house_number: str | None = Field(default=None, max_length=20)
    postcode: str | None = None
    city: str | None = Field(default=None, max_length=100)
    grid_area: str | None = Field(default=None, max_length=64)
    grid_operator: str | None = _MP


class ConnectionPointOut(RecordOut):
    id: int
    code: str
    street: str | None
    house_number: str | None
    postcode: str | None
    city: str | None
    grid_area: str | None
    grid_operator: str | None


class MeteringPointCreate(StrictIn):
    melo: str = Field(description="MeLo: DE + 11 digits + 20 of A-Z/0-9")
    direction: str = Field(default="consumption", description="consumption or feed_in")
    grid_operator: str | None = _MP
    msb: str | None = Field(default=None, description="metering point operator, 13 digits")


class MeteringPointUpdate(StrictIn):
    direction: str | None = None
    grid_operator: str | None = _MP
    msb: str | None = _MP


class MeteringPointOut(RecordOut):
    id: int
    melo: str
    direction: str
    grid_operator: str | None
    msb: str | None


class MarketLocationCreate(StrictIn):
    malo: str = Field(description="MaLo: 11 digits, the last a check digit")
    direction: str = Field(default="consumption", description="consumption or feed_in")
    supplier: str | None = Field(default=None, description="supplier (LF), 13 digits")


class MarketLocationUpdate(StrictIn):
    direction: str | None = None
    supplier: str | None = _MP


class MarketLocationOut(RecordOut):
    id: int
    malo: str
    direction: str
    supplier: str | None
