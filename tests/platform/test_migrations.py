"""Migrations run from empty to head, and the models agree with them (no pending autogenerate)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import URL, MetaData, create_engine, inspect, pool

from core.db import Databases, create_database, drop_database
from domain import migrate
from domain.meterdata.partitions import is_partition
from domain.models import ControlBase, TenantBase


def _not_a_partition(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and name is not None and is_partition(name))


def _pending_changes(url: URL, metadata: MetaData) -> list[Any]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": _not_a_partition})
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


async def test_fresh_tenant_database_migrates_from_empty_to_head(dbs: Databases) -> None:
    name = f"{dbs.control_db}_mig_fresh"
    await create_database(dbs.url, name)
    try:
        url = dbs.tenant_url(name)
        applied_before, heads = await asyncio.to_thread(migrate.current_heads_sync, "tenant", url)
        assert applied_before == set()
        await migrate.upgrade("tenant", url)
        applied, heads = await asyncio.to_thread(migrate.current_heads_sync, "tenant", url)
        assert applied == heads and heads
        tables = await asyncio.to_thread(lambda: inspect(create_engine(url, poolclass=pool.NullPool)).get_table_names())
        assert set(TenantBase.metadata.tables) <= set(tables)
        # Running it again is a no-op.
        await migrate.upgrade("tenant", url)
        assert await asyncio.to_thread(_pending_changes, url, TenantBase.metadata) == []
    finally:
        await drop_database(dbs.url, name)


async def test_control_database_is_at_head_and_matches_models(dbs: Databases) -> None:
    applied, heads = await asyncio.to_thread(migrate.current_heads_sync, "control", dbs.url)
    assert applied == heads
    assert await asyncio.to_thread(_pending_changes, dbs.url, ControlBase.metadata) == []
