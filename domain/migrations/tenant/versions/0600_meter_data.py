"""meter data: series, day versions (partitioned by month), readings, deliveries, grid state

Revision ID: 0600
Revises: 0500
Create Date: 2026-12-02 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0600'
down_revision: str | Sequence[str] | None = '0500'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = '0100'  # metering points, market partners


def upgrade() -> None:
    op.create_table('meter_series',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('metering_point_id', sa.BigInteger(), nullable=False),
    sa.Column('obis', sa.String(length=20), nullable=False),
    sa.Column('market_partner', sa.String(length=13), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('unit', sa.SmallInteger(), nullable=False),
    sa.Column('scaler', sa.SmallInteger(), nullable=False),
    sa.Column('period_s', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('interval', 'register', 'grid')", name=op.f('ck_meter_series_kind')),
    sa.ForeignKeyConstraint(['market_partner'], ['market_partners.mp_id'],
                            name=op.f('fk_meter_series_market_partner_market_partners')),
    sa.ForeignKeyConstraint(['metering_point_id'], ['metering_points.id'],
                            name=op.f('fk_meter_series_metering_point_id_metering_points')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meter_series')),
    sa.UniqueConstraint('metering_point_id', 'obis', 'market_partner', name='uq_meter_series_key')
    )
    op.create_table('meter_days',
    sa.Column('series_id', sa.BigInteger(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('layer', sa.SmallInteger(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('values', postgresql.ARRAY(sa.BigInteger()), nullable=False),
    sa.Column('quality', sa.LargeBinary(), nullable=False),
    sa.Column('status_common', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('status_slots', postgresql.ARRAY(sa.SmallInteger()), nullable=True),
    sa.Column('status_words', postgresql.ARRAY(sa.BigInteger()), nullable=True),
    sa.Column('notes', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.CheckConstraint('layer IN (0, 1, 2)', name=op.f('ck_meter_days_layer')),
    sa.ForeignKeyConstraint(['series_id'], ['meter_series.id'], name=op.f('fk_meter_days_series_id_meter_series')),
    sa.PrimaryKeyConstraint('series_id', 'day', 'version', name='pk_meter_days'),
    postgresql_partition_by='RANGE (day)'
    )
    op.create_table('meter_readings',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('series_id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('layer', sa.SmallInteger(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.BigInteger(), nullable=False),
    sa.Column('quality', sa.SmallInteger(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('meter_id', sa.String(length=14), nullable=True),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('notes', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.CheckConstraint('layer IN (0, 1, 2)', name=op.f('ck_meter_readings_layer')),
    sa.ForeignKeyConstraint(['series_id'], ['meter_series.id'],
                            name=op.f('fk_meter_readings_series_id_meter_series')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meter_readings')),
    sa.UniqueConstraint('series_id', 'at', 'version', name='uq_meter_readings_version')
    )
    op.create_table('meter_deliveries',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('gateway_id', sa.String(length=14), nullable=True),
    sa.Column('recipient', sa.String(length=13), nullable=False),
    sa.Column('delivery_ref', sa.String(length=64), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('taf', sa.SmallInteger(), nullable=True),
    sa.Column('profile_id', sa.String(length=120), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('outcome', sa.String(length=10), nullable=False),
    sa.Column('refusal', sa.String(length=40), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('values_stored', sa.Integer(), nullable=False),
    sa.Column('first_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('conflicts', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.CheckConstraint("outcome IN ('stored', 'duplicate', 'conflict', 'refused')",
                       name=op.f('ck_meter_deliveries_outcome')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meter_deliveries'))
    )
    op.create_index('ix_meter_deliveries_gateway', 'meter_deliveries', ['gateway_id', 'received_at'], unique=False)
    op.create_index('ix_meter_deliveries_received', 'meter_deliveries', ['received_at', 'id'], unique=False)
    op.create_index('uq_meter_deliveries_sha256', 'meter_deliveries', ['sha256'], unique=True,
                    postgresql_where="outcome IN ('stored', 'conflict')")
    op.create_table('grid_measurements',
    sa.Column('series_id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.BigInteger(), nullable=False),
    sa.Column('threshold', sa.Boolean(), nullable=False),
    sa.Column('segment', sa.String(length=64), nullable=True),
    sa.Column('delivery_id', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['series_id'], ['meter_series.id'],
                            name=op.f('fk_grid_measurements_series_id_meter_series')),
    sa.PrimaryKeyConstraint('series_id', 'at', name='pk_grid_measurements'),
    postgresql_partition_by='RANGE (at)'
    )
    op.create_index('ix_grid_measurements_segment', 'grid_measurements', ['segment', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_grid_measurements_segment', table_name='grid_measurements')
    op.drop_table('grid_measurements')
    op.drop_index('uq_meter_deliveries_sha256', table_name='meter_deliveries',
                  postgresql_where="outcome IN ('stored', 'conflict')")
    op.drop_index('ix_meter_deliveries_received', table_name='meter_deliveries')
    op.drop_index('ix_meter_deliveries_gateway', table_name='meter_deliveries')
    op.drop_table('meter_deliveries')
    op.drop_table('meter_readings')
    op.drop_table('meter_days')
    op.drop_table('meter_series')
