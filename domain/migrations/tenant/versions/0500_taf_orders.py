"""taf orders, gateway profile history, readout outbox and EMT readout requests

Revision ID: 0500
Revises: 0001 (depends on 0100)
Create Date: 2026-11-28 10:50:01.650997
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0500'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = '0100'  # gateways, metering points, market partners


def upgrade() -> None:
    op.create_table('readout_outbox',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('recipient', sa.String(length=13), nullable=False),
    sa.Column('gateway_id', sa.String(length=14), nullable=False),
    sa.Column('meter_id', sa.String(length=14), nullable=False),
    sa.Column('metering_point', sa.String(length=33), nullable=True),
    sa.Column('profile_id', sa.String(length=120), nullable=True),
    sa.Column('reason', sa.String(length=24), nullable=False),
    sa.Column('container', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('workflow_id', sa.String(length=200), nullable=False),
    sa.Column('process_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("reason IN ('on_demand', 'first_readout', 'final_readout', 'meter_exchange_final', 'meter_exchange_initial')", name=op.f('ck_readout_outbox_reason')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_readout_outbox')),
    sa.UniqueConstraint('sha256', name=op.f('uq_readout_outbox_sha256'))
    )
    op.create_index(op.f('ix_readout_outbox_gateway_id'), 'readout_outbox', ['gateway_id'], unique=False)
    op.create_index('ix_readout_outbox_recipient', 'readout_outbox', ['recipient', 'id'], unique=False)
    op.create_table('emt_readout_requests',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('emt', sa.String(length=13), nullable=False),
    sa.Column('client_ref', sa.String(length=64), nullable=True),
    sa.Column('metering_point', sa.String(length=33), nullable=False),
    sa.Column('gateway_id', sa.String(length=14), nullable=False),
    sa.Column('meter_id', sa.String(length=14), nullable=False),
    sa.Column('registers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('error_type', sa.String(length=60), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('container_id', sa.BigInteger(), nullable=True),
    sa.Column('workflow_id', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('running', 'succeeded', 'failed')", name=op.f('ck_emt_readout_requests_state')),
    sa.ForeignKeyConstraint(['container_id'], ['readout_outbox.id'], name=op.f('fk_emt_readout_requests_container_id_readout_outbox')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_emt_readout_requests'))
    )
    op.create_index(op.f('ix_emt_readout_requests_emt'), 'emt_readout_requests', ['emt'], unique=False)
    op.create_index('uq_emt_readout_requests_client_ref', 'emt_readout_requests', ['emt', 'client_ref'], unique=True, postgresql_where='client_ref IS NOT NULL')
    op.create_table('taf_orders',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('metering_point_id', sa.BigInteger(), nullable=False),
    sa.Column('taf', sa.Integer(), nullable=False),
    sa.Column('emt_id', sa.BigInteger(), nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('terminated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('termination_reason', sa.Text(), nullable=True),
    sa.Column('replaced_by', sa.BigInteger(), nullable=True),
    sa.Column('external_ref', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.CheckConstraint("status IN ('active', 'terminated')", name=op.f('ck_taf_orders_status')),
    sa.CheckConstraint('taf BETWEEN 1 AND 14', name=op.f('ck_taf_orders_taf')),
    sa.CheckConstraint('valid_to IS NULL OR valid_to > valid_from', name=op.f('ck_taf_orders_period')),
    sa.ForeignKeyConstraint(['emt_id'], ['market_partners.id'], name=op.f('fk_taf_orders_emt_id_market_partners')),
    sa.ForeignKeyConstraint(['metering_point_id'], ['metering_points.id'], name=op.f('fk_taf_orders_metering_point_id_metering_points')),
    sa.ForeignKeyConstraint(['replaced_by'], ['taf_orders.id'], name=op.f('fk_taf_orders_replaced_by_taf_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_taf_orders'))
    )
    op.create_index('ix_taf_orders_emt_status', 'taf_orders', ['emt_id', 'status'], unique=False)
    op.create_index(op.f('ix_taf_orders_metering_point_id'), 'taf_orders', ['metering_point_id'], unique=False)
    op.create_index('uq_taf_orders_active', 'taf_orders', ['metering_point_id', 'taf'], unique=True, postgresql_where="status = 'active'")
    op.create_table('gateway_profiles',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('gateway_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=14), nullable=False),
    sa.Column('profile_id', sa.String(length=120), nullable=False),
    sa.Column('content', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('taf_order_id', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('written_by', sa.String(length=200), nullable=True),
    sa.Column('ended_by', sa.String(length=200), nullable=True),
    sa.CheckConstraint("kind IN ('meter', 'communication', 'evaluation')", name=op.f('ck_gateway_profiles_kind')),
    sa.CheckConstraint("status IN ('active', 'superseded', 'terminated')", name=op.f('ck_gateway_profiles_status')),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], name=op.f('fk_gateway_profiles_gateway_id_gateways')),
    sa.ForeignKeyConstraint(['taf_order_id'], ['taf_orders.id'], name=op.f('fk_gateway_profiles_taf_order_id_taf_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_profiles'))
    )
    op.create_index('ix_gateway_profiles_gateway', 'gateway_profiles', ['gateway_id', 'valid_from'], unique=False)
    op.create_index(op.f('ix_gateway_profiles_taf_order_id'), 'gateway_profiles', ['taf_order_id'], unique=False)
    op.create_index('uq_gateway_profiles_active', 'gateway_profiles', ['gateway_id', 'kind', 'profile_id'], unique=True, postgresql_where="status = 'active'")


def downgrade() -> None:
    op.drop_index('uq_gateway_profiles_active', table_name='gateway_profiles', postgresql_where="status = 'active'")
    op.drop_index(op.f('ix_gateway_profiles_taf_order_id'), table_name='gateway_profiles')
    op.drop_index('ix_gateway_profiles_gateway', table_name='gateway_profiles')
    op.drop_table('gateway_profiles')
    op.drop_index('uq_taf_orders_active', table_name='taf_orders', postgresql_where="status = 'active'")
    op.drop_index(op.f('ix_taf_orders_metering_point_id'), table_name='taf_orders')
    op.drop_index('ix_taf_orders_emt_status', table_name='taf_orders')
    op.drop_table('taf_orders')
    op.drop_index('uq_emt_readout_requests_client_ref', table_name='emt_readout_requests', postgresql_where='client_ref IS NOT NULL')
    op.drop_index(op.f('ix_emt_readout_requests_emt'), table_name='emt_readout_requests')
    op.drop_table('emt_readout_requests')
    op.drop_index('ix_readout_outbox_recipient', table_name='readout_outbox')
    op.drop_index(op.f('ix_readout_outbox_gateway_id'), table_name='readout_outbox')
    op.drop_table('readout_outbox')
