"""Saving, changing and deleting named filters. A filter is compiled before it is saved, so a
saved filter never fails later for syntax (fields may still be renamed by a migration)."""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput, NotFound
from domain.filters import repository
from domain.filters.compiler import compile_filter, entity
from domain.filters.models import SavedFilter
from domain.records import record_change

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class FilterNotFound(NotFound):
    code = "filter_not_found"


def _snapshot(f: SavedFilter) -> dict[str, str]:
    return {"entity": f.entity, "expression": f.expression, "description": f.description}


async def get(session: AsyncSession, name: str) -> SavedFilter:
    found = await repository.get_by_name(session, name)
    if found is None:
        raise FilterNotFound(f"no saved filter named {name!r}")
    return found


async def save(session: AsyncSession, name: str, entity_name: str, expression: str,
               description: str = "") -> tuple[SavedFilter, bool]:
    """Create or replace the filter ``name``. Returns (filter, created)."""
    if not NAME_RE.fullmatch(name or ""):
        raise InvalidInput(f"invalid filter name {name!r}: letters, digits, '_', '.', '-' (max 100)",
                           code="invalid_filter_name")
    entity(entity_name)
    compile_filter(entity_name, expression)
    existing = await repository.get_by_name(session, name)
    if existing is None:
        saved = SavedFilter(name=name, entity=entity_name, expression=expression, description=description)
        session.add(saved)
        record_change(session, "create", "saved_filter", name, None, _snapshot(saved))
        await session.flush()
        return saved, True
    old = _snapshot(existing)
    existing.entity, existing.expression, existing.description = entity_name, expression, description
    record_change(session, "update", "saved_filter", name, old, _snapshot(existing))
    await session.flush()
    return existing, False


async def delete(session: AsyncSession, name: str) -> None:
    found = await get(session, name)
    record_change(session, "delete", "saved_filter", name, _snapshot(found), None)
    await session.delete(found)
    await session.flush()
