"""Request and response schemas of the platform routes (areas keep theirs in their own module)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime


class TenantMembershipOut(BaseModel):
    tenant: str
    role: str | None


class MeOut(BaseModel):
    username: str
    is_superadmin: bool
    tenants: list[TenantMembershipOut]


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="lower-case letter, then 1-30 of a-z, 0-9, '-'")
    display_name: str = Field(default="", max_length=200)


class TenantOut(BaseModel):
    name: str
    display_name: str
    namespace: str
    created_at: datetime
    created_by: str


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    password: str | None = Field(default=None, description="omitted: a password is generated and returned once")
    superadmin: bool = False


class UserOut(BaseModel):
    username: str
    is_superadmin: bool
    is_active: bool
    created_at: datetime


class UserCreated(UserOut):
    generated_password: str | None = None


class MemberUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str
    market_partner_id: str | None = Field(default=None, description="13 digits; for role emt")
    password: str | None = Field(
        default=None, description="when the user does not exist yet it is created; omitted: generated"
    )


class MemberOut(BaseModel):
    username: str
    role: str
    market_partner_id: str | None = None
    generated_password: str | None = None


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    changes: dict[str, Any]
    request_id: str | None


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_after: str | None = Field(default=None, description="pass as ?after= for the next page")
