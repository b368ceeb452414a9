"""Creating and resolving tenants.

A tenant is a registry row in the control database plus resources of its own: a PostgreSQL
database with the tenant schema, a key-material folder, and what the caller adds as steps (the
Temporal namespace and schedules: ``operations.tenants``; the domain does not touch Temporal).
Creation is all or nothing: each step registers its undo, and the registry row is committed last,
so a failure half-way leaves nothing half-created.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db import Databases, create_database, database_exists, drop_database, tenant_db_name
from core.errors import Conflict, InvalidInput, NotFound
from domain import migrate
from domain.audit.repository import record
from domain.tenancy import repository
from domain.tenancy.models import TENANT_NAME_RE, Tenant

log = structlog.get_logger(__name__)


class TenantExists(Conflict):
    code = "tenant_exists"


class TenantNotFound(NotFound):
    code = "tenant_not_found"


@dataclass(frozen=True)
class TenantContext:
    """Everything a request or activity needs to act for one tenant, and nothing of another."""

    id: int
    name: str
    db_name: str
    namespace: str
    keys_dir: Path
    sessions: async_sessionmaker[AsyncSession]


def validate_tenant_name(name: str) -> str:
    if not TENANT_NAME_RE.fullmatch(name or ""):
        raise InvalidInput(
            f"invalid tenant name {name!r}: lower-case letter first, then 1-30 of a-z, 0-9, '-'",
            code="invalid_tenant_name",
        )
    return name


async def list_tenants(session: AsyncSession) -> Sequence[Tenant]:
    return (await session.scalars(select(Tenant).order_by(Tenant.name))).all()


async def get_tenant(session: AsyncSession, name: str) -> Tenant:
    tenant = await repository.by_name(session, name)
    if tenant is None:
        raise TenantNotFound(f"tenant {name!r} not found")
    return tenant


def context_for(dbs: Databases, tenant: Tenant) -> TenantContext:
    return TenantContext(
        id=tenant.id,
        name=tenant.name,
        db_name=tenant.db_name,
        namespace=tenant.namespace,
        keys_dir=Path(tenant.keys_dir),
        sessions=dbs.tenant_sessionmaker(tenant.db_name),
    )


async def resolve(dbs: Databases, name: str) -> TenantContext:
    async with dbs.control_sessions() as session:
        tenant = await get_tenant(session, name)
    return context_for(dbs, tenant)


Undo = Callable[[], Awaitable[None]]
# A resource of the tenant made by the caller: runs once the database and key folder exist, before
# the registry row commits; returns how to undo it (None: nothing to undo).
TenantStep = Callable[["TenantContext"], Awaitable[Undo | None]]


def namespace_of(settings: Settings, name: str) -> str:
    """The Temporal namespace of tenant ``name`` (one per tenant)."""
    return f"{settings.temporal_namespace_prefix}{name}"


async def create_tenant(
    dbs: Databases,
    settings: Settings,
    name: str,
    *,
    display_name: str = "",
    steps: Sequence[TenantStep] = (),
) -> Tenant:
    """Create tenant ``name`` with its database, key folder and the caller's ``steps``, or nothing
    at all: if a step fails, every earlier one is undone in reverse order."""
    validate_tenant_name(name)
    db_name = tenant_db_name(dbs.control_db, name)
    namespace = namespace_of(settings, name)
    keys_dir = settings.keys_path / name
    undo: list[Undo] = []
    bound = log.bind(tenant=name)

    async with dbs.control_sessions() as session, session.begin():
        # Serialise concurrent creations of the same name; released at commit/rollback.
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(name.encode())})
        if await session.scalar(select(Tenant.id).where(Tenant.name == name)) is not None:
            raise TenantExists(f"tenant {name!r} already exists")
        if await database_exists(dbs.url, db_name):
            raise TenantExists(
                f"database {db_name!r} already exists but belongs to no tenant; "
                "drop it or choose another name",
                code="tenant_database_exists",
            )
        if keys_dir.exists():
            raise TenantExists(
                f"key folder {keys_dir} already exists but belongs to no tenant; "
                "move it away or choose another name",
                code="tenant_keys_exist",
            )
        try:
            await create_database(dbs.url, db_name)
            undo.append(lambda: _drop_tenant_database(dbs, db_name))
            await migrate.upgrade("tenant", dbs.tenant_url(db_name))
            bound.info("tenant.database_ready", database=db_name)

            keys_dir.mkdir(parents=True, mode=0o700)
            undo.append(lambda: _remove_dir(keys_dir))

            tenant = Tenant(
                name=name, display_name=display_name or name, db_name=db_name, namespace=namespace,
                keys_dir=str(keys_dir),
            )
            session.add(tenant)
            await session.flush()
            record(session, "create", "tenant", name, {"database": db_name, "namespace": namespace},
                   platform=True)
            for make in steps:
                undo_step = await make(context_for(dbs, tenant))
                if undo_step is not None:
                    undo.append(undo_step)
        except BaseException:
            bound.warning("tenant.create_failed_rolling_back", steps=len(undo))
            for step in reversed(undo):
                try:
                    await step()
                except Exception:
                    bound.exception("tenant.rollback_step_failed")
            raise
    bound.info("tenant.created", database=db_name, namespace=namespace)
    return tenant


async def _drop_tenant_database(dbs: Databases, db_name: str) -> None:
    await dbs.forget_tenant(db_name)
    await drop_database(dbs.url, db_name)


async def _remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


async def migrate_all_tenants(dbs: Databases) -> list[str]:
    """Upgrade every registered tenant database to the code's heads. Returns the tenant names."""
    async with dbs.control_sessions() as session:
        tenants = await list_tenants(session)
    for tenant in tenants:
        await migrate.upgrade("tenant", dbs.tenant_url(tenant.db_name))
        log.info("tenant.migrated", tenant=tenant.name)
    return [t.name for t in tenants]
