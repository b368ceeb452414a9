"""API shapes of the certificate store."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.certificates.models import Certificate


class CertificateUpload(BaseModel):
    """One of ``pem`` (PEM text, one or many blocks) or ``der_base64`` (DER, base64)."""

    model_config = ConfigDict(extra="forbid")
    pem: str | None = Field(default=None, max_length=2_000_000)
    der_base64: str | None = Field(default=None, max_length=2_000_000)
    password: str | None = Field(default=None, description="for encrypted private keys (identity import)")

    @model_validator(mode="after")
    def _exactly_one(self) -> CertificateUpload:
        if (self.pem is None) == (self.der_base64 is None):
            raise ValueError("give exactly one of pem or der_base64")
        return self

    def data(self) -> bytes:
        if self.pem is not None:
            return self.pem.encode()
        try:
            return base64.b64decode(self.der_base64 or "", validate=True)
        except ValueError:
            return b"\x00not-base64"  # parsed as DER downstream -> reason "malformed"


class CertificateOut(BaseModel):
    fingerprint: str
    owner: str
    role: str | None
    usage: str | None
    is_trust_anchor: bool
    subject: str
    common_name: str | None
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    days_left: int
    status: str
    revocation: str
    revocation_checked_at: datetime | None
    revocation_requested_at: datetime | None
    gateway: str | None = None
    market_partner: str | None = None
    has_private_key: bool

    @classmethod
    def of(cls, row: Certificate, gateway: str | None = None, market_partner: str | None = None) -> CertificateOut:
        return cls(
            fingerprint=row.fingerprint, owner=row.owner, role=row.role, usage=row.usage,
            is_trust_anchor=row.is_trust_anchor, subject=row.subject, common_name=row.common_name,
            issuer=row.issuer, serial=row.serial, not_before=row.not_before, not_after=row.not_after,
            days_left=(row.not_after - datetime.now(UTC)).days, status=row.status, revocation=row.revocation,
            revocation_checked_at=row.revocation_checked_at, revocation_requested_at=row.revocation_requested_at,
            gateway=gateway, market_partner=market_partner, has_private_key=row.private_key is not None,
        )


class ImportResult(BaseModel):
    imported: list[CertificateOut]
    unchanged: int


class RevocationRunOut(BaseModel):
    refreshed: dict[str, str]
    failed: dict[str, str]
    revoked: int
    good: int
