"""Connection points, metering points (MeLo) and market locations (MaLo): validated records whose
partner references must exist."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from domain import validators as v
from domain.locations import repository
from domain.locations.models import DIRECTIONS, ConnectionPoint, MarketLocation, MeteringPoint
from domain.locations.schemas import (
    ConnectionPointCreate,
    ConnectionPointUpdate,
    MarketLocationCreate,
    MarketLocationUpdate,
    MeteringPointCreate,
    MeteringPointUpdate,
)
from domain.partners.service import require_partners
from domain.records import AlreadyExists, apply_update, flush_or_conflict, record_change

L = TypeVar("L", ConnectionPoint, MeteringPoint, MarketLocation)


class LocationNotFound(NotFound):
    code = "location_not_found"


_SPECS: dict[type, dict[str, Any]] = {
    ConnectionPoint: {
        "type": "connection_point", "key": "code", "normalise": v.code,
        "fields": ("street", "house_number", "postcode", "city", "grid_area", "grid_operator"),
        "partners": ("grid_operator",),
    },
    MeteringPoint: {
        "type": "metering_point", "key": "melo", "normalise": v.melo,
        "fields": ("direction", "grid_operator", "msb"), "partners": ("grid_operator", "msb"),
    },
    MarketLocation: {
        "type": "market_location", "key": "malo", "normalise": v.malo,
        "fields": ("direction", "supplier"), "partners": ("supplier",),
    },
}
# Everything but the key is led by the external system when a location is mirrored.
MIRRORED = {model: frozenset(spec["fields"]) for model, spec in _SPECS.items()}


def snapshot(obj: Any) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in _SPECS[type(obj)]["fields"]}


def snapshot_fields(model: type) -> tuple[str, ...]:
    """The fields the change log shows for ``model`` (imports build create entries from them)."""
    return tuple(_SPECS[model]["fields"])


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for key, fn in (("street", lambda x: v.text(x, 200, "street")), ("house_number", lambda x: v.text(x, 20, "house")),
                    ("city", lambda x: v.text(x, 100, "city")), ("postcode", v.postcode),
                    ("grid_area", v.segment)):
        if out.get(key) == "":
            out[key] = None
        if out.get(key) is not None:
            out[key] = fn(out[key])
    if out.get("direction") is not None:
        v.choice(out["direction"], DIRECTIONS, "direction")
    return out


async def get(session: AsyncSession, model: type[L], key: str, *, for_update: bool = False) -> L:
    spec = _SPECS[model]
    found = await repository.by_key(session, model, key.strip(), for_update=for_update)
    if found is None and spec["key"] == "melo":
        found = await repository.by_key(session, model, key.strip().upper(), for_update=for_update)
    if found is None:
        raise LocationNotFound(f"no {spec['type'].replace('_', ' ')} {key!r}")
    return found


async def create(session: AsyncSession, model: type[L], body: ConnectionPointCreate | MeteringPointCreate
                 | MarketLocationCreate) -> L:
    spec = _SPECS[model]
    data = body.model_dump()
    key = spec["normalise"](data.pop(spec["key"]))
    if await repository.by_key(session, model, key):
        raise AlreadyExists(f"{spec['type'].replace('_', ' ')} {key} already exists")
    data = _clean(data)
    await require_partners(session, {p: data.get(p) for p in spec["partners"]})
    obj = model(**{spec["key"]: key}, **data)
    session.add(obj)
    record_change(session, "create", spec["type"], key, None, snapshot(obj))
    await flush_or_conflict(session, f"{spec['type'].replace('_', ' ')} {key}")
    return obj


async def update(session: AsyncSession, model: type[L], key: str, body: ConnectionPointUpdate
                 | MeteringPointUpdate | MarketLocationUpdate) -> L:
    spec = _SPECS[model]
    obj = await get(session, model, key, for_update=True)
    changes = _clean(body.model_dump(exclude_unset=True))
    if "direction" in changes and changes["direction"] is None:
        changes.pop("direction")
    await require_partners(session, {p: changes.get(p) for p in spec["partners"] if p in changes})
    name = getattr(obj, spec["key"])
    apply_update(session, obj, changes, object_type=spec["type"], object_id=name, snapshot=snapshot,
                 mirrored=MIRRORED[model])
    await flush_or_conflict(session, f"{spec['type'].replace('_', ' ')} {name}")
    return obj


async def delete(session: AsyncSession, model: type[L], key: str) -> None:
    spec = _SPECS[model]
    obj = await get(session, model, key, for_update=True)
    name = getattr(obj, spec["key"])
    record_change(session, "delete", spec["type"], name, snapshot(obj), None)
    await session.delete(obj)
    await flush_or_conflict(session, f"{spec['type'].replace('_', ' ')} {name} (it has assignments)")
