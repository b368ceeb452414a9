"""Every query on the certificate store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.base import rows_changed
from domain.certificates.models import Certificate
from domain.devices.models import Gateway
from domain.partners.models import MarketPartner


async def by_fingerprints(session: AsyncSession, fingerprints: Sequence[str]) -> dict[str, Certificate]:
    if not fingerprints:
        return {}
    rows = await session.scalars(select(Certificate).where(Certificate.fingerprint.in_(list(fingerprints))))
    return {c.fingerprint: c for c in rows}


async def by_fingerprint(session: AsyncSession, fingerprint: str) -> Certificate | None:
    return await session.scalar(select(Certificate).where(Certificate.fingerprint == fingerprint))


async def active_trust(session: AsyncSession) -> Sequence[Certificate]:
    return (await session.scalars(
        select(Certificate).where(Certificate.owner == "trust", Certificate.status == "active")
    )).all()


async def active_identity(session: AsyncSession) -> Sequence[Certificate]:
    return (await session.scalars(
        select(Certificate).where(Certificate.owner == "identity", Certificate.status == "active")
    )).all()


async def active_emt(session: AsyncSession, mp_ids: Sequence[str]) -> Sequence[tuple[Certificate, str]]:
    """The active certificates of these EMTs, each with its market partner ID, in id order."""
    rows = await session.execute(
        select(Certificate, MarketPartner.mp_id).join(MarketPartner, MarketPartner.id == Certificate.market_partner_id)
        .where(Certificate.owner == "emt", Certificate.status == "active", MarketPartner.mp_id.in_(list(mp_ids)))
        .order_by(Certificate.id))
    return [(c, mp) for c, mp in rows]


async def active_emt_with_keys(session: AsyncSession) -> Sequence[tuple[Certificate, str]]:
    """The active EMT certificates that carry a private key (the tenant's EMT identities), each with
    its market partner ID, in id order."""
    rows = await session.execute(
        select(Certificate, MarketPartner.mp_id).join(MarketPartner, MarketPartner.id == Certificate.market_partner_id)
        .where(Certificate.owner == "emt", Certificate.status == "active", Certificate.private_key.is_not(None))
        .order_by(Certificate.id))
    return [(c, mp) for c, mp in rows]


async def active_of_gateway(session: AsyncSession, gateway_pk_: int, usages: Sequence[str] | None = None
                            ) -> Sequence[Certificate]:
    """A gateway's active certificates (of ``usages``, default all), the longest valid last."""
    stmt = select(Certificate).where(Certificate.owner == "gateway", Certificate.gateway_id == gateway_pk_,
                                     Certificate.status == "active")
    if usages is not None:
        stmt = stmt.where(Certificate.usage.in_(list(usages)))
    return (await session.scalars(stmt.order_by(Certificate.not_after, Certificate.id))).all()


async def of_gateway_for_usage(session: AsyncSession, gateway_pk_: int, usage: str) -> Sequence[Certificate]:
    """Every certificate a gateway ever had for ``usage``, whatever its status."""
    return (await session.scalars(select(Certificate).where(
        Certificate.owner == "gateway", Certificate.gateway_id == gateway_pk_, Certificate.usage == usage))).all()


async def supersede_identity(session: AsyncSession, keep: Sequence[str]) -> int:
    return await rows_changed(session, update(Certificate)
                              .where(Certificate.owner == "identity", Certificate.status == "active",
                                     Certificate.fingerprint.not_in(list(keep)))
                              .values(status="superseded"))


async def gateway_pk(session: AsyncSession, device_id: str) -> int | None:
    return await session.scalar(select(Gateway.id).where(Gateway.device_id == device_id))


async def market_partner_pk(session: AsyncSession, mp_id: str) -> int | None:
    return await session.scalar(select(MarketPartner.id).where(MarketPartner.mp_id == mp_id))


def listing(
    *,
    owner: str | None = None,
    usage: str | None = None,
    gateway: str | None = None,
    market_partner: str | None = None,
    expiring_before: datetime | None = None,
    status: str | None = "active",
    revocation: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> Select[Certificate, str | None, str | None]:
    """Certificates with their gateway device ID and market partner ID, keyset-paginated by id."""
    stmt = (
        select(Certificate, Gateway.device_id, MarketPartner.mp_id)
        .outerjoin(Gateway, Gateway.id == Certificate.gateway_id)
        .outerjoin(MarketPartner, MarketPartner.id == Certificate.market_partner_id)
        .order_by(Certificate.id)
        .limit(limit)
    )
    if owner:
        stmt = stmt.where(Certificate.owner == owner)
    if usage:
        stmt = stmt.where(Certificate.usage == usage)
    if gateway:
        stmt = stmt.where(Gateway.device_id == gateway)
    if market_partner:
        stmt = stmt.where(MarketPartner.mp_id == market_partner)
    if expiring_before is not None:
        stmt = stmt.where(Certificate.not_after <= expiring_before)
    if status:
        stmt = stmt.where(Certificate.status == status)
    if revocation:
        stmt = stmt.where(Certificate.revocation == revocation)
    if after is not None:
        stmt = stmt.where(Certificate.id > after)
    return stmt


async def all_active_der(session: AsyncSession, after: int, limit: int) -> Sequence[tuple[int, bytes]]:
    rows = await session.execute(
        select(Certificate.id, Certificate.der)
        .where(Certificate.status == "active", Certificate.id > after)
        .order_by(Certificate.id).limit(limit)
    )
    return [(i, d) for i, d in rows]


async def mark_revocation(
    session: AsyncSession, issuer: str, revoked_serials: set[str], checked_at: datetime, detail: str
) -> tuple[int, int]:
    """Set revocation status of every active certificate of ``issuer`` from one CRL (set-based)."""
    base = update(Certificate).where(Certificate.issuer == issuer, Certificate.status == "active")
    revoked = await rows_changed(session, base.where(Certificate.serial.in_(sorted(revoked_serials))).values(
        revocation="revoked", revocation_checked_at=checked_at, revocation_detail=detail,
    )) if revoked_serials else 0
    good = await rows_changed(session, base.where(
        Certificate.serial.not_in(sorted(revoked_serials)) if revoked_serials else true()
    ).values(revocation="good", revocation_checked_at=checked_at, revocation_detail=detail))
    return revoked, good


async def request_revocation_for_gateway(session: AsyncSession, gateway_pk_: int, at: datetime) -> int:
    return await rows_changed(session, update(Certificate)
                              .where(Certificate.gateway_id == gateway_pk_, Certificate.status == "active",
                                     Certificate.revocation_requested_at.is_(None))
                              .values(revocation_requested_at=at))
