"""The kinds of assignment: which two records they link, by which natural keys, and which side
may not hold two overlapping assignments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain import validators as v
from domain.devices.models import ClsModule, Gateway, Meter
from domain.locations.models import ConnectionPoint, MarketLocation, MeteringPoint
from domain.topology.errors import UnknownAssignmentKind
from domain.topology.models import (
    ClsModuleGateway,
    GatewayConnectionPoint,
    MeterGateway,
    MeteringPointMarketLocation,
    MeterMeteringPoint,
)


@dataclass(frozen=True)
class Side:
    name: str  # API/CSV field name, e.g. "meter"
    column: str  # foreign key column in the assignment table, e.g. "meter_id"
    model: Any
    key: str  # natural key attribute of the model, e.g. "device_id"
    normalise: Callable[[str], str]


@dataclass(frozen=True)
class AssignmentKind:
    name: str
    model: Any
    subject: Side  # "the meter ..."
    target: Side  # "... is assigned to the gateway"
    exclusive: tuple[str, ...]  # columns that may not have overlapping periods
    description: str

    @property
    def table(self) -> str:
        return str(self.model.__tablename__)


_GATEWAY = Side("gateway", "gateway_id", Gateway, "device_id", v.gateway_id)
_METER = Side("meter", "meter_id", Meter, "device_id", v.meter_id)
_MELO = Side("metering_point", "metering_point_id", MeteringPoint, "melo", v.melo)

KINDS: dict[str, AssignmentKind] = {k.name: k for k in (
    AssignmentKind("gateway-connection-point", GatewayConnectionPoint, _GATEWAY,
                   Side("connection_point", "connection_point_id", ConnectionPoint, "code", v.code),
                   ("gateway_id",), "a gateway installed at a connection point; one place at a time"),
    AssignmentKind("meter-gateway", MeterGateway, _METER, _GATEWAY, ("meter_id",),
                   "a meter on a gateway's LMN; one gateway at a time"),
    AssignmentKind("meter-metering-point", MeterMeteringPoint, _METER, _MELO, ("metering_point_id",),
                   "a meter measuring a MeLo; a MeLo has one meter at a time"),
    AssignmentKind("metering-point-market-location", MeteringPointMarketLocation, _MELO,
                   Side("market_location", "market_location_id", MarketLocation, "malo", v.malo),
                   ("metering_point_id", "market_location_id"), "a MeLo contributing to a MaLo (n:m)"),
    AssignmentKind("cls-module-gateway", ClsModuleGateway,
                   Side("cls_module", "cls_module_id", ClsModule, "device_id", v.device_id), _GATEWAY,
                   ("cls_module_id",), "a CLS module behind a gateway; one gateway at a time"),
)}


def kind(name: str) -> AssignmentKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownAssignmentKind(f"unknown assignment kind {name!r}; one of: {', '.join(KINDS)}") from None
