"""Assignments with validity intervals, kept as history.

Each assignment is valid in ``[valid_from, valid_to)``; an open end (``valid_to`` NULL) means
"until further notice". A PostgreSQL exclusion constraint (btree_gist) refuses overlapping
intervals for the same exclusive side, e.g. a meter at two gateways at the same time. Both sides
also have a B-tree index: filters look assignments up by ``= ANY(array)``, which GiST cannot serve.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, text
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Audited, TenantBase
from domain.records import DataOwnership

PERIOD = "tstzrange(valid_from, valid_to, '[)')"


class _Assignment(Audited, DataOwnership):
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def _args(table: str, *exclusive: str) -> tuple[object, ...]:
    return (
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="period"),
        ExcludeConstraint(*[(c, "=") for c in exclusive], (text(PERIOD), "&&"),
                          using="gist", name=f"ex_{table}_overlap"),
    )


class GatewayConnectionPoint(_Assignment, TenantBase):
    """A gateway installed at a connection point; a gateway is at one place at a time."""

    __tablename__ = "assign_gateway_cp"
    __table_args__ = _args("assign_gateway_cp", "gateway_id")

    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"), nullable=False, index=True)
    connection_point_id: Mapped[int] = mapped_column(ForeignKey("connection_points.id"), nullable=False, index=True)


class MeterGateway(_Assignment, TenantBase):
    """A meter on a gateway's LMN; a meter is at one gateway at a time."""

    __tablename__ = "assign_meter_gateway"
    __table_args__ = _args("assign_meter_gateway", "meter_id")

    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), nullable=False, index=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"), nullable=False, index=True)


class MeterMeteringPoint(_Assignment, TenantBase):
    """A meter measuring a metering point (MeLo); a MeLo has one meter at a time (a bidirectional
    meter may serve a consumption and a feed-in MeLo)."""

    __tablename__ = "assign_meter_melo"
    __table_args__ = _args("assign_meter_melo", "metering_point_id")

    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), nullable=False, index=True)
    metering_point_id: Mapped[int] = mapped_column(ForeignKey("metering_points.id"), nullable=False, index=True)


class MeteringPointMarketLocation(_Assignment, TenantBase):
    """A MeLo contributing to a market location (MaLo); n:m, never the same pair twice at a time."""

    __tablename__ = "assign_melo_malo"
    __table_args__ = _args("assign_melo_malo", "metering_point_id", "market_location_id")

    metering_point_id: Mapped[int] = mapped_column(ForeignKey("metering_points.id"), nullable=False, index=True)
    market_location_id: Mapped[int] = mapped_column(ForeignKey("market_locations.id"), nullable=False, index=True)


class ClsModuleGateway(_Assignment, TenantBase):
    """A CLS module reached through a gateway's HAN; one gateway at a time."""

    __tablename__ = "assign_cls_gateway"
    __table_args__ = _args("assign_cls_gateway", "cls_module_id")

    cls_module_id: Mapped[int] = mapped_column(ForeignKey("cls_modules.id"), nullable=False, index=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"), nullable=False, index=True)
