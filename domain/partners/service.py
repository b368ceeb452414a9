"""Maintaining market partners; checking partner references of other records."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput, NotFound
from domain import validators as v
from domain.partners import repository
from domain.partners.models import PARTNER_ROLES, MarketPartner
from domain.partners.schemas import MarketPartnerCreate, MarketPartnerUpdate
from domain.records import AlreadyExists, apply_update, flush_or_conflict, record_change

MIRRORED = frozenset({"name", "roles", "contact_name", "contact_email", "contact_phone"})


class MarketPartnerNotFound(NotFound):
    code = "market_partner_not_found"


class UnknownMarketPartner(InvalidInput):
    code = "unknown_market_partner"


def snapshot(p: MarketPartner) -> dict[str, Any]:
    return {"name": p.name, "roles": list(p.roles), "contact_name": p.contact_name,
            "contact_email": p.contact_email, "contact_phone": p.contact_phone, "endpoints": list(p.endpoints)}


def _roles(roles: list[str]) -> list[str]:
    normal = sorted({r.strip().upper() for r in roles})
    for role in normal:
        v.choice(role, PARTNER_ROLES, "role")
    return normal


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("roles") is not None:
        data["roles"] = _roles(data["roles"])
    if data.get("contact_email"):
        data["contact_email"] = v.email(data["contact_email"])
    if data.get("endpoints") is not None:
        data["endpoints"] = [dict(e) for e in data["endpoints"]]
    for key in ("name", "contact_name", "contact_phone"):
        if data.get(key) is not None:
            data[key] = v.text(data[key], 200, key)
    return data


async def get(session: AsyncSession, mp_id: str) -> MarketPartner:
    found = await repository.by_mp_id(session, mp_id)
    if found is None:
        raise MarketPartnerNotFound(f"no market partner {mp_id!r}")
    return found


async def require_partners(session: AsyncSession, refs: dict[str, str | None]) -> None:
    """Every named partner reference (field -> 13-digit ID) must exist."""
    wanted = {val for val in refs.values() if val}
    for val in wanted:
        v.mp_id(val)
    missing = wanted - await repository.existing_mp_ids(session, wanted)
    if missing:
        fields = sorted(k for k, val in refs.items() if val in missing)
        raise UnknownMarketPartner(f"unknown market partner {', '.join(sorted(missing))} ({', '.join(fields)})",
                                   details={"fields": fields})


async def create(session: AsyncSession, body: MarketPartnerCreate) -> MarketPartner:
    mp_id = v.mp_id(body.mp_id)
    if await repository.by_mp_id(session, mp_id):
        raise AlreadyExists(f"market partner {mp_id} already exists")
    data = _clean(body.model_dump(exclude={"mp_id"}))
    partner = MarketPartner(mp_id=mp_id, **data)
    session.add(partner)
    record_change(session, "create", "market_partner", mp_id, None, snapshot(partner))
    await flush_or_conflict(session, f"market partner {mp_id}")
    return partner


async def update(session: AsyncSession, mp_id: str, body: MarketPartnerUpdate) -> MarketPartner:
    partner = await get(session, mp_id)
    raw = body.model_dump(exclude_unset=True)
    for required in ("name", "roles", "endpoints"):
        if required in raw and raw[required] is None:
            raise InvalidInput(f"{required} cannot be empty", code="invalid_input")
    apply_update(session, partner, _clean(raw), object_type="market_partner", object_id=mp_id,
                 snapshot=snapshot, mirrored=MIRRORED)
    await flush_or_conflict(session, f"market partner {mp_id}")
    return partner


async def delete(session: AsyncSession, mp_id: str) -> None:
    partner = await get(session, mp_id)
    record_change(session, "delete", "market_partner", mp_id, snapshot(partner), None)
    await session.delete(partner)
    await flush_or_conflict(session, f"market partner {mp_id}")
