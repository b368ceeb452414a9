"""A market partner: 13-digit market partner ID, roles, contact, receiving endpoints.

Its SM-PKI certificates live with the PKI area, which references ``market_partners.id``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, String, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Audited, TenantBase
from domain.records import DataOwnership

# MSB metering point operator, VNB grid operator, LF supplier, DV direct marketer, CLS provider.
PARTNER_ROLES = ("MSB", "VNB", "LF", "DV", "CLS")


class MarketPartner(Audited, DataOwnership, TenantBase):
    __tablename__ = "market_partners"
    __table_args__ = (CheckConstraint("cardinality(roles) > 0", name="roles_not_empty"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    mp_id: Mapped[str] = mapped_column(String(13), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(10)), nullable=False)
    contact_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    contact_email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    contact_phone: Mapped[str | None] = mapped_column(String(50), nullable=True)
    # [{"purpose": "meter_data", "url": "https://emt.example:443/smgw"}, ...]
    endpoints: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False,
                                                            server_default=text("'[]'::jsonb"))
