"""Certificates of one tenant. Private keys (only of the tenant's own identities: its GWA, and the
EMTs it runs the MDM for) are encrypted with the tenant's key (``domain.secrets.SecretBox``, purpose
``private_key``, bound to the fingerprint)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, LargeBinary, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Audited, TenantBase

OWNERS = ("trust", "identity", "emt", "gateway")
STATUSES = ("active", "superseded", "retired")
REVOCATION = ("unknown", "good", "revoked")


class Certificate(Audited, TenantBase):
    __tablename__ = "certificates"
    __table_args__ = (
        CheckConstraint(f"owner IN ({', '.join(repr(o) for o in OWNERS)})", name="owner"),
        CheckConstraint(f"status IN ({', '.join(repr(o) for o in STATUSES)})", name="status"),
        CheckConstraint(f"revocation IN ({', '.join(repr(o) for o in REVOCATION)})", name="revocation"),
        CheckConstraint("private_key IS NULL OR owner IN ('identity', 'emt')", name="keys_only_for_identity"),
        Index("ix_certificates_not_after_active", "not_after", postgresql_where="status = 'active'"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # trust: root/Sub-CA certificates (anchors have is_trust_anchor); identity: the tenant's own
    # GWA TLS/SIG/ENC; emt: a market participant's (with keys: an EMT identity the tenant's MDM
    # receives for); gateway: an SMGW's.
    owner: Mapped[str] = mapped_column(String(10), nullable=False, index=True)
    role: Mapped[str | None] = mapped_column(String(8), nullable=True)  # CA, GWA, GWH, EMT, SMGW
    usage: Mapped[str | None] = mapped_column(String(3), nullable=True)  # tls, sig, enc (None for CAs)
    is_trust_anchor: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    subject: Mapped[str] = mapped_column(String(1000), nullable=False)
    common_name: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    issuer: Mapped[str] = mapped_column(String(1000), nullable=False)
    serial: Mapped[str] = mapped_column(String(80), nullable=False)
    subject_key_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    crl_urls: Mapped[list[str]] = mapped_column(ARRAY(String(500)), nullable=False, default=list)
    der: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    private_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateways.id"), nullable=True, index=True)
    market_partner_id: Mapped[int | None] = mapped_column(ForeignKey("market_partners.id"), nullable=True,
                                                          index=True)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="active")
    revocation: Mapped[str] = mapped_column(String(8), nullable=False, default="unknown")
    revocation_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revocation_detail: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Set when the holder leaves service (e.g. deinstallation): the Sub-CA must be asked to revoke.
    revocation_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
