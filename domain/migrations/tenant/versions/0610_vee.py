"""VEE: rule chains per market role, validation runs and findings, the queue of days to validate

Revision ID: 0610
Revises: 0600
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0610'
down_revision: str | Sequence[str] | None = '0600'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('vee_chains',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('rules', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vee_chains')),
    sa.UniqueConstraint('role', 'version', name='uq_vee_chains_role_version')
    )
    op.create_index('uq_vee_chains_active', 'vee_chains', ['role'], unique=True, postgresql_where='active')
    op.create_table('vee_runs',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('trigger', sa.String(length=10), nullable=False),
    sa.Column('workflow_id', sa.String(length=200), nullable=True),
    sa.Column('initiator', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('first_day', sa.Date(), nullable=True),
    sa.Column('last_day', sa.Date(), nullable=True),
    sa.Column('filter', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('chain_versions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('values', sa.BigInteger(), nullable=False),
    sa.Column('versions', sa.Integer(), nullable=False),
    sa.Column('findings', sa.Integer(), nullable=False),
    sa.Column('substitutes', sa.BigInteger(), nullable=False),
    sa.Column('missing', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("state IN ('running', 'completed', 'failed')", name=op.f('ck_vee_runs_state')),
    sa.CheckConstraint("trigger IN ('delivery', 'daily', 'rerun')", name=op.f('ck_vee_runs_trigger')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vee_runs')),
    sa.UniqueConstraint('workflow_id', name=op.f('uq_vee_runs_workflow_id'))
    )
    op.create_index('ix_vee_runs_started', 'vee_runs', ['started_at'], unique=False)
    op.create_table('vee_findings',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.Column('series_id', sa.BigInteger(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('rule_id', sa.String(length=40), nullable=False),
    sa.Column('severity', sa.String(length=8), nullable=False),
    sa.Column('slots', postgresql.ARRAY(sa.SmallInteger()), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.CheckConstraint("severity IN ('info', 'warning', 'error')", name=op.f('ck_vee_findings_severity')),
    sa.ForeignKeyConstraint(['run_id'], ['vee_runs.id'], name=op.f('fk_vee_findings_run_id_vee_runs')),
    sa.ForeignKeyConstraint(['series_id'], ['meter_series.id'], name=op.f('fk_vee_findings_series_id_meter_series')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vee_findings'))
    )
    op.create_index('ix_vee_findings_run', 'vee_findings', ['run_id'], unique=False)
    op.create_index('ix_vee_findings_series_day', 'vee_findings', ['series_id', 'day'], unique=False)
    op.create_table('vee_pending',
    sa.Column('series_id', sa.BigInteger(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['meter_series.id'], name=op.f('fk_vee_pending_series_id_meter_series')),
    sa.PrimaryKeyConstraint('series_id', 'day', name='pk_vee_pending')
    )


def downgrade() -> None:
    op.drop_table('vee_pending')
    op.drop_index('ix_vee_findings_series_day', table_name='vee_findings')
    op.drop_index('ix_vee_findings_run', table_name='vee_findings')
    op.drop_table('vee_findings')
    op.drop_index('ix_vee_runs_started', table_name='vee_runs')
    op.drop_table('vee_runs')
    op.drop_index('uq_vee_chains_active', table_name='vee_chains', postgresql_where='active')
    op.drop_table('vee_chains')
