"""The few master-data and certificate-store reads the head-end needs, in one place: the gateway
record for admission and wake-up, its stored certificates, a meter's MK0 for pairing."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.certificates.models import Certificate
from domain.devices.models import Gateway, Meter


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    gateway_id: str
    state: str
    wakeup_address: str | None
    network_segment: str | None
    tls_fingerprints: frozenset[str]  # active TLS certificates in the store (empty: none imported)


async def gateway_record(session: AsyncSession, gateway_id: str) -> GatewayRecord | None:
    """One statement: the gateway and the fingerprints of its active TLS certificates."""
    fps = (select(func.array_agg(Certificate.fingerprint))
           .where(Certificate.gateway_id == Gateway.id, Certificate.owner == "gateway", Certificate.usage == "tls",
                  Certificate.status == "active")
           .correlate(Gateway).scalar_subquery())
    row = (await session.execute(
        select(Gateway.state, Gateway.wakeup_address, Gateway.network_segment, fps)
        .where(Gateway.device_id == gateway_id))).first()
    if row is None:
        return None
    return GatewayRecord(gateway_id, row[0], row[1], row[2], frozenset(row[3] or ()))


async def gateway_enc_certificate(session: AsyncSession, gateway_id: str) -> x509.Certificate | None:
    der = await session.scalar(
        select(Certificate.der).join(Gateway, Gateway.id == Certificate.gateway_id)
        .where(Gateway.device_id == gateway_id, Certificate.owner == "gateway", Certificate.usage == "enc",
               Certificate.status == "active", Certificate.revocation != "revoked")
        .order_by(Certificate.not_after.desc()).limit(1))
    return x509.load_der_x509_certificate(der) if der else None


async def meter_lmn_type(session: AsyncSession, meter_id: str) -> str | None:
    return await session.scalar(select(Meter.lmn_type).where(Meter.device_id == meter_id))
