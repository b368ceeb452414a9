"""version keys STORED

PostgreSQL 18 makes generated columns VIRTUAL unless told otherwise: the version key was computed
with regular expressions on every read. STORED computes it once per write (and works on older
servers, which only know STORED).

Revision ID: 0103
Revises: 0102
Create Date: 2026-11-28 11:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0103'
down_revision: str | Sequence[str] | None = '0102'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [("gateways", "firmware_key", "firmware_version"), ("meters", "firmware_key", "firmware_version"),
           ("cls_modules", "firmware_key", "firmware_version"), ("firmware_versions", "version_key", "version")]


def _key(source: str) -> str:
    return (f"CASE WHEN {source} IS NULL THEN NULL ELSE (string_to_array(substring({source} from "
            "'[0-9]+(?:\\.[0-9]+)*'), '.')::integer[] || '{0,0,0,0}'::integer[])[1:4] END")


def _recreate(persisted: bool | None) -> None:
    for table, column, source in COLUMNS:
        op.drop_column(table, column)
        op.add_column(table, sa.Column(column, postgresql.ARRAY(sa.Integer()),
                                       sa.Computed(_key(source), persisted=persisted), nullable=True))


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(None)
