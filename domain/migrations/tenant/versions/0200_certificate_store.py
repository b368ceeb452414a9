"""certificate store

Revision ID: 0200
Revises: 0001 (depends on 0100)
Create Date: 2026-11-28 10:33:14.874064
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0200'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = '0100'  # gateways, market_partners


def upgrade() -> None:
    op.create_table('certificates',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=10), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=True),
    sa.Column('usage', sa.String(length=3), nullable=True),
    sa.Column('is_trust_anchor', sa.Boolean(), nullable=False),
    sa.Column('subject', sa.String(length=1000), nullable=False),
    sa.Column('common_name', sa.String(length=200), nullable=True),
    sa.Column('issuer', sa.String(length=1000), nullable=False),
    sa.Column('serial', sa.String(length=80), nullable=False),
    sa.Column('subject_key_id', sa.String(length=128), nullable=True),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('crl_urls', postgresql.ARRAY(sa.String(length=500)), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.Column('private_key', sa.LargeBinary(), nullable=True),
    sa.Column('gateway_id', sa.BigInteger(), nullable=True),
    sa.Column('market_partner_id', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('revocation', sa.String(length=8), nullable=False),
    sa.Column('revocation_checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revocation_detail', sa.String(length=500), nullable=True),
    sa.Column('revocation_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.CheckConstraint("owner IN ('trust', 'identity', 'emt', 'gateway')", name=op.f('ck_certificates_owner')),
    sa.CheckConstraint("private_key IS NULL OR owner = 'identity'", name=op.f('ck_certificates_keys_only_for_identity')),
    sa.CheckConstraint("revocation IN ('unknown', 'good', 'revoked')", name=op.f('ck_certificates_revocation')),
    sa.CheckConstraint("status IN ('active', 'superseded', 'retired')", name=op.f('ck_certificates_status')),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], name=op.f('fk_certificates_gateway_id_gateways')),
    sa.ForeignKeyConstraint(['market_partner_id'], ['market_partners.id'], name=op.f('fk_certificates_market_partner_id_market_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificates')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_certificates_fingerprint'))
    )
    op.create_index(op.f('ix_certificates_common_name'), 'certificates', ['common_name'], unique=False)
    op.create_index(op.f('ix_certificates_gateway_id'), 'certificates', ['gateway_id'], unique=False)
    op.create_index(op.f('ix_certificates_market_partner_id'), 'certificates', ['market_partner_id'], unique=False)
    op.create_index('ix_certificates_not_after_active', 'certificates', ['not_after'], unique=False, postgresql_where="status = 'active'")
    op.create_index(op.f('ix_certificates_owner'), 'certificates', ['owner'], unique=False)
    op.create_index(op.f('ix_certificates_subject_key_id'), 'certificates', ['subject_key_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_certificates_subject_key_id'), table_name='certificates')
    op.drop_index(op.f('ix_certificates_owner'), table_name='certificates')
    op.drop_index('ix_certificates_not_after_active', table_name='certificates', postgresql_where="status = 'active'")
    op.drop_index(op.f('ix_certificates_market_partner_id'), table_name='certificates')
    op.drop_index(op.f('ix_certificates_gateway_id'), table_name='certificates')
    op.drop_index(op.f('ix_certificates_common_name'), table_name='certificates')
    op.drop_table('certificates')
