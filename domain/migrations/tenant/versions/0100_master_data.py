"""master data: catalogue, market partners, devices, locations, assignments, saved filters, imports

Revision ID: 0100
Revises: 0001
Create Date: 2026-11-28 10:27:48.926558
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0100'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Exclusion constraints on (device, validity period) need equality operators in GiST indexes.
    op.execute('CREATE EXTENSION IF NOT EXISTS btree_gist')
    op.create_table('device_types',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=60), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('manufacturer', sa.String(length=100), nullable=False),
    sa.Column('manufacturer_flag', sa.String(length=3), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('capabilities', postgresql.ARRAY(sa.String(length=40)), server_default=sa.text("'{}'::varchar[]"), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    sa.CheckConstraint("kind IN ('gateway', 'meter', 'cls')", name=op.f('ck_device_types_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_types')),
    sa.UniqueConstraint('code', name=op.f('uq_device_types_code'))
    )
    op.create_table('import_runs',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('file_name', sa.String(length=500), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_runs'))
    )
    op.create_table('market_partners',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('mp_id', sa.String(length=13), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('roles', postgresql.ARRAY(sa.String(length=10)), nullable=False),
    sa.Column('contact_name', sa.String(length=200), nullable=True),
    sa.Column('contact_email', sa.String(length=200), nullable=True),
    sa.Column('contact_phone', sa.String(length=50), nullable=True),
    sa.Column('endpoints', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    sa.CheckConstraint('cardinality(roles) > 0', name=op.f('ck_market_partners_roles_not_empty')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_partners')),
    sa.UniqueConstraint('mp_id', name=op.f('uq_market_partners_mp_id'))
    )
    op.create_table('saved_filters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('entity', sa.String(length=30), nullable=False),
    sa.Column('expression', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saved_filters')),
    sa.UniqueConstraint('name', name=op.f('uq_saved_filters_name'))
    )
    op.create_table('cls_modules',
    sa.Column('device_type_id', sa.Integer(), nullable=False),
    sa.Column('controls', sa.String(length=100), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('device_id', sa.String(length=14), nullable=False),
    sa.Column('firmware_version', sa.String(length=40), nullable=True),
    sa.Column('firmware_key', postgresql.ARRAY(sa.Integer()), sa.Computed("(string_to_array(substring(firmware_version from '[0-9]+(?:\\.[0-9]+)*'), '.')::integer[] || '{0,0,0,0}'::integer[])[1:4]"), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['device_type_id'], ['device_types.id'], name=op.f('fk_cls_modules_device_type_id_device_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cls_modules')),
    sa.UniqueConstraint('device_id', name=op.f('uq_cls_modules_device_id'))
    )
    op.create_index(op.f('ix_cls_modules_device_type_id'), 'cls_modules', ['device_type_id'], unique=False)
    op.create_table('connection_points',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('street', sa.String(length=200), nullable=True),
    sa.Column('house_number', sa.String(length=20), nullable=True),
    sa.Column('postcode', sa.String(length=5), nullable=True),
    sa.Column('city', sa.String(length=100), nullable=True),
    sa.Column('grid_area', sa.String(length=64), nullable=True),
    sa.Column('grid_operator', sa.String(length=13), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['grid_operator'], ['market_partners.mp_id'], name=op.f('fk_connection_points_grid_operator_market_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connection_points')),
    sa.UniqueConstraint('code', name=op.f('uq_connection_points_code'))
    )
    op.create_index(op.f('ix_connection_points_grid_area'), 'connection_points', ['grid_area'], unique=False)
    op.create_index(op.f('ix_connection_points_postcode'), 'connection_points', ['postcode'], unique=False)
    op.create_table('firmware_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_type_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('version_key', postgresql.ARRAY(sa.Integer()), sa.Computed("(string_to_array(substring(version from '[0-9]+(?:\\.[0-9]+)*'), '.')::integer[] || '{0,0,0,0}'::integer[])[1:4]"), nullable=True),
    sa.Column('released_on', sa.Date(), nullable=True),
    sa.Column('approved', sa.Boolean(), nullable=False),
    sa.Column('notes', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['device_type_id'], ['device_types.id'], name=op.f('fk_firmware_versions_device_type_id_device_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_firmware_versions')),
    sa.UniqueConstraint('device_type_id', 'version', name='uq_firmware_versions_type_version')
    )
    op.create_table('gateways',
    sa.Column('device_type_id', sa.Integer(), nullable=False),
    sa.Column('wan_address', sa.String(length=255), nullable=True),
    sa.Column('wakeup_address', sa.String(length=255), nullable=True),
    sa.Column('network_segment', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('state_changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('device_id', sa.String(length=14), nullable=False),
    sa.Column('firmware_version', sa.String(length=40), nullable=True),
    sa.Column('firmware_key', postgresql.ARRAY(sa.Integer()), sa.Computed("(string_to_array(substring(firmware_version from '[0-9]+(?:\\.[0-9]+)*'), '.')::integer[] || '{0,0,0,0}'::integer[])[1:4]"), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    sa.CheckConstraint("state IN ('in_stock', 'pre_personalized', 'personalized', 'installed', 'in_operation', 'deinstalled', 'faulty')", name=op.f('ck_gateways_state')),
    sa.ForeignKeyConstraint(['device_type_id'], ['device_types.id'], name=op.f('fk_gateways_device_type_id_device_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateways')),
    sa.UniqueConstraint('device_id', name=op.f('uq_gateways_device_id'))
    )
    op.create_index(op.f('ix_gateways_device_type_id'), 'gateways', ['device_type_id'], unique=False)
    op.create_index(op.f('ix_gateways_network_segment'), 'gateways', ['network_segment'], unique=False)
    op.create_index(op.f('ix_gateways_state'), 'gateways', ['state'], unique=False)
    op.create_table('market_locations',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('malo', sa.String(length=11), nullable=False),
    sa.Column('direction', sa.String(length=12), nullable=False),
    sa.Column('supplier', sa.String(length=13), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    sa.CheckConstraint("direction IN ('consumption', 'feed_in')", name=op.f('ck_market_locations_direction')),
    sa.ForeignKeyConstraint(['supplier'], ['market_partners.mp_id'], name=op.f('fk_market_locations_supplier_market_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_locations')),
    sa.UniqueConstraint('malo', name=op.f('uq_market_locations_malo'))
    )
    op.create_table('metering_points',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('melo', sa.String(length=33), nullable=False),
    sa.Column('direction', sa.String(length=12), nullable=False),
    sa.Column('grid_operator', sa.String(length=13), nullable=True),
    sa.Column('msb', sa.String(length=13), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    sa.CheckConstraint("direction IN ('consumption', 'feed_in')", name=op.f('ck_metering_points_direction')),
    sa.ForeignKeyConstraint(['grid_operator'], ['market_partners.mp_id'], name=op.f('fk_metering_points_grid_operator_market_partners')),
    sa.ForeignKeyConstraint(['msb'], ['market_partners.mp_id'], name=op.f('fk_metering_points_msb_market_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metering_points')),
    sa.UniqueConstraint('melo', name=op.f('uq_metering_points_melo'))
    )
    op.create_table('meters',
    sa.Column('device_type_id', sa.Integer(), nullable=False),
    sa.Column('calibration_date', sa.Date(), nullable=True),
    sa.Column('calibration_valid_until', sa.Date(), nullable=True),
    sa.Column('lmn_type', sa.String(length=10), nullable=False),
    sa.Column('mk0_ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('mk0_fingerprint', sa.LargeBinary(), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('device_id', sa.String(length=14), nullable=False),
    sa.Column('firmware_version', sa.String(length=40), nullable=True),
    sa.Column('firmware_key', postgresql.ARRAY(sa.Integer()), sa.Computed("(string_to_array(substring(firmware_version from '[0-9]+(?:\\.[0-9]+)*'), '.')::integer[] || '{0,0,0,0}'::integer[])[1:4]"), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    sa.CheckConstraint("lmn_type IN ('wired', 'wireless')", name=op.f('ck_meters_lmn_type')),
    sa.CheckConstraint('calibration_valid_until IS NULL OR calibration_date IS NULL OR calibration_valid_until >= calibration_date', name=op.f('ck_meters_calibration_order')),
    sa.ForeignKeyConstraint(['device_type_id'], ['device_types.id'], name=op.f('fk_meters_device_type_id_device_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meters')),
    sa.UniqueConstraint('device_id', name=op.f('uq_meters_device_id'))
    )
    op.create_index(op.f('ix_meters_calibration_valid_until'), 'meters', ['calibration_valid_until'], unique=False)
    op.create_index(op.f('ix_meters_device_type_id'), 'meters', ['device_type_id'], unique=False)
    op.create_table('assign_cls_gateway',
    sa.Column('cls_module_id', sa.BigInteger(), nullable=False),
    sa.Column('gateway_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    postgresql.ExcludeConstraint((sa.column('cls_module_id'), '='), (sa.text("tstzrange(valid_from, valid_to, '[)')"), '&&'), using='gist', name='ex_assign_cls_gateway_overlap'),
    sa.CheckConstraint('valid_to IS NULL OR valid_to > valid_from', name=op.f('ck_assign_cls_gateway_period')),
    sa.ForeignKeyConstraint(['cls_module_id'], ['cls_modules.id'], name=op.f('fk_assign_cls_gateway_cls_module_id_cls_modules')),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], name=op.f('fk_assign_cls_gateway_gateway_id_gateways')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assign_cls_gateway'))
    )
    op.create_index(op.f('ix_assign_cls_gateway_cls_module_id'), 'assign_cls_gateway', ['cls_module_id'], unique=False)
    op.create_index(op.f('ix_assign_cls_gateway_gateway_id'), 'assign_cls_gateway', ['gateway_id'], unique=False)
    op.create_table('assign_gateway_cp',
    sa.Column('gateway_id', sa.BigInteger(), nullable=False),
    sa.Column('connection_point_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    postgresql.ExcludeConstraint((sa.column('gateway_id'), '='), (sa.text("tstzrange(valid_from, valid_to, '[)')"), '&&'), using='gist', name='ex_assign_gateway_cp_overlap'),
    sa.CheckConstraint('valid_to IS NULL OR valid_to > valid_from', name=op.f('ck_assign_gateway_cp_period')),
    sa.ForeignKeyConstraint(['connection_point_id'], ['connection_points.id'], name=op.f('fk_assign_gateway_cp_connection_point_id_connection_points')),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], name=op.f('fk_assign_gateway_cp_gateway_id_gateways')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assign_gateway_cp'))
    )
    op.create_index(op.f('ix_assign_gateway_cp_connection_point_id'), 'assign_gateway_cp', ['connection_point_id'], unique=False)
    op.create_index(op.f('ix_assign_gateway_cp_gateway_id'), 'assign_gateway_cp', ['gateway_id'], unique=False)
    op.create_table('assign_melo_malo',
    sa.Column('metering_point_id', sa.BigInteger(), nullable=False),
    sa.Column('market_location_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    postgresql.ExcludeConstraint((sa.column('metering_point_id'), '='), (sa.column('market_location_id'), '='), (sa.text("tstzrange(valid_from, valid_to, '[)')"), '&&'), using='gist', name='ex_assign_melo_malo_overlap'),
    sa.CheckConstraint('valid_to IS NULL OR valid_to > valid_from', name=op.f('ck_assign_melo_malo_period')),
    sa.ForeignKeyConstraint(['market_location_id'], ['market_locations.id'], name=op.f('fk_assign_melo_malo_market_location_id_market_locations')),
    sa.ForeignKeyConstraint(['metering_point_id'], ['metering_points.id'], name=op.f('fk_assign_melo_malo_metering_point_id_metering_points')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assign_melo_malo'))
    )
    op.create_index(op.f('ix_assign_melo_malo_market_location_id'), 'assign_melo_malo', ['market_location_id'], unique=False)
    op.create_index(op.f('ix_assign_melo_malo_metering_point_id'), 'assign_melo_malo', ['metering_point_id'], unique=False)
    op.create_table('assign_meter_gateway',
    sa.Column('meter_id', sa.BigInteger(), nullable=False),
    sa.Column('gateway_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    postgresql.ExcludeConstraint((sa.column('meter_id'), '='), (sa.text("tstzrange(valid_from, valid_to, '[)')"), '&&'), using='gist', name='ex_assign_meter_gateway_overlap'),
    sa.CheckConstraint('valid_to IS NULL OR valid_to > valid_from', name=op.f('ck_assign_meter_gateway_period')),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], name=op.f('fk_assign_meter_gateway_gateway_id_gateways')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_assign_meter_gateway_meter_id_meters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assign_meter_gateway'))
    )
    op.create_index(op.f('ix_assign_meter_gateway_gateway_id'), 'assign_meter_gateway', ['gateway_id'], unique=False)
    op.create_index(op.f('ix_assign_meter_gateway_meter_id'), 'assign_meter_gateway', ['meter_id'], unique=False)
    op.create_table('assign_meter_melo',
    sa.Column('meter_id', sa.BigInteger(), nullable=False),
    sa.Column('metering_point_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('leading', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('source_system', sa.String(length=100), nullable=True),
    postgresql.ExcludeConstraint((sa.column('metering_point_id'), '='), (sa.text("tstzrange(valid_from, valid_to, '[)')"), '&&'), using='gist', name='ex_assign_meter_melo_overlap'),
    sa.CheckConstraint('valid_to IS NULL OR valid_to > valid_from', name=op.f('ck_assign_meter_melo_period')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_assign_meter_melo_meter_id_meters')),
    sa.ForeignKeyConstraint(['metering_point_id'], ['metering_points.id'], name=op.f('fk_assign_meter_melo_metering_point_id_metering_points')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assign_meter_melo'))
    )
    op.create_index(op.f('ix_assign_meter_melo_meter_id'), 'assign_meter_melo', ['meter_id'], unique=False)
    op.create_index(op.f('ix_assign_meter_melo_metering_point_id'), 'assign_meter_melo', ['metering_point_id'], unique=False)
    op.create_table('gateway_initial_certificates',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('gateway_id', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], name=op.f('fk_gateway_initial_certificates_gateway_id_gateways')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_initial_certificates')),
    sa.UniqueConstraint('sha256', name=op.f('uq_gateway_initial_certificates_sha256'))
    )
    op.create_index(op.f('ix_gateway_initial_certificates_gateway_id'), 'gateway_initial_certificates', ['gateway_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_gateway_initial_certificates_gateway_id'), table_name='gateway_initial_certificates')
    op.drop_table('gateway_initial_certificates')
    op.drop_index(op.f('ix_assign_meter_melo_metering_point_id'), table_name='assign_meter_melo')
    op.drop_index(op.f('ix_assign_meter_melo_meter_id'), table_name='assign_meter_melo')
    op.drop_table('assign_meter_melo')
    op.drop_index(op.f('ix_assign_meter_gateway_meter_id'), table_name='assign_meter_gateway')
    op.drop_index(op.f('ix_assign_meter_gateway_gateway_id'), table_name='assign_meter_gateway')
    op.drop_table('assign_meter_gateway')
    op.drop_index(op.f('ix_assign_melo_malo_metering_point_id'), table_name='assign_melo_malo')
    op.drop_index(op.f('ix_assign_melo_malo_market_location_id'), table_name='assign_melo_malo')
    op.drop_table('assign_melo_malo')
    op.drop_index(op.f('ix_assign_gateway_cp_gateway_id'), table_name='assign_gateway_cp')
    op.drop_index(op.f('ix_assign_gateway_cp_connection_point_id'), table_name='assign_gateway_cp')
    op.drop_table('assign_gateway_cp')
    op.drop_index(op.f('ix_assign_cls_gateway_gateway_id'), table_name='assign_cls_gateway')
    op.drop_index(op.f('ix_assign_cls_gateway_cls_module_id'), table_name='assign_cls_gateway')
    op.drop_table('assign_cls_gateway')
    op.drop_index(op.f('ix_meters_device_type_id'), table_name='meters')
    op.drop_index(op.f('ix_meters_calibration_valid_until'), table_name='meters')
    op.drop_table('meters')
    op.drop_table('metering_points')
    op.drop_table('market_locations')
    op.drop_index(op.f('ix_gateways_state'), table_name='gateways')
    op.drop_index(op.f('ix_gateways_network_segment'), table_name='gateways')
    op.drop_index(op.f('ix_gateways_device_type_id'), table_name='gateways')
    op.drop_table('gateways')
    op.drop_table('firmware_versions')
    op.drop_index(op.f('ix_connection_points_postcode'), table_name='connection_points')
    op.drop_index(op.f('ix_connection_points_grid_area'), table_name='connection_points')
    op.drop_table('connection_points')
    op.drop_index(op.f('ix_cls_modules_device_type_id'), table_name='cls_modules')
    op.drop_table('cls_modules')
    op.drop_table('saved_filters')
    op.drop_table('market_partners')
    op.drop_table('import_runs')
    op.drop_table('device_types')
