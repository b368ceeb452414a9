"""Head-end state in the tenant database: connection registry, node heartbeats, communication
history and the events gateways pushed. Gateways are referenced by their DIN 43849 ID (no foreign
key): history and events outlive a gateway record, as an audit trail must."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import TenantBase


class HeadendNode(TenantBase):
    """A head-end node serving this tenant; connections count only while its heartbeat is fresh."""

    __tablename__ = "headend_nodes"

    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    contact_uri: Mapped[str] = mapped_column(String(300), nullable=False)


class GatewayConnection(TenantBase):
    """Which gateway holds a management connection to which node, since when."""

    __tablename__ = "gateway_connections"

    gateway_id: Mapped[str] = mapped_column(String(14), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    connected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_activity_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    peer: Mapped[str] = mapped_column(String(64), nullable=False)
    certificate_serial: Mapped[str] = mapped_column(String(80), nullable=False)


class GatewayCommunication(TenantBase):
    """One exchange with a gateway: a request and its answer, a Notify, or an event delivery."""

    __tablename__ = "gateway_communications"
    __table_args__ = (Index("ix_gateway_communications_gateway_at", "gateway_id", "at", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(14), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    direction: Mapped[str] = mapped_column(String(3), nullable=False)  # out (head-end request) | in
    command: Mapped[str] = mapped_column(String(40), nullable=False)
    method: Mapped[str | None] = mapped_column(String(8), nullable=True)
    path: Mapped[str | None] = mapped_column(String(400), nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(45), nullable=True, index=True)
    command_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    result: Mapped[str] = mapped_column(String(40), nullable=False)  # ok | accepted | <error reason>
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    bytes_out: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    bytes_in: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    node_id: Mapped[str] = mapped_column(String(64), nullable=False)


class GatewayEvent(TenantBase):
    """An alarm or event a gateway pushed (docs/protocol.md 8.2); the alarm processes read these."""

    __tablename__ = "gateway_events"
    __table_args__ = (Index("ix_gateway_events_gateway_time", "gateway_id", "occurred_at", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    gateway_id: Mapped[str] = mapped_column(String(14), nullable=False)
    code: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    vendor_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    level: Mapped[int] = mapped_column(Integer, nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    meter_id: Mapped[str | None] = mapped_column(String(14), nullable=True)
    log: Mapped[str | None] = mapped_column(String(20), nullable=True)
    record: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    correlation_id: Mapped[str | None] = mapped_column(String(45), nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    node_id: Mapped[str] = mapped_column(String(64), nullable=False)
