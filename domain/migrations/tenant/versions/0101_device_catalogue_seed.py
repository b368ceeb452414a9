"""device catalogue seed: the gateway and meter types every tenant starts with

Revision ID: 0101
Revises: 0100
Create Date: 2026-11-28 10:40:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0101'
down_revision: str | Sequence[str] | None = '0100'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GATEWAY = ["taf1", "taf2", "taf6", "taf7", "taf9", "taf10", "taf14", "lmn_wired", "lmn_wireless", "cls",
            "wakeup", "firmware_update"]
# (code, kind, manufacturer, FLAG, model, capabilities, description)
DEVICE_TYPES = [
    ("theben-conexa-3.0", "gateway", "Theben", "THE", "CONEXA 3.0", _GATEWAY, "Smart meter gateway"),
    ("emh-casa", "gateway", "EMH", "EMH", "CASA", _GATEWAY, "Smart meter gateway"),
    ("ppc-smgw", "gateway", "PPC", "PPC", "SMGW", _GATEWAY, "Smart meter gateway"),
    ("emh-ebzd", "meter", "EMH", "EMH", "eBZD", ["lmn_wired", "sml", "bidirectional", "three_phase"],
     "Electronic base meter (DIN rail)"),
    ("emh-ehz", "meter", "EMH", "EMH", "eHZ", ["lmn_wired", "sml", "bidirectional", "three_phase"],
     "Electronic household meter (3-point mounting)"),
    ("iskra-mt176", "meter", "ISKRA", "ISK", "MT176", ["lmn_wired", "sml", "three_phase"], "Three-phase meter"),
    ("iskra-mt631", "meter", "ISKRA", "ISK", "MT631", ["lmn_wired", "sml", "bidirectional", "three_phase"],
     "Electronic base meter"),
    ("iskra-mt691", "meter", "ISKRA", "ISK", "MT691", ["lmn_wired", "lmn_wireless", "sml", "bidirectional",
                                                       "three_phase"], "Electronic base meter, LMN wired or wireless"),
]
# (device type code, version, released_on)
FIRMWARE = [
    ("theben-conexa-3.0", "2.0.3", "2023-05-02"), ("theben-conexa-3.0", "2.1.0", "2024-09-16"),
    ("emh-casa", "1.1.5", "2023-03-20"), ("emh-casa", "2.1.0", "2024-11-04"),
    ("ppc-smgw", "4.2.1", "2023-07-10"), ("ppc-smgw", "5.0.0", "2025-02-03"),
]


def upgrade() -> None:
    conn = op.get_bind()
    for code, kind, manufacturer, flag, model, caps, description in DEVICE_TYPES:
        conn.execute(sa.text(
            "INSERT INTO device_types (code, kind, manufacturer, manufacturer_flag, model, capabilities, description,"
            " created_by, updated_by) VALUES (:code, :kind, :m, :flag, :model,"
            " ARRAY(SELECT jsonb_array_elements_text(CAST(:caps AS jsonb)))::varchar[], :d, 'system:migration',"
            " 'system:migration') ON CONFLICT (code) DO NOTHING"),
            {"code": code, "kind": kind, "m": manufacturer, "flag": flag, "model": model, "caps": json.dumps(caps),
             "d": description})
    for code, version, released in FIRMWARE:
        conn.execute(sa.text(
            "INSERT INTO firmware_versions (device_type_id, version, released_on, approved, created_by, updated_by)"
            " SELECT id, :v, CAST(:r AS date), true, 'system:migration', 'system:migration' FROM device_types"
            " WHERE code = :code ON CONFLICT DO NOTHING"),
            {"code": code, "v": version, "r": released})


def downgrade() -> None:
    conn = op.get_bind()
    codes = [t[0] for t in DEVICE_TYPES]
    conn.execute(sa.text("DELETE FROM firmware_versions WHERE created_by = 'system:migration'"))
    conn.execute(sa.text("DELETE FROM device_types WHERE code = ANY(:codes) AND created_by = 'system:migration' "
                         "AND NOT EXISTS (SELECT 1 FROM gateways WHERE device_type_id = device_types.id) "
                         "AND NOT EXISTS (SELECT 1 FROM meters WHERE device_type_id = device_types.id)"),
                 {"codes": codes})
