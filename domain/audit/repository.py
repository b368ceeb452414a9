"""Recording and reading audit entries. Callers pass their session: the change and its audit
entry commit or roll back together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import current_actor, current_request_id
from domain.audit.models import AuditEntry, PlatformAuditEntry


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return str(value)


def diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any]:
    """Field-wise ``{"field": {"old": ..., "new": ...}}`` for fields that differ."""
    old = old or {}
    new = new or {}
    out: dict[str, Any] = {}
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            out[key] = {"old": _jsonable(old.get(key)), "new": _jsonable(new.get(key))}
    return out


def record(
    session: AsyncSession,
    action: str,
    object_type: str,
    object_id: str | int,
    changes: Mapping[str, Any] | None = None,
    *,
    platform: bool = False,
) -> None:
    cls = PlatformAuditEntry if platform else AuditEntry
    session.add(
        cls(
            actor=current_actor(),
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            changes=_jsonable(dict(changes or {})),
            request_id=current_request_id(),
        )
    )


async def history(
    session: AsyncSession,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> Sequence[AuditEntry]:
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if object_type:
        stmt = stmt.where(AuditEntry.object_type == object_type)
    if object_id:
        stmt = stmt.where(AuditEntry.object_id == object_id)
    if after is not None:
        stmt = stmt.where(AuditEntry.id < after)
    return (await session.scalars(stmt)).all()


async def count_entries(session: AsyncSession) -> int:
    """How many audit entries the session's (tenant) database holds."""
    count: int | None = await session.scalar(select(func.count()).select_from(AuditEntry))
    return int(count or 0)
