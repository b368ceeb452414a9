"""The manufacturer's delivery file (Lieferschein): one row per delivered device.

Gateway rows (Sparte E) carry the initial certificate (PEM, or base64 DER); meter rows carry the
meter master key MK0. New gateways start ``in_stock``; a device delivered again keeps its state
and only has type and firmware updated. The initial certificate is kept as delivered
(``gateway_initial_certificates``) for the PKI area to validate and adopt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput
from domain import validators as v
from domain.imports.columns import DEVICE_TYPE, FIRMWARE, Column
from domain.imports.errors import ErrorLog
from domain.imports.kinds import (
    DEVICE_SOURCE_COLUMNS,
    DEVICE_SOURCE_JOINS,
    Context,
    Kind,
    audit_json,
    check_device_type,
    device_audit,
    device_targets,
    duplicates,
    encrypt_mk0,
    mk0_targets,
    ownership,
)
from domain.imports.upsert import Counts, Target, apply


def certificate(raw: str) -> x509.Certificate:
    """One X.509 certificate, PEM or base64-encoded DER."""
    data = raw.strip()
    try:
        if data.startswith("-----BEGIN"):
            return x509.load_pem_x509_certificate(data.encode("ascii"))
        return x509.load_der_x509_certificate(base64.b64decode("".join(data.split()), validate=True))
    except (ValueError, binascii.Error, UnicodeEncodeError) as err:
        raise InvalidInput(f"not an X.509 certificate (PEM or base64 DER): {str(err).splitlines()[0][:120]}",
                           code="invalid_certificate") from None


def _row(row: dict[str, Any], ctx: Context, line: int, errors: ErrorLog) -> None:
    device_id: str = row.get("device_id") or ""
    is_gateway = device_id.startswith("E")
    check_device_type("gateway" if is_gateway else "meter")(row, ctx, line, errors)
    cert = row.pop("initial_certificate", None)
    row["device_kind"] = "gateway" if is_gateway else "meter"
    row["cert_sha256"] = row["cert_der"] = row["cert_subject"] = row["cert_not_after"] = None
    if is_gateway:
        if row.get("mk0") is not None:
            errors.add(line, "mk0", "unexpected_value", "an MK0 belongs to a meter, not a gateway")
        row.pop("mk0", None)
        row["mk0_ciphertext"] = row["mk0_fingerprint"] = None
        if cert is not None:
            der = cert.public_bytes(Encoding.DER)
            row["cert_sha256"] = hashlib.sha256(der).hexdigest()
            row["cert_der"] = der
            row["cert_subject"] = cert.subject.rfc4514_string()[:500]
            row["cert_not_after"] = cert.not_valid_after_utc
    else:
        if cert is not None:
            errors.add(line, "initial_certificate", "unexpected_value", "initial certificates belong to gateways")
        encrypt_mk0(row, ctx, line, errors)
    row["audit_new"] = audit_json(device_audit(row["device_kind"])(row, ctx), ctx)


class DeliveryImport(Kind):
    async def check(self, session: AsyncSession, stage: str, present: set[str], errors: ErrorLog) -> None:
        await duplicates(session, stage, "device_id", errors)
        await duplicates(session, stage, "cert_sha256", errors, where="WHERE cert_sha256 IS NOT NULL")
        taken = await session.execute(text(
            f"SELECT s.line, g.device_id FROM {stage} s "
            f"JOIN gateway_initial_certificates c ON c.sha256 = s.cert_sha256 JOIN gateways g ON g.id = c.gateway_id "
            f"WHERE g.device_id <> s.device_id ORDER BY s.line LIMIT 1000"))
        for line, other in taken:
            errors.add(line, "initial_certificate", "certificate_taken",
                       f"this certificate was delivered for gateway {other}")

    async def apply(self, session: AsyncSession, stage: str, present: set[str], params: dict[str, Any]) -> Counts:
        gateway_targets = [*device_targets(present),
                           Target("state", "t.state", insert="'in_stock'", compare=False), *ownership()]
        meter_targets = [*device_targets(present), Target("lmn_type", "t.lmn_type", insert="'wired'", compare=False),
                         *(mk0_targets() if "mk0" in present else []), *ownership()]
        counts = await apply(session, table="gateways", key="device_id", object_type="gateway",
                             source=self.source(stage, "WHERE s.device_kind = 'gateway'"), targets=gateway_targets,
                             params=params, create_audit="audit_new")
        counts = counts + await apply(session, table="meters", key="device_id", object_type="meter",
                                      source=self.source(stage, "WHERE s.device_kind = 'meter'"),
                                      targets=meter_targets, params=params, create_audit="audit_new")
        await session.execute(text(f"""
            WITH ins AS (
                INSERT INTO gateway_initial_certificates (gateway_id, sha256, der, subject, not_after, created_by,
                                                          updated_by)
                SELECT g.id, s.cert_sha256, s.cert_der, s.cert_subject, s.cert_not_after, :actor, :actor
                FROM {stage} s JOIN gateways g ON g.device_id = s.device_id
                WHERE s.cert_sha256 IS NOT NULL
                ON CONFLICT (sha256) DO NOTHING
                RETURNING gateway_id, sha256, subject
            )
            INSERT INTO audit_log (actor, action, object_type, object_id, changes, request_id)
            SELECT :actor, 'initial_certificate', 'gateway', g.device_id,
                   jsonb_build_object('initial_certificate', jsonb_build_object('old', NULL,
                       'new', jsonb_build_object('sha256', ins.sha256, 'subject', ins.subject))), :request_id
            FROM ins JOIN gateways g ON g.id = ins.gateway_id"""), params)
        return counts


DELIVERY = DeliveryImport(
    name="delivery", table="", key="device_id", object_type="device",
    columns=(
        Column("device_id", "text", v.device_id, required=True, doc="gateway (Sparte E) or meter ID"),
        DEVICE_TYPE, FIRMWARE,
        Column("initial_certificate", "text", certificate, doc="gateways: PEM or base64 DER"),
        Column("mk0", "bytea", v.mk0, doc="meters: master key MK0, 32 or 64 hex digits"),
    ),
    targets=lambda present: [], row_check=_row,
    derived=(("device_kind", "text"), ("mk0_ciphertext", "bytea"), ("mk0_fingerprint", "bytea"),
             ("cert_sha256", "text"), ("cert_der", "bytea"), ("cert_subject", "text"),
             ("cert_not_after", "timestamptz"), ("audit_new", "text")),
    source_joins=DEVICE_SOURCE_JOINS, source_columns=DEVICE_SOURCE_COLUMNS,
)
