"""EMT readout requests record the delivery the gateway started; the readout outbox is kept

The gateway delivers readouts (on demand, first, final, meter exchange) to the EMT itself
(docs/protocol.md 10.9, 10.10, 14); the GWA only triggers them and records the acknowledgement. An
EMT readout request now keeps which evaluation profile was delivered (profile, TAF, gg:reason), the
delivery's x-CID and the time of the values.

``readout_outbox`` is not dropped here: workflows started before this change may still store a
container there on their old branch (docs/processes.md, "Readouts before the gateway delivered them
itself"). A later migration drops it once none of them can be running.

Revision ID: 0630
Revises: 0500
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0630"
down_revision: str | Sequence[str] | None = "0500"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "emt_readout_requests"


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("profile_id", sa.String(length=120), nullable=True))
    op.add_column(TABLE, sa.Column("taf", sa.Integer(), nullable=True))
    op.add_column(TABLE, sa.Column("reason", sa.String(length=32), nullable=True))
    op.add_column(TABLE, sa.Column("delivery_ref", sa.String(length=64), nullable=True))
    op.add_column(TABLE, sa.Column("values_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in ("values_at", "delivery_ref", "reason", "taf", "profile_id"):
        op.drop_column(TABLE, column)
