"""processes and logbooks

Revision ID: 0400
Revises: 0001 (depends on 0100)
Create Date: 2026-11-28 10:42:05.385791
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0400'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = '0100'  # gateways


def upgrade() -> None:
    op.create_table('gateway_log_entries',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('gateway_id', sa.String(length=14), nullable=False),
    sa.Column('log', sa.String(length=12), nullable=False),
    sa.Column('record', sa.BigInteger(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('process_id', sa.String(length=40), nullable=True),
    sa.CheckConstraint("log IN ('system', 'calibration', 'consumer')", name=op.f('ck_gateway_log_entries_log')),
    sa.CheckConstraint('level BETWEEN 1 AND 4', name=op.f('ck_gateway_log_entries_level')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_log_entries')),
    sa.UniqueConstraint('gateway_id', 'log', 'record', name='uq_gateway_log_entries_record')
    )
    op.create_index('ix_gateway_log_entries_at', 'gateway_log_entries', ['at'], unique=False)
    op.create_index('ix_gateway_log_entries_level_at', 'gateway_log_entries', ['level', 'at'], unique=False)
    op.create_table('processes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('initiator', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('target_kind', sa.String(length=10), nullable=False),
    sa.Column('target_text', sa.Text(), nullable=True),
    sa.Column('retry_of', sa.String(length=40), nullable=True),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('failure_threshold', sa.Float(), nullable=False),
    sa.Column('failure_min_samples', sa.Integer(), nullable=False),
    sa.Column('pause_reason', sa.Text(), nullable=True),
    sa.Column('workflow_id', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.CheckConstraint("state IN ('running', 'paused', 'completed', 'failed', 'cancelled')", name=op.f('ck_processes_state')),
    sa.ForeignKeyConstraint(['retry_of'], ['processes.id'], name=op.f('fk_processes_retry_of_processes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_processes'))
    )
    op.create_index(op.f('ix_processes_state'), 'processes', ['state'], unique=False)
    op.create_index(op.f('ix_processes_type'), 'processes', ['type'], unique=False)
    op.create_table('process_targets',
    sa.Column('process_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('gateway_pk', sa.BigInteger(), nullable=False),
    sa.Column('gateway_id', sa.String(length=14), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('workflow_id', sa.String(length=200), nullable=True),
    sa.Column('error_type', sa.String(length=60), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')", name=op.f('ck_process_targets_state')),
    sa.ForeignKeyConstraint(['gateway_pk'], ['gateways.id'], name=op.f('fk_process_targets_gateway_pk_gateways')),
    sa.ForeignKeyConstraint(['process_id'], ['processes.id'], name=op.f('fk_process_targets_process_id_processes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('process_id', 'seq', name=op.f('pk_process_targets'))
    )
    op.create_index(op.f('ix_process_targets_gateway_id'), 'process_targets', ['gateway_id'], unique=False)
    op.create_index('ix_process_targets_state', 'process_targets', ['process_id', 'state', 'seq'], unique=False)
    op.create_index('uq_process_targets_active_gateway', 'process_targets', ['gateway_pk'], unique=True, postgresql_where="state IN ('pending', 'running')")


def downgrade() -> None:
    op.drop_index('uq_process_targets_active_gateway', table_name='process_targets', postgresql_where="state IN ('pending', 'running')")
    op.drop_index('ix_process_targets_state', table_name='process_targets')
    op.drop_index(op.f('ix_process_targets_gateway_id'), table_name='process_targets')
    op.drop_table('process_targets')
    op.drop_index(op.f('ix_processes_type'), table_name='processes')
    op.drop_index(op.f('ix_processes_state'), table_name='processes')
    op.drop_table('processes')
    op.drop_index('ix_gateway_log_entries_level_at', table_name='gateway_log_entries')
    op.drop_index('ix_gateway_log_entries_at', table_name='gateway_log_entries')
    op.drop_table('gateway_log_entries')
