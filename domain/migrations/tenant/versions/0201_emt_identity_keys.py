"""EMT identities: certificates of a market partner may carry their private key

The MDM receiver (``gridgate mdm``) acts for the EMTs whose TLS/SIG/ENC keys the tenant holds
(``domain.certificates.service.import_emt_identity``). Until now only the tenant's GWA identity
could have keys; EMT certificates may now too (encrypted at rest like the GWA's).

Revision ID: 0201
Revises: 0200
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0201"
down_revision: str | Sequence[str] | None = "0200"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ck_certificates_keys_only_for_identity"


def upgrade() -> None:
    op.drop_constraint(op.f(NAME), "certificates", type_="check")
    op.create_check_constraint(op.f(NAME), "certificates", "private_key IS NULL OR owner IN ('identity', 'emt')")


def downgrade() -> None:
    op.execute("UPDATE certificates SET private_key = NULL WHERE owner = 'emt'")
    op.drop_constraint(op.f(NAME), "certificates", type_="check")
    op.create_check_constraint(op.f(NAME), "certificates", "private_key IS NULL OR owner = 'identity'")
