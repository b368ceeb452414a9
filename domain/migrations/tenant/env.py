"""Alembic environment for the tenant database(s). Run through domain.migrate, never by hand."""

from alembic import context
from sqlalchemy import create_engine, pool

from domain.meterdata.partitions import is_partition
from domain.models import TenantBase

config = context.config
target_metadata = TenantBase.metadata


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Monthly partitions are made at run time, not by migrations: autogenerate leaves them alone."""
    return not (type_ == "table" and name is not None and is_partition(name))


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True,
                          include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, compare_type=True,
                          include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
