"""Connection points, metering points (MeLo, Zählpunkt) and market locations (MaLo)."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Audited, TenantBase
from domain.records import DataOwnership

DIRECTIONS = ("consumption", "feed_in")
_DIRECTION_CHECK = "direction IN ('consumption', 'feed_in')"


class ConnectionPoint(Audited, DataOwnership, TenantBase):
    """The physical place of installation (Anschlussstelle); gateways are assigned to it."""

    __tablename__ = "connection_points"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True, nullable=False)
    street: Mapped[str | None] = mapped_column(String(200), nullable=True)
    house_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    postcode: Mapped[str | None] = mapped_column(String(5), nullable=True, index=True)
    city: Mapped[str | None] = mapped_column(String(100), nullable=True)
    grid_area: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    grid_operator: Mapped[str | None] = mapped_column(ForeignKey("market_partners.mp_id"), nullable=True)


class MeteringPoint(Audited, DataOwnership, TenantBase):
    """A metering location (Messlokation, MeLo / Zählpunkt), 33 characters."""

    __tablename__ = "metering_points"
    __table_args__ = (CheckConstraint(_DIRECTION_CHECK, name="direction"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    melo: Mapped[str] = mapped_column(String(33), unique=True, nullable=False)
    direction: Mapped[str] = mapped_column(String(12), nullable=False, default="consumption")
    grid_operator: Mapped[str | None] = mapped_column(ForeignKey("market_partners.mp_id"), nullable=True)
    # The metering point operator (MSB) this gateway administrator works for.
    msb: Mapped[str | None] = mapped_column(ForeignKey("market_partners.mp_id"), nullable=True)


class MarketLocation(Audited, DataOwnership, TenantBase):
    """A market location (Marktlokation, MaLo), 11 digits with check digit."""

    __tablename__ = "market_locations"
    __table_args__ = (CheckConstraint(_DIRECTION_CHECK, name="direction"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    malo: Mapped[str] = mapped_column(String(11), unique=True, nullable=False)
    direction: Mapped[str] = mapped_column(String(12), nullable=False, default="consumption")
    supplier: Mapped[str | None] = mapped_column(ForeignKey("market_partners.mp_id"), nullable=True)
