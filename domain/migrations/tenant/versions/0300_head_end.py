"""head-end: connection registry, node heartbeats, communication history, gateway events

Revision ID: 0300
Revises: 0001
Create Date: 2026-11-28 10:37:35.310895
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0300'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('gateway_communications',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('gateway_id', sa.String(length=14), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('command', sa.String(length=40), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=True),
    sa.Column('path', sa.String(length=400), nullable=True),
    sa.Column('correlation_id', sa.String(length=45), nullable=True),
    sa.Column('command_id', sa.String(length=128), nullable=True),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('result', sa.String(length=40), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('bytes_out', sa.Integer(), nullable=False),
    sa.Column('bytes_in', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_communications'))
    )
    op.create_index(op.f('ix_gateway_communications_correlation_id'), 'gateway_communications', ['correlation_id'], unique=False)
    op.create_index('ix_gateway_communications_gateway_at', 'gateway_communications', ['gateway_id', 'at', 'id'], unique=False)
    op.create_table('gateway_connections',
    sa.Column('gateway_id', sa.String(length=14), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('connected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_activity_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('peer', sa.String(length=64), nullable=False),
    sa.Column('certificate_serial', sa.String(length=80), nullable=False),
    sa.PrimaryKeyConstraint('gateway_id', name=op.f('pk_gateway_connections'))
    )
    op.create_index(op.f('ix_gateway_connections_node_id'), 'gateway_connections', ['node_id'], unique=False)
    op.create_table('gateway_events',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('gateway_id', sa.String(length=14), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('vendor_code', sa.String(length=40), nullable=True),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('meter_id', sa.String(length=14), nullable=True),
    sa.Column('log', sa.String(length=20), nullable=True),
    sa.Column('record', sa.BigInteger(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('correlation_id', sa.String(length=45), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_gateway_events_event_id'))
    )
    op.create_index(op.f('ix_gateway_events_code'), 'gateway_events', ['code'], unique=False)
    op.create_index('ix_gateway_events_gateway_time', 'gateway_events', ['gateway_id', 'occurred_at', 'id'], unique=False)
    op.create_table('headend_nodes',
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('contact_uri', sa.String(length=300), nullable=False),
    sa.PrimaryKeyConstraint('node_id', name=op.f('pk_headend_nodes'))
    )


def downgrade() -> None:
    op.drop_table('headend_nodes')
    op.drop_index('ix_gateway_events_gateway_time', table_name='gateway_events')
    op.drop_index(op.f('ix_gateway_events_code'), table_name='gateway_events')
    op.drop_table('gateway_events')
    op.drop_index(op.f('ix_gateway_connections_node_id'), table_name='gateway_connections')
    op.drop_table('gateway_connections')
    op.drop_index('ix_gateway_communications_gateway_at', table_name='gateway_communications')
    op.drop_index(op.f('ix_gateway_communications_correlation_id'), table_name='gateway_communications')
    op.drop_table('gateway_communications')
