"""Schema migrations (Alembic) for the control database and for every tenant database.

Two migration trees live in domain/migrations: ``control`` and ``tenant``. Several areas may add
independent branches to the tenant tree, so we always upgrade to ``heads``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, create_engine, pool

import domain

MIGRATIONS = Path(domain.__file__).parent / "migrations"


def alembic_config(kind: str, url: URL) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS / kind))
    cfg.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade_sync(kind: str, url: URL) -> None:
    cfg = alembic_config(kind, url)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")
    finally:
        engine.dispose()


def current_heads_sync(kind: str, url: URL) -> tuple[set[str], set[str]]:
    """(revisions applied in the database, head revisions of the code)."""
    cfg = alembic_config(kind, url)
    script = ScriptDirectory.from_config(cfg)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            applied = set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
    return applied, set(script.get_heads())


async def upgrade(kind: str, url: URL) -> None:
    await asyncio.to_thread(upgrade_sync, kind, url)
