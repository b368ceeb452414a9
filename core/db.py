"""Database URLs and engines: one control database, one database per tenant.

The control database holds the tenant registry, users and memberships. Each tenant's data lives in
its own database ``<control db>_t_<tenant>``; an engine for it is only handed out through
``Databases.tenant_engine`` after the caller resolved the tenant from the registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import sql
from sqlalchemy import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from core.config import Settings

DRIVER = "postgresql+psycopg"


def control_url(settings: Settings) -> URL:
    raw = settings.database_url or f"postgresql://postgres@127.0.0.1:{settings.embedded_pg_port}/gridgate"
    url = make_url(raw)
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+asyncpg"):
        url = url.set(drivername=DRIVER)
    if not url.database:
        url = url.set(database="gridgate")
    return url


def tenant_db_name(control_db: str, tenant: str) -> str:
    return f"{control_db}_t_{tenant}"


def with_database(url: URL, database: str) -> URL:
    return url.set(database=database)


def libpq_dsn(url: URL) -> str:
    """A libpq connection string for psycopg (administrative statements outside SQLAlchemy)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _database_exists_sync(url: URL, name: str) -> bool:
    with psycopg.connect(libpq_dsn(with_database(url, "postgres")), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None


def _create_database_sync(url: URL, name: str) -> None:
    with psycopg.connect(libpq_dsn(with_database(url, "postgres")), autocommit=True) as conn:
        stmt = sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0")
        conn.execute(stmt.format(sql.Identifier(name)))


def _drop_database_sync(url: URL, name: str) -> None:
    with psycopg.connect(libpq_dsn(with_database(url, "postgres")), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def database_exists(url: URL, name: str) -> bool:
    return await asyncio.to_thread(_database_exists_sync, url, name)


async def create_database(url: URL, name: str) -> None:
    await asyncio.to_thread(_create_database_sync, url, name)


async def drop_database(url: URL, name: str) -> None:
    await asyncio.to_thread(_drop_database_sync, url, name)


def ensure_control_database_sync(url: URL) -> bool:
    """Create the control database if missing. Returns True when it was created."""
    assert url.database
    if _database_exists_sync(url, url.database):
        return False
    try:
        _create_database_sync(url, url.database)
    except psycopg.errors.DuplicateDatabase:
        return False
    return True


def _engine(url: URL, pool_size: int) -> AsyncEngine:
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
    )


class Databases:
    """Engine registry for one process: the control engine and a cache of tenant engines."""

    def __init__(self, settings: Settings, *, tenant_pool_size: int = 5) -> None:
        self.settings = settings
        self.url = control_url(settings)
        self.control = _engine(self.url, pool_size=5)
        self.control_sessions = async_sessionmaker(self.control, expire_on_commit=False)
        self._tenant_engines: dict[str, AsyncEngine] = {}
        self._tenant_sessions: dict[str, async_sessionmaker[AsyncSession]] = {}
        self._tenant_pool_size = tenant_pool_size

    @property
    def control_db(self) -> str:
        assert self.url.database
        return self.url.database

    def tenant_url(self, db_name: str) -> URL:
        return with_database(self.url, db_name)

    def tenant_engine(self, db_name: str) -> AsyncEngine:
        engine = self._tenant_engines.get(db_name)
        if engine is None:
            engine = _engine(self.tenant_url(db_name), pool_size=self._tenant_pool_size)
            self._tenant_engines[db_name] = engine
            self._tenant_sessions[db_name] = async_sessionmaker(engine, expire_on_commit=False)
        return engine

    def tenant_sessionmaker(self, db_name: str) -> async_sessionmaker[AsyncSession]:
        self.tenant_engine(db_name)
        return self._tenant_sessions[db_name]

    @asynccontextmanager
    async def control_session(self) -> AsyncIterator[AsyncSession]:
        """A control-database session in a transaction, committed on success."""
        async with self.control_sessions() as session, session.begin():
            yield session

    async def forget_tenant(self, db_name: str) -> None:
        engine = self._tenant_engines.pop(db_name, None)
        self._tenant_sessions.pop(db_name, None)
        if engine is not None:
            await engine.dispose()

    async def dispose(self) -> None:
        for engine in self._tenant_engines.values():
            await engine.dispose()
        self._tenant_engines.clear()
        self._tenant_sessions.clear()
        await self.control.dispose()
