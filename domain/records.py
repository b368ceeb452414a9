"""What every master data record shares: data ownership, audited changes, keyset cursors, and the
mapping of database constraint violations to reason codes."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Boolean, String, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.errors import Conflict, InvalidInput
from domain.audit.repository import diff, record


class DataOwnership:
    """Whether gridgate leads this record (datenführend) or mirrors an external system.

    Mirrored records keep their mirrored fields read-only through the API: they change only
    through imports that name the external system.
    """

    # Server-generated values (updated_at, computed firmware keys) come back with RETURNING, so an
    # async caller can read them after a flush without a lazy load.
    __mapper_args__ = {"eager_defaults": True}

    leading: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, server_default=true())
    source_system: Mapped[str | None] = mapped_column(String(100), nullable=True)


class MirroredFieldReadOnly(Conflict):
    code = "mirrored_field_read_only"


class AlreadyExists(Conflict):
    code = "already_exists"


class InUse(Conflict):
    code = "in_use"


def check_mirrored(obj: DataOwnership, changed: Iterable[str], mirrored: frozenset[str], what: str) -> None:
    """Refuse API changes of fields an external system leads."""
    if obj.leading:
        return
    blocked = sorted(set(changed) & mirrored)
    if blocked:
        raise MirroredFieldReadOnly(
            f"{what} is mirrored from {obj.source_system or 'an external system'}; "
            f"{', '.join(blocked)} change only through imports",
            details={"fields": blocked, "source_system": obj.source_system},
        )


def record_change(session: AsyncSession, action: str, object_type: str, object_id: str,
                  old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """Audit old -> new; returns False (and records nothing) for an update that changes nothing."""
    changes = diff(old, new)
    if action == "update" and not changes:
        return False
    record(session, action, object_type, object_id, changes)
    return True


async def flush_or_conflict(session: AsyncSession, what: str) -> None:
    """Flush and turn constraint violations into reason codes (races after the service's checks)."""
    try:
        await session.flush()
    except IntegrityError as err:
        raise conflict_from(err, what) from None


class AssignmentOverlap(Conflict):
    """Two validity periods of one device's assignments overlap (the exclusion constraint of the
    assignment tables, or the topology service's own check)."""

    code = "assignment_overlap"


def conflict_from(err: IntegrityError, what: str) -> Conflict | InvalidInput:
    sqlstate = getattr(err.orig, "sqlstate", None)
    if sqlstate == "23505":
        return AlreadyExists(f"{what} already exists")
    if sqlstate == "23P01":
        return AssignmentOverlap(f"{what} overlaps an existing assignment of the same device")
    if sqlstate == "23503":
        return InUse(f"{what} is still referenced by other records")
    if sqlstate == "23514":
        constraint = getattr(getattr(err.orig, "diag", None), "constraint_name", None)
        return InvalidInput(f"{what} violates the consistency rule {constraint}", code="constraint_violated")
    return Conflict(f"{what}: {str(err.orig).splitlines()[0]}")


# -- keyset cursors --------------------------------------------------------------------------

class InvalidCursor(InvalidInput):
    code = "invalid_cursor"


def encode_cursor(values: tuple[Any, ...]) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, datetime | date):
            return {"t": v.isoformat()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    raw = json.dumps([plain(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> tuple[Any, ...]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != size:
            raise ValueError("wrong length")
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidCursor(f"invalid ?after= cursor: {err}") from None

    def typed(v: Any) -> Any:
        if isinstance(v, dict) and "t" in v:
            text = str(v["t"])
            return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
        return v

    return tuple(typed(v) for v in values)


# -- response fields every record shares -------------------------------------------------------

class RecordOut(BaseModel):
    """Ownership and audit columns of a record in API responses."""

    model_config = ConfigDict(from_attributes=True)

    leading: bool = Field(description="gridgate leads this record (datenführend); false: mirrored")
    source_system: str | None = Field(default=None, description="the external system a mirrored record comes from")
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


class StrictIn(BaseModel):
    """Base of request bodies: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def apply_update(
    session: AsyncSession,
    obj: Any,
    changes: Mapping[str, Any],
    *,
    object_type: str,
    object_id: str,
    snapshot: Callable[[Any], dict[str, Any]],
    mirrored: frozenset[str] = frozenset(),
    setter: Callable[[Any, str, Any], None] | None = None,
) -> bool:
    """Apply API changes (values as the snapshot shows them) to ``obj``: refuse mirrored fields,
    record old -> new. Returns whether anything changed."""
    old = snapshot(obj)
    changed = [k for k, v in changes.items() if old.get(k) != v]
    check_mirrored(obj, changed, mirrored, f"{object_type} {object_id}")
    for key in changed:
        (setter or _setattr)(obj, key, changes[key])
    return record_change(session, "update", object_type, object_id, old, snapshot(obj))


def _setattr(obj: Any, key: str, value: Any) -> None:
    setattr(obj, key, value)
