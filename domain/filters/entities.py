"""The fields each entity can be filtered by: its own columns and those of its current
assignments (a gateway's connection point, a meter's gateway, ...). Documented in
docs/masterdata.md; keep both in step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, and_, any_, func, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY

from domain.catalogue.models import DeviceType
from domain.devices.lifecycle import STATES
from domain.devices.models import LMN_TYPES, ClsModule, Gateway, Meter
from domain.filters.fields import VK, Builder, Field, column, related
from domain.locations.models import DIRECTIONS, ConnectionPoint, MarketLocation, MeteringPoint
from domain.partners.models import PARTNER_ROLES, MarketPartner
from domain.topology.models import (
    ClsModuleGateway,
    GatewayConnectionPoint,
    MeterGateway,
    MeteringPointMarketLocation,
    MeterMeteringPoint,
)


def current(model: Any, at: Any) -> ColumnElement[bool]:
    """The assignment is valid at ``at``."""
    return and_(model.valid_from <= at, or_(model.valid_to.is_(None), model.valid_to > at))


def _ids(column: Any, *where: Any) -> Any:
    """``ARRAY(SELECT column WHERE ...)``: evaluated once per statement (an InitPlan)."""
    return type_coerce(func.array(select(column).where(*where).scalar_subquery()), ARRAY(BigInteger))


@dataclass(frozen=True)
class Hop:
    """One assignment between the owner and the related row: ``near`` points towards the owner."""

    model: Any
    near: str
    far: str


def via(owner_id: Any, hops: tuple[Hop, ...], attr: Any) -> Any:
    """A field of a row reached through current assignments, e.g. a gateway's grid area through
    gateway -> connection point. Matching ids are collected from the far end inwards, one
    ``= ANY(ARRAY(...))`` per hop: each hop is an index lookup by the (few) ids of the previous
    one, and the owner rows are hash probes. A correlated EXISTS instead lets the planner walk a
    sorted index for a LIMIT and probe the chain per row: slow when few rows match."""
    target = attr.class_

    def apply(build: Builder, at: Any) -> ColumnElement[bool]:
        ids = _ids(target.id, build(attr))
        for hop in reversed(hops):
            ids = _ids(getattr(hop.model, hop.near), getattr(hop.model, hop.far) == any_(ids), current(hop.model, at))
        return owner_id == any_(ids)
    return apply


GW_CP = Hop(GatewayConnectionPoint, "gateway_id", "connection_point_id")
CP_GW = Hop(GatewayConnectionPoint, "connection_point_id", "gateway_id")
GW_METER = Hop(MeterGateway, "gateway_id", "meter_id")
METER_GW = Hop(MeterGateway, "meter_id", "gateway_id")
METER_MELO = Hop(MeterMeteringPoint, "meter_id", "metering_point_id")
MELO_METER = Hop(MeterMeteringPoint, "metering_point_id", "meter_id")
MELO_MALO = Hop(MeteringPointMarketLocation, "metering_point_id", "market_location_id")
MALO_MELO = Hop(MeteringPointMarketLocation, "market_location_id", "metering_point_id")
GW_CLS = Hop(ClsModuleGateway, "gateway_id", "cls_module_id")
CLS_GW = Hop(ClsModuleGateway, "cls_module_id", "gateway_id")


# -- building blocks --------------------------------------------------------------------------

def _device_type_fields(owner: Any) -> dict[str, Field]:
    def of_type(attr: Any) -> Any:
        return lambda build, at: owner.device_type_id == any_(
            type_coerce(func.array(select(DeviceType.id).where(build(attr)).scalar_subquery()), ARRAY(BigInteger)))

    return {
        "manufacturer": related(of_type(DeviceType.manufacturer), VK.TEXT, "manufacturer name, e.g. EMH, Theben"),
        "flag": related(of_type(DeviceType.manufacturer_flag), VK.ID, "3-letter manufacturer code (FLAG), e.g. THE"),
        "device_type": related(of_type(DeviceType.code), VK.CODE, "device type code, e.g. emh-casa"),
        "model": related(of_type(DeviceType.model), VK.TEXT, "device model, e.g. CASA"),
        "capability": related(of_type(DeviceType.capabilities), VK.TEXT, "a capability of the device type, e.g. taf7",
                              array=True),
    }


def _device_fields(model: Any) -> dict[str, Field]:
    return {
        "device_id": column(model.device_id, VK.ID, "DIN 43849 device ID", nullable=False),
        **_device_type_fields(model),
        "firmware": column(model.firmware_key, VK.VERSION, "firmware version, compared semantically: 2.1 < 2.10"),
        "firmware_version": column(model.firmware_version, VK.CODE, "firmware version as text (for like)"),
    }


def _common(model: Any) -> dict[str, Field]:
    return {
        "leading": column(model.leading, VK.BOOL, "gridgate leads this record (false: mirrored)", nullable=False),
        "source_system": column(model.source_system, VK.CODE, "the external system a mirrored record comes from"),
        "created_at": column(model.created_at, VK.DATETIME, "when the record was created", nullable=False),
        "updated_at": column(model.updated_at, VK.DATETIME, "when the record last changed", nullable=False),
    }


# -- gateways ---------------------------------------------------------------------------------

def _gw(hops: tuple[Hop, ...], attr: Any) -> Any:
    return via(Gateway.id, hops, attr)


def _gw_partner(build: Builder, at: Any) -> ColumnElement[bool]:
    melo = (GW_METER, METER_MELO)
    return or_(
        _gw((GW_CP,), ConnectionPoint.grid_operator)(build, at),
        _gw(melo, MeteringPoint.grid_operator)(build, at),
        _gw(melo, MeteringPoint.msb)(build, at),
        _gw((*melo, MELO_MALO), MarketLocation.supplier)(build, at),
    )


def _meter_count(build: Builder, at: Any) -> ColumnElement[bool]:
    count = (select(func.count()).select_from(MeterGateway)
             .where(MeterGateway.gateway_id == Gateway.id, current(MeterGateway, at)).scalar_subquery())
    return build(count)


GATEWAY_FIELDS: dict[str, Field] = {
    **_device_fields(Gateway),
    "state": column(Gateway.state, VK.ENUM, "lifecycle state", choices=STATES, nullable=False),
    "segment": column(Gateway.network_segment, VK.CODE, "network segment (mobile cell / APN group)"),
    "wan_address": column(Gateway.wan_address, VK.CODE, "WAN address"),
    "wakeup_address": column(Gateway.wakeup_address, VK.CODE, "wake-up address"),
    "state_changed_at": column(Gateway.state_changed_at, VK.DATETIME, "when the state last changed",
                               nullable=False),
    **_common(Gateway),
    "connection_point": related(_gw((GW_CP,), ConnectionPoint.code), VK.CODE, "code of the current connection point"),
    "grid_area": related(_gw((GW_CP,), ConnectionPoint.grid_area), VK.CODE, "grid area of the current place"),
    "postcode": related(_gw((GW_CP,), ConnectionPoint.postcode), VK.CODE, "postcode of the current connection point"),
    "city": related(_gw((GW_CP,), ConnectionPoint.city), VK.TEXT, "city of the current connection point"),
    "grid_operator": related(_gw((GW_CP,), ConnectionPoint.grid_operator), VK.CODE,
                             "grid operator (13 digits) of the current connection point"),
    "meter": related(_gw((GW_METER,), Meter.device_id), VK.ID, "device ID of a current meter"),
    "meter_count": related(_meter_count, VK.INT, "number of current meters"),
    "melo": related(_gw((GW_METER, METER_MELO), MeteringPoint.melo), VK.ID, "a MeLo measured by a current meter"),
    "malo": related(_gw((GW_METER, METER_MELO, MELO_MALO), MarketLocation.malo), VK.CODE,
                    "a MaLo served by a current meter"),
    "market_partner": related(_gw_partner, VK.CODE,
                              "market partner (13 digits) served: grid operator, MSB or supplier"),
    "cls_module": related(_gw((GW_CLS,), ClsModule.device_id), VK.ID, "device ID of a current CLS module"),
}


# -- meters -----------------------------------------------------------------------------------

def _meter(hops: tuple[Hop, ...], attr: Any) -> Any:
    return via(Meter.id, hops, attr)


METER_FIELDS: dict[str, Field] = {
    **_device_fields(Meter),
    "lmn_type": column(Meter.lmn_type, VK.ENUM, "LMN connection: wired or wireless", choices=LMN_TYPES,
                       nullable=False),
    "calibration_date": column(Meter.calibration_date, VK.DATE, "calibration date"),
    "calibration_valid_until": column(Meter.calibration_valid_until, VK.DATE,
                                      "end of calibration validity (Eichfrist); e.g. < today+90d"),
    "has_mk0": column(Meter.mk0_ciphertext.is_not(None), VK.BOOL, "a master key MK0 is stored", nullable=False),
    **_common(Meter),
    "gateway": related(_meter((METER_GW,), Gateway.device_id), VK.ID, "device ID of the current gateway"),
    "gateway_state": related(_meter((METER_GW,), Gateway.state), VK.ENUM, "state of the current gateway",
                             choices=STATES),
    "segment": related(_meter((METER_GW,), Gateway.network_segment), VK.CODE,
                       "network segment of the current gateway"),
    "connection_point": related(_meter((METER_GW, GW_CP), ConnectionPoint.code), VK.CODE,
                                "connection point of the current gateway"),
    "grid_area": related(_meter((METER_GW, GW_CP), ConnectionPoint.grid_area), VK.CODE,
                         "grid area of the current gateway's place"),
    "postcode": related(_meter((METER_GW, GW_CP), ConnectionPoint.postcode), VK.CODE,
                        "postcode of the current gateway's place"),
    "city": related(_meter((METER_GW, GW_CP), ConnectionPoint.city), VK.TEXT, "city of the current gateway's place"),
    "melo": related(_meter((METER_MELO,), MeteringPoint.melo), VK.ID, "a current MeLo of the meter"),
    "malo": related(_meter((METER_MELO, MELO_MALO), MarketLocation.malo), VK.CODE, "a current MaLo of the meter"),
}


# -- CLS modules, locations, partners -----------------------------------------------------------

CLS_FIELDS: dict[str, Field] = {
    **_device_fields(ClsModule),
    "controls": column(ClsModule.controls, VK.TEXT, "what the module switches"),
    **_common(ClsModule),
    "gateway": related(via(ClsModule.id, (CLS_GW,), Gateway.device_id), VK.ID, "device ID of the current gateway"),
}

CONNECTION_POINT_FIELDS: dict[str, Field] = {
    "code": column(ConnectionPoint.code, VK.CODE, "connection point code", nullable=False),
    "street": column(ConnectionPoint.street, VK.TEXT, "street"),
    "house_number": column(ConnectionPoint.house_number, VK.CODE, "house number"),
    "postcode": column(ConnectionPoint.postcode, VK.CODE, "postcode"),
    "city": column(ConnectionPoint.city, VK.TEXT, "city"),
    "grid_area": column(ConnectionPoint.grid_area, VK.CODE, "grid area"),
    "grid_operator": column(ConnectionPoint.grid_operator, VK.CODE, "grid operator (13 digits)"),
    **_common(ConnectionPoint),
    "gateway": related(via(ConnectionPoint.id, (CP_GW,), Gateway.device_id), VK.ID, "device ID of a current gateway"),
}

METERING_POINT_FIELDS: dict[str, Field] = {
    "melo": column(MeteringPoint.melo, VK.ID, "MeLo (33 characters)", nullable=False),
    "direction": column(MeteringPoint.direction, VK.ENUM, "consumption or feed_in", choices=DIRECTIONS,
                        nullable=False),
    "grid_operator": column(MeteringPoint.grid_operator, VK.CODE, "grid operator (13 digits)"),
    "msb": column(MeteringPoint.msb, VK.CODE, "metering point operator (13 digits)"),
    **_common(MeteringPoint),
    "meter": related(via(MeteringPoint.id, (MELO_METER,), Meter.device_id), VK.ID, "device ID of the current meter"),
    "malo": related(via(MeteringPoint.id, (MELO_MALO,), MarketLocation.malo), VK.CODE, "a current MaLo"),
}

MARKET_LOCATION_FIELDS: dict[str, Field] = {
    "malo": column(MarketLocation.malo, VK.CODE, "MaLo (11 digits)", nullable=False),
    "direction": column(MarketLocation.direction, VK.ENUM, "consumption or feed_in", choices=DIRECTIONS,
                        nullable=False),
    "supplier": column(MarketLocation.supplier, VK.CODE, "supplier (13 digits)"),
    **_common(MarketLocation),
    "melo": related(via(MarketLocation.id, (MALO_MELO,), MeteringPoint.melo), VK.ID, "a current MeLo"),
}

MARKET_PARTNER_FIELDS: dict[str, Field] = {
    "mp_id": column(MarketPartner.mp_id, VK.CODE, "market partner ID (13 digits)", nullable=False),
    "name": column(MarketPartner.name, VK.TEXT, "name", nullable=False),
    "role": column(MarketPartner.roles, VK.ENUM, "a role: MSB, VNB, LF, DV, CLS", choices=PARTNER_ROLES,
                   nullable=False, array=True),
    **_common(MarketPartner),
}


@dataclass(frozen=True)
class FilterEntity:
    name: str
    model: Any
    fields: dict[str, Field]
    type_names: frozenset[str]


ENTITIES: dict[str, FilterEntity] = {
    e.name: e for e in (
        FilterEntity("gateway", Gateway, GATEWAY_FIELDS, frozenset({"gateway", "smgw"})),
        FilterEntity("meter", Meter, METER_FIELDS, frozenset({"meter"})),
        FilterEntity("cls_module", ClsModule, CLS_FIELDS, frozenset({"cls_module", "cls"})),
        FilterEntity("connection_point", ConnectionPoint, CONNECTION_POINT_FIELDS, frozenset({"connection_point"})),
        FilterEntity("metering_point", MeteringPoint, METERING_POINT_FIELDS, frozenset({"metering_point", "melo"})),
        FilterEntity("market_location", MarketLocation, MARKET_LOCATION_FIELDS,
                     frozenset({"market_location", "malo"})),
        FilterEntity("market_partner", MarketPartner, MARKET_PARTNER_FIELDS, frozenset({"market_partner"})),
    )
}
