"""Device types (gateways, meters, CLS modules) and the firmware versions known for them."""

from __future__ import annotations

from datetime import date

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from domain.base import Audited, TenantBase
from domain.records import DataOwnership
from domain.versions import version_key_sql

DEVICE_KINDS = ("gateway", "meter", "cls")


class DeviceType(Audited, DataOwnership, TenantBase):
    __tablename__ = "device_types"
    __table_args__ = (CheckConstraint("kind IN ('gateway', 'meter', 'cls')", name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    manufacturer: Mapped[str] = mapped_column(String(100), nullable=False)
    # The 3-letter FLAG code that device IDs of this type carry (DIN 43849), e.g. "EMH".
    manufacturer_flag: Mapped[str] = mapped_column(String(3), nullable=False)
    model: Mapped[str] = mapped_column(String(100), nullable=False)
    capabilities: Mapped[list[str]] = mapped_column(ARRAY(String(40)), nullable=False,
                                                    server_default=text("'{}'::varchar[]"))
    description: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")


class FirmwareVersion(Audited, DataOwnership, TenantBase):
    __tablename__ = "firmware_versions"
    __table_args__ = (UniqueConstraint("device_type_id", "version", name="uq_firmware_versions_type_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_type_id: Mapped[int] = mapped_column(ForeignKey("device_types.id"), nullable=False)
    device_type: Mapped[DeviceType] = relationship(lazy="raise")
    version: Mapped[str] = mapped_column(String(40), nullable=False)
    version_key: Mapped[list[int] | None] = mapped_column(
        ARRAY(Integer), Computed(version_key_sql("version"), persisted=True))
    released_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    # Released for rollout (e.g. certified and approved by the operator).
    approved: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    notes: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")
