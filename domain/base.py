"""Declarative bases for the two kinds of databases, the audit columns every write carries, and the
row count of an UPDATE/DELETE."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, DateTime, Executable, MetaData, String, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from core.context import current_actor

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ControlBase(DeclarativeBase):
    """Models of the control database (tenant registry, identities)."""

    metadata = MetaData(naming_convention=NAMING)


class TenantBase(DeclarativeBase):
    """Models of a tenant database. Never reachable without a resolved tenant."""

    metadata = MetaData(naming_convention=NAMING)


class Audited:
    """Who created and last changed a row, and when. Filled from the bound actor."""

    @declared_attr
    def created_at(cls) -> Mapped[datetime]:
        return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)

    @declared_attr
    def created_by(cls) -> Mapped[str]:
        return mapped_column(String(200), default=current_actor, nullable=False)

    @declared_attr
    def updated_at(cls) -> Mapped[datetime]:
        return mapped_column(
            DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
        )

    @declared_attr
    def updated_by(cls) -> Mapped[str]:
        return mapped_column(String(200), default=current_actor, onupdate=current_actor, nullable=False)


async def rows_changed(session: AsyncSession, statement: Executable) -> int:
    """Run an UPDATE or DELETE and return how many rows it changed. ``AsyncSession.execute`` is typed
    as returning ``Result``; for these statements it is the ``CursorResult`` that has ``rowcount``."""
    result = await session.execute(statement)
    if not isinstance(result, CursorResult):
        raise TypeError(f"{type(result).__name__} of {type(statement).__name__} has no row count")
    return result.rowcount
