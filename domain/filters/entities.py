"""The fields each entity can be filtered by: its own columns and those of its current
assignments (a gateway's connection point, a meter's gateway, ...). Documented in
docs/masterdata.md; keep both in step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select

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


def _exists(*where: Any, frm: Any) -> ColumnElement[bool]:
    return select(literal(1)).select_from(frm).where(*where).exists()


# -- building blocks --------------------------------------------------------------------------

def _device_type_fields(owner: Any) -> dict[str, Field]:
    def via(attr: Any) -> Any:
        return lambda build, at: owner.device_type_id.in_(select(DeviceType.id).where(build(attr)))

    return {
        "manufacturer": related(via(DeviceType.manufacturer), VK.TEXT, "manufacturer name, e.g. EMH, Theben"),
        "flag": related(via(DeviceType.manufacturer_flag), VK.ID, "3-letter manufacturer code (FLAG), e.g. THE"),
        "device_type": related(via(DeviceType.code), VK.TEXT, "device type code, e.g. emh-casa"),
        "model": related(via(DeviceType.model), VK.TEXT, "device model, e.g. CASA"),
        "capability": related(via(DeviceType.capabilities), VK.TEXT, "a capability of the device type, e.g. taf7",
                              array=True),
    }


def _device_fields(model: Any) -> dict[str, Field]:
    return {
        "device_id": column(model.device_id, VK.ID, "DIN 43849 device ID", nullable=False),
        **_device_type_fields(model),
        "firmware": column(model.firmware_key, VK.VERSION, "firmware version, compared semantically: 2.1 < 2.10"),
        "firmware_version": column(model.firmware_version, VK.TEXT, "firmware version as text (for like)"),
    }


def _common(model: Any) -> dict[str, Field]:
    return {
        "leading": column(model.leading, VK.BOOL, "gridgate leads this record (false: mirrored)", nullable=False),
        "source_system": column(model.source_system, VK.TEXT, "the external system a mirrored record comes from"),
        "created_at": column(model.created_at, VK.DATETIME, "when the record was created", nullable=False),
        "updated_at": column(model.updated_at, VK.DATETIME, "when the record last changed", nullable=False),
    }


def _cp_of_gateway(gateway_id: Any, at: Any, cond: ColumnElement[bool]) -> ColumnElement[bool]:
    return _exists(GatewayConnectionPoint.gateway_id == gateway_id, current(GatewayConnectionPoint, at), cond,
                   frm=GatewayConnectionPoint.__table__.join(
                       ConnectionPoint.__table__, ConnectionPoint.id == GatewayConnectionPoint.connection_point_id))


# -- gateways ---------------------------------------------------------------------------------

def _gw_cp(attr: Any) -> Any:
    return lambda build, at: _cp_of_gateway(Gateway.id, at, build(attr))


def _gw_meter(attr: Any) -> Any:
    def apply(build: Builder, at: Any) -> ColumnElement[bool]:
        return _exists(MeterGateway.gateway_id == Gateway.id, current(MeterGateway, at), build(attr),
                       frm=MeterGateway.__table__.join(Meter.__table__, Meter.id == MeterGateway.meter_id))
    return apply


def _gw_melo(attr: Any, *, malo: bool = False) -> Any:
    def apply(build: Builder, at: Any) -> ColumnElement[bool]:
        frm = MeterGateway.__table__.join(MeterMeteringPoint.__table__,
                                          MeterMeteringPoint.meter_id == MeterGateway.meter_id)
        frm = frm.join(MeteringPoint.__table__, MeteringPoint.id == MeterMeteringPoint.metering_point_id)
        where = [MeterGateway.gateway_id == Gateway.id, current(MeterGateway, at), current(MeterMeteringPoint, at)]
        if malo:
            frm = frm.join(MeteringPointMarketLocation.__table__,
                           MeteringPointMarketLocation.metering_point_id == MeteringPoint.id)
            frm = frm.join(MarketLocation.__table__,
                           MarketLocation.id == MeteringPointMarketLocation.market_location_id)
            where.append(current(MeteringPointMarketLocation, at))
        return _exists(*where, build(attr), frm=frm)
    return apply


def _gw_partner(build: Builder, at: Any) -> ColumnElement[bool]:
    return or_(
        _gw_cp(ConnectionPoint.grid_operator)(build, at),
        _gw_melo(MeteringPoint.grid_operator)(build, at),
        _gw_melo(MeteringPoint.msb)(build, at),
        _gw_melo(MarketLocation.supplier, malo=True)(build, at),
    )


def _gw_cls(attr: Any) -> Any:
    def apply(build: Builder, at: Any) -> ColumnElement[bool]:
        return _exists(ClsModuleGateway.gateway_id == Gateway.id, current(ClsModuleGateway, at), build(attr),
                       frm=ClsModuleGateway.__table__.join(ClsModule.__table__,
                                                           ClsModule.id == ClsModuleGateway.cls_module_id))
    return apply


def _meter_count(build: Builder, at: Any) -> ColumnElement[bool]:
    count = (select(func.count()).select_from(MeterGateway)
             .where(MeterGateway.gateway_id == Gateway.id, current(MeterGateway, at)).scalar_subquery())
    return build(count)


GATEWAY_FIELDS: dict[str, Field] = {
    **_device_fields(Gateway),
    "state": column(Gateway.state, VK.ENUM, "lifecycle state", choices=STATES, nullable=False),
    "segment": column(Gateway.network_segment, VK.TEXT, "network segment (mobile cell / APN group)"),
    "wan_address": column(Gateway.wan_address, VK.TEXT, "WAN address"),
    "wakeup_address": column(Gateway.wakeup_address, VK.TEXT, "wake-up address"),
    "state_changed_at": column(Gateway.state_changed_at, VK.DATETIME, "when the state last changed",
                               nullable=False),
    **_common(Gateway),
    "connection_point": related(_gw_cp(ConnectionPoint.code), VK.TEXT, "code of the current connection point"),
    "grid_area": related(_gw_cp(ConnectionPoint.grid_area), VK.TEXT, "grid area of the current connection point"),
    "postcode": related(_gw_cp(ConnectionPoint.postcode), VK.TEXT, "postcode of the current connection point"),
    "city": related(_gw_cp(ConnectionPoint.city), VK.TEXT, "city of the current connection point"),
    "grid_operator": related(_gw_cp(ConnectionPoint.grid_operator), VK.TEXT,
                             "grid operator (13 digits) of the current connection point"),
    "meter": related(_gw_meter(Meter.device_id), VK.ID, "device ID of a current meter"),
    "meter_count": related(_meter_count, VK.INT, "number of current meters"),
    "melo": related(_gw_melo(MeteringPoint.melo), VK.ID, "a MeLo measured by a current meter"),
    "malo": related(_gw_melo(MarketLocation.malo, malo=True), VK.TEXT, "a MaLo served by a current meter"),
    "market_partner": related(_gw_partner, VK.TEXT,
                              "market partner (13 digits) served: grid operator, MSB or supplier"),
    "cls_module": related(_gw_cls(ClsModule.device_id), VK.ID, "device ID of a current CLS module"),
}


# -- meters -----------------------------------------------------------------------------------

def _meter_gw(attr: Any) -> Any:
    def apply(build: Builder, at: Any) -> ColumnElement[bool]:
        return _exists(MeterGateway.meter_id == Meter.id, current(MeterGateway, at), build(attr),
                       frm=MeterGateway.__table__.join(Gateway.__table__, Gateway.id == MeterGateway.gateway_id))
    return apply


def _meter_cp(attr: Any) -> Any:
    def apply(build: Builder, at: Any) -> ColumnElement[bool]:
        return _exists(MeterGateway.meter_id == Meter.id, current(MeterGateway, at),
                       _cp_of_gateway(MeterGateway.gateway_id, at, build(attr)), frm=MeterGateway.__table__)
    return apply


def _meter_melo(attr: Any, *, malo: bool = False) -> Any:
    def apply(build: Builder, at: Any) -> ColumnElement[bool]:
        frm = MeterMeteringPoint.__table__.join(MeteringPoint.__table__,
                                                MeteringPoint.id == MeterMeteringPoint.metering_point_id)
        where = [MeterMeteringPoint.meter_id == Meter.id, current(MeterMeteringPoint, at)]
        if malo:
            frm = frm.join(MeteringPointMarketLocation.__table__,
                           MeteringPointMarketLocation.metering_point_id == MeteringPoint.id)
            frm = frm.join(MarketLocation.__table__,
                           MarketLocation.id == MeteringPointMarketLocation.market_location_id)
            where.append(current(MeteringPointMarketLocation, at))
        return _exists(*where, build(attr), frm=frm)
    return apply


METER_FIELDS: dict[str, Field] = {
    **_device_fields(Meter),
    "lmn_type": column(Meter.lmn_type, VK.ENUM, "LMN connection: wired or wireless", choices=LMN_TYPES,
                       nullable=False),
    "calibration_date": column(Meter.calibration_date, VK.DATE, "calibration date"),
    "calibration_valid_until": column(Meter.calibration_valid_until, VK.DATE,
                                      "end of calibration validity (Eichfrist); e.g. < today+90d"),
    "has_mk0": column(Meter.mk0_ciphertext.is_not(None), VK.BOOL, "a master key MK0 is stored", nullable=False),
    **_common(Meter),
    "gateway": related(_meter_gw(Gateway.device_id), VK.ID, "device ID of the current gateway"),
    "gateway_state": related(_meter_gw(Gateway.state), VK.ENUM, "state of the current gateway", choices=STATES),
    "segment": related(_meter_gw(Gateway.network_segment), VK.TEXT, "network segment of the current gateway"),
    "connection_point": related(_meter_cp(ConnectionPoint.code), VK.TEXT, "connection point of the current gateway"),
    "grid_area": related(_meter_cp(ConnectionPoint.grid_area), VK.TEXT, "grid area of the current gateway's place"),
    "postcode": related(_meter_cp(ConnectionPoint.postcode), VK.TEXT, "postcode of the current gateway's place"),
    "city": related(_meter_cp(ConnectionPoint.city), VK.TEXT, "city of the current gateway's place"),
    "melo": related(_meter_melo(MeteringPoint.melo), VK.ID, "a current MeLo of the meter"),
    "malo": related(_meter_melo(MarketLocation.malo, malo=True), VK.TEXT, "a current MaLo of the meter"),
}


# -- CLS modules, locations, partners -----------------------------------------------------------

def _cls_gw(attr: Any) -> Any:
    def apply(build: Builder, at: Any) -> ColumnElement[bool]:
        return _exists(ClsModuleGateway.cls_module_id == ClsModule.id, current(ClsModuleGateway, at), build(attr),
                       frm=ClsModuleGateway.__table__.join(Gateway.__table__,
                                                           Gateway.id == ClsModuleGateway.gateway_id))
    return apply


CLS_FIELDS: dict[str, Field] = {
    **_device_fields(ClsModule),
    "controls": column(ClsModule.controls, VK.TEXT, "what the module switches"),
    **_common(ClsModule),
    "gateway": related(_cls_gw(Gateway.device_id), VK.ID, "device ID of the current gateway"),
}


def _cp_gw(attr: Any) -> Any:
    def apply(build: Builder, at: Any) -> ColumnElement[bool]:
        return _exists(GatewayConnectionPoint.connection_point_id == ConnectionPoint.id,
                       current(GatewayConnectionPoint, at), build(attr),
                       frm=GatewayConnectionPoint.__table__.join(
                           Gateway.__table__, Gateway.id == GatewayConnectionPoint.gateway_id))
    return apply


CONNECTION_POINT_FIELDS: dict[str, Field] = {
    "code": column(ConnectionPoint.code, VK.TEXT, "connection point code", nullable=False),
    "street": column(ConnectionPoint.street, VK.TEXT, "street"),
    "house_number": column(ConnectionPoint.house_number, VK.TEXT, "house number"),
    "postcode": column(ConnectionPoint.postcode, VK.TEXT, "postcode"),
    "city": column(ConnectionPoint.city, VK.TEXT, "city"),
    "grid_area": column(ConnectionPoint.grid_area, VK.TEXT, "grid area"),
    "grid_operator": column(ConnectionPoint.grid_operator, VK.TEXT, "grid operator (13 digits)"),
    **_common(ConnectionPoint),
    "gateway": related(_cp_gw(Gateway.device_id), VK.ID, "device ID of a current gateway"),
}


def _melo_rel(model: Any, attr: Any, own: Any, other: Any) -> Any:
    def apply(build: Builder, at: Any) -> ColumnElement[bool]:
        return _exists(own, current(model, at), build(attr), frm=model.__table__.join(attr.class_.__table__, other))
    return apply


METERING_POINT_FIELDS: dict[str, Field] = {
    "melo": column(MeteringPoint.melo, VK.ID, "MeLo (33 characters)", nullable=False),
    "direction": column(MeteringPoint.direction, VK.ENUM, "consumption or feed_in", choices=DIRECTIONS,
                        nullable=False),
    "grid_operator": column(MeteringPoint.grid_operator, VK.TEXT, "grid operator (13 digits)"),
    "msb": column(MeteringPoint.msb, VK.TEXT, "metering point operator (13 digits)"),
    **_common(MeteringPoint),
    "meter": related(_melo_rel(MeterMeteringPoint, Meter.device_id,
                               MeterMeteringPoint.metering_point_id == MeteringPoint.id,
                               Meter.id == MeterMeteringPoint.meter_id), VK.ID, "device ID of the current meter"),
    "malo": related(_melo_rel(MeteringPointMarketLocation, MarketLocation.malo,
                              MeteringPointMarketLocation.metering_point_id == MeteringPoint.id,
                              MarketLocation.id == MeteringPointMarketLocation.market_location_id),
                    VK.TEXT, "a current MaLo"),
}

MARKET_LOCATION_FIELDS: dict[str, Field] = {
    "malo": column(MarketLocation.malo, VK.TEXT, "MaLo (11 digits)", nullable=False),
    "direction": column(MarketLocation.direction, VK.ENUM, "consumption or feed_in", choices=DIRECTIONS,
                        nullable=False),
    "supplier": column(MarketLocation.supplier, VK.TEXT, "supplier (13 digits)"),
    **_common(MarketLocation),
    "melo": related(_melo_rel(MeteringPointMarketLocation, MeteringPoint.melo,
                              MeteringPointMarketLocation.market_location_id == MarketLocation.id,
                              MeteringPoint.id == MeteringPointMarketLocation.metering_point_id),
                    VK.ID, "a current MeLo"),
}

MARKET_PARTNER_FIELDS: dict[str, Field] = {
    "mp_id": column(MarketPartner.mp_id, VK.TEXT, "market partner ID (13 digits)", nullable=False),
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
