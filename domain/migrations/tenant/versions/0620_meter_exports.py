"""meter data exports: exports with their content, the (series, day or reading, version) each carried
(exactly once per recipient and channel), webhook receivers

Revision ID: 0620
Revises: 0600
Create Date: 2026-12-02 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0620'
down_revision: str | Sequence[str] | None = '0600'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('webhook_receivers',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('secret', sa.LargeBinary(), nullable=False),
    sa.Column('market_partner', sa.String(length=13), nullable=False),
    sa.Column('series_ids', postgresql.ARRAY(sa.BigInteger()), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['market_partner'], ['market_partners.mp_id'],
                            name=op.f('fk_webhook_receivers_market_partner_market_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_receivers')),
    sa.UniqueConstraint('name', name=op.f('uq_webhook_receivers_name'))
    )
    op.create_table('meter_exports',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=240), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('sender', sa.String(length=13), nullable=True),
    sa.Column('recipient', sa.String(length=64), nullable=False),
    sa.Column('receiver_id', sa.BigInteger(), nullable=True),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('interchange_ref', sa.String(length=14), nullable=True),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('items', sa.Integer(), nullable=False),
    sa.Column('corrections', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('content_type', sa.String(length=60), nullable=True),
    sa.Column('content', sa.LargeBinary(), nullable=True),
    sa.Column('content_encoding', sa.String(length=10), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('workflow_id', sa.String(length=200), nullable=True),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.CheckConstraint("kind IN ('mscons', 'csv', 'webhook')", name=op.f('ck_meter_exports_kind')),
    sa.CheckConstraint("state IN ('ready', 'sent', 'failed')", name=op.f('ck_meter_exports_state')),
    sa.ForeignKeyConstraint(['receiver_id'], ['webhook_receivers.id'],
                            name=op.f('fk_meter_exports_receiver_id_webhook_receivers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meter_exports')),
    sa.UniqueConstraint('key', name=op.f('uq_meter_exports_key'))
    )
    op.create_index('ix_meter_exports_recipient', 'meter_exports', ['recipient', 'created_at'], unique=False)
    op.create_index('ix_meter_exports_open', 'meter_exports', ['kind', 'recipient', 'id'], unique=False,
                    postgresql_where="state <> 'sent'")
    op.create_table('meter_export_items',
    sa.Column('export_id', sa.BigInteger(), nullable=False),
    sa.Column('recipient', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('item', sa.String(length=7), nullable=False),
    sa.Column('series_id', sa.BigInteger(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('corrects', sa.Integer(), nullable=True),
    sa.Column('document', sa.String(length=35), nullable=True),
    sa.CheckConstraint("item IN ('day', 'reading')", name=op.f('ck_meter_export_items_item')),
    sa.ForeignKeyConstraint(['export_id'], ['meter_exports.id'],
                            name=op.f('fk_meter_export_items_export_id_meter_exports'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['series_id'], ['meter_series.id'],
                            name=op.f('fk_meter_export_items_series_id_meter_series')),
    sa.PrimaryKeyConstraint('export_id', 'item', 'series_id', 'at', 'version', name='pk_meter_export_items')
    )
    op.create_index('uq_meter_export_items_once', 'meter_export_items',
                    ['recipient', 'kind', 'item', 'series_id', 'at', 'version'], unique=True,
                    postgresql_where="kind <> 'csv'")
    op.create_index('ix_meter_export_items_series', 'meter_export_items', ['series_id', 'day'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_meter_export_items_series', table_name='meter_export_items')
    op.drop_index('uq_meter_export_items_once', table_name='meter_export_items', postgresql_where="kind <> 'csv'")
    op.drop_table('meter_export_items')
    op.drop_index('ix_meter_exports_open', table_name='meter_exports', postgresql_where="state <> 'sent'")
    op.drop_index('ix_meter_exports_recipient', table_name='meter_exports')
    op.drop_table('meter_exports')
    op.drop_table('webhook_receivers')
