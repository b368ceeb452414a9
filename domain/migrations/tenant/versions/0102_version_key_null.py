"""version keys of missing firmware versions are NULL

0100 computed ``{0,0,0,0}`` for a NULL version (``NULL || array`` is the array), so "firmware <
x" matched gateways without a known version. Generated expressions cannot be altered before
PostgreSQL 17, so the columns are dropped and added again.

Revision ID: 0102
Revises: 0101
Create Date: 2026-11-28 10:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0102'
down_revision: str | Sequence[str] | None = '0101'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [("gateways", "firmware_key", "firmware_version"), ("meters", "firmware_key", "firmware_version"),
           ("cls_modules", "firmware_key", "firmware_version"), ("firmware_versions", "version_key", "version")]


def _key(source: str, null_safe: bool) -> str:
    key = (f"(string_to_array(substring({source} from '[0-9]+(?:\\.[0-9]+)*'), '.')::integer[]"
           " || '{0,0,0,0}'::integer[])[1:4]")
    return f"CASE WHEN {source} IS NULL THEN NULL ELSE {key} END" if null_safe else key


def _recreate(null_safe: bool) -> None:
    for table, column, source in COLUMNS:
        op.drop_column(table, column)
        op.add_column(table, sa.Column(column, postgresql.ARRAY(sa.Integer()), sa.Computed(_key(source, null_safe)),
                                       nullable=True))


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
