"""Keyset-paginated, sortable, filtered lists of every master data entity.

A page is ``ORDER BY <sort>, id LIMIT n`` continued with ``(sort, id) > (last sort, last id)``:
constant cost per page however deep, and stable while rows are added.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Integer, String, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from core.errors import InvalidInput
from domain.devices.models import ClsModule, Gateway, Meter
from domain.filters.iterate import FilterArg, resolve
from domain.locations.models import ConnectionPoint, MarketLocation, MeteringPoint
from domain.partners.models import MarketPartner
from domain.records import InvalidCursor, decode_cursor, encode_cursor

MAX_LIMIT = 1000


def _text(col: Any) -> Any:
    return func.coalesce(col, literal("", String))


def _date(col: Any) -> Any:
    return func.coalesce(col, literal(date(1, 1, 1), Date))


def _version(col: Any) -> Any:
    return func.coalesce(col, literal([], ARRAY(Integer)))


@dataclass(frozen=True)
class Listing:
    entity: str
    model: Any
    sorts: dict[str, Any]
    default_sort: str
    device: bool = False


def _device_sorts(model: Any) -> dict[str, Any]:
    return {"device_id": model.device_id, "firmware": _version(model.firmware_key),
            "created_at": model.created_at, "updated_at": model.updated_at}


LISTINGS: dict[str, Listing] = {x.entity: x for x in (
    Listing("gateway", Gateway, {**_device_sorts(Gateway), "state": Gateway.state,
                                 "segment": _text(Gateway.network_segment),
                                 "state_changed_at": Gateway.state_changed_at}, "device_id", device=True),
    Listing("meter", Meter, {**_device_sorts(Meter), "calibration_valid_until": _date(Meter.calibration_valid_until),
                             "lmn_type": Meter.lmn_type}, "device_id", device=True),
    Listing("cls_module", ClsModule, _device_sorts(ClsModule), "device_id", device=True),
    Listing("connection_point", ConnectionPoint, {
        "code": ConnectionPoint.code, "postcode": _text(ConnectionPoint.postcode), "city": _text(ConnectionPoint.city),
        "grid_area": _text(ConnectionPoint.grid_area), "updated_at": ConnectionPoint.updated_at}, "code"),
    Listing("metering_point", MeteringPoint, {"melo": MeteringPoint.melo, "updated_at": MeteringPoint.updated_at},
            "melo"),
    Listing("market_location", MarketLocation, {"malo": MarketLocation.malo,
                                                "updated_at": MarketLocation.updated_at}, "malo"),
    Listing("market_partner", MarketPartner, {"mp_id": MarketPartner.mp_id, "name": MarketPartner.name,
                                              "updated_at": MarketPartner.updated_at}, "mp_id"),
)}


def _fits(value: Any, expr: Any) -> bool:
    """A cursor value of the type the sort expression compares (else PostgreSQL would refuse it)."""
    python_type = expr.type.python_type if not isinstance(expr.type, ARRAY) else list
    if python_type is list:
        return isinstance(value, list) and all(isinstance(v, int) for v in value)
    if python_type is datetime:
        return isinstance(value, datetime)
    if python_type is date:
        return isinstance(value, date) and not isinstance(value, datetime)
    return isinstance(value, python_type)


def sort_spec(listing: Listing, sort: str | None) -> tuple[str, Any, bool]:
    name = (sort or listing.default_sort).strip()
    descending = name.startswith("-")
    name = name.lstrip("-+")
    if name not in listing.sorts:
        raise InvalidInput(f"cannot sort {listing.entity}s by {name!r}; sortable: {', '.join(listing.sorts)}",
                           code="invalid_sort")
    return name, listing.sorts[name], descending


async def page(session: AsyncSession, entity: str, *, filter: FilterArg = None, saved: str | None = None,
               sort: str | None = None, after: str | None = None, limit: int = 50, at: datetime | None = None
               ) -> tuple[list[Any], str | None]:
    """One page of ``entity`` rows and the cursor of the next page (None at the end)."""
    listing = LISTINGS[entity]
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1..{MAX_LIMIT}", code="invalid_limit")
    model = listing.model
    name, expr, descending = sort_spec(listing, sort)
    cond = await resolve(session, entity, filter, saved=saved, at=at)
    stmt: Any = select(model, expr.label("_sort")).where(cond)
    if listing.device:
        stmt = stmt.options(joinedload(model.device_type))
    if after:
        sorted_by, value, last_id = decode_cursor(after, 3)
        if sorted_by != name or not isinstance(last_id, int) or not _fits(value, expr):
            raise InvalidCursor("this ?after= cursor belongs to another sort order or list; start from the first page")
        key = tuple_(expr, model.id)
        stmt = stmt.where(key < tuple_(literal(value, expr.type), last_id) if descending
                          else key > tuple_(literal(value, expr.type), last_id))
    order = (expr.desc(), model.id.desc()) if descending else (expr.asc(), model.id.asc())
    rows = (await session.execute(stmt.order_by(*order).limit(limit + 1))).all()
    items = [r[0] for r in rows[:limit]]
    next_after = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_after = encode_cursor((name, last[1], last[0].id))
    return items, next_after
