"""API shapes of market partners."""

from __future__ import annotations

from pydantic import BaseModel, Field

from domain.records import RecordOut, StrictIn


class Endpoint(BaseModel):
    """Where a partner receives data, e.g. the TLS endpoint gateways deliver meter data to."""

    purpose: str = Field(description="meter_data, cls, as4, email or other", pattern=r"^[a-z_]{1,30}$")
    url: str = Field(description="e.g. https://emt.example:443/smgw or tls://10.0.0.5:8443",
                     pattern=r"^[a-z][a-z0-9+.-]{1,15}://\S{1,490}$")


class MarketPartnerCreate(StrictIn):
    mp_id: str = Field(description="market partner ID, 13 digits")
    name: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(min_length=1, description="MSB, VNB, LF, DV, CLS")
    contact_name: str | None = Field(default=None, max_length=200)
    contact_email: str | None = Field(default=None, max_length=200)
    contact_phone: str | None = Field(default=None, max_length=50)
    endpoints: list[Endpoint] = Field(default_factory=list, max_length=50)


class MarketPartnerUpdate(StrictIn):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    roles: list[str] | None = Field(default=None, min_length=1)
    contact_name: str | None = Field(default=None, max_length=200)
    contact_email: str | None = Field(default=None, max_length=200)
    contact_phone: str | None = Field(default=None, max_length=50)
    endpoints: list[Endpoint] | None = Field(default=None, max_length=50)


class MarketPartnerOut(RecordOut):
    mp_id: str
    name: str
    roles: list[str]
    contact_name: str | None
    contact_email: str | None
    contact_phone: str | None
    endpoints: list[Endpoint]
