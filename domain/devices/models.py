"""Gateways, meters and CLS modules. Device IDs follow DIN 43849 (see domain/ids.py)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from domain.base import Audited, TenantBase
from domain.catalogue.models import DeviceType
from domain.devices.lifecycle import STATES
from domain.records import DataOwnership
from domain.versions import version_key_sql

_STATE_LIST = ", ".join(f"'{s}'" for s in STATES)
LMN_TYPES = ("wired", "wireless")


class _Device(Audited, DataOwnership):
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(14), unique=True, nullable=False)
    firmware_version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    firmware_key: Mapped[list[int] | None] = mapped_column(
        ARRAY(Integer), Computed(version_key_sql("firmware_version"), persisted=True))


class Gateway(_Device, TenantBase):
    """A smart meter gateway. Certificates (PKI area) reference ``gateways.id``."""

    __tablename__ = "gateways"
    __table_args__ = (CheckConstraint(f"state IN ({_STATE_LIST})", name="state"),)

    device_type_id: Mapped[int] = mapped_column(ForeignKey("device_types.id"), nullable=False, index=True)
    device_type: Mapped[DeviceType] = relationship(lazy="raise")
    wan_address: Mapped[str | None] = mapped_column(String(255), nullable=True)
    wakeup_address: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Mobile cell / APN group: processes throttle per segment.
    network_segment: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(20), nullable=False, default="in_stock", index=True)
    state_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                       server_default=func.now())


class Meter(_Device, TenantBase):
    """A base meter (Basiszähler) behind a gateway's LMN."""

    __tablename__ = "meters"
    __table_args__ = (
        CheckConstraint("lmn_type IN ('wired', 'wireless')", name="lmn_type"),
        CheckConstraint("calibration_valid_until IS NULL OR calibration_date IS NULL "
                        "OR calibration_valid_until >= calibration_date", name="calibration_order"),
    )

    device_type_id: Mapped[int] = mapped_column(ForeignKey("device_types.id"), nullable=False, index=True)
    device_type: Mapped[DeviceType] = relationship(lazy="raise")
    calibration_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    # End of the calibration validity (Eichfrist).
    calibration_valid_until: Mapped[date | None] = mapped_column(Date, nullable=True, index=True)
    lmn_type: Mapped[str] = mapped_column(String(10), nullable=False, default="wired")
    # Meter master key MK0, AES-GCM encrypted with the tenant's key (domain/secrets.py); never returned.
    mk0_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # Keyed fingerprint (HMAC) of MK0: tells a re-import whether the key changed without decrypting.
    mk0_fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class ClsModule(_Device, TenantBase):
    """A controllable local system / switching module (Schaltmodul, Steuerbox) behind a gateway."""

    __tablename__ = "cls_modules"

    device_type_id: Mapped[int] = mapped_column(ForeignKey("device_types.id"), nullable=False, index=True)
    device_type: Mapped[DeviceType] = relationship(lazy="raise")
    # What it switches, e.g. "wallbox", "heat pump".
    controls: Mapped[str | None] = mapped_column(String(100), nullable=True)


class InitialCertificate(Audited, TenantBase):
    """An initial certificate of a gateway as delivered in the manufacturer's delivery file
    (Lieferschein). Kept as delivered (DER); the PKI area validates and adopts it."""

    __tablename__ = "gateway_initial_certificates"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"), nullable=False, index=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    der: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    subject: Mapped[str] = mapped_column(String(500), nullable=False)
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
