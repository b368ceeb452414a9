"""Importing, listing and checking a tenant's certificates.

Every import is validated first against the tenant's trust store (``pki.importing``) and stored
all or nothing; a rejection carries the PKI reason code (``expired``, ``revoked``,
``profile_violation``, ``malformed``, ...) as its error code. Re-importing the same certificates
changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.errors import InvalidInput, NotFound
from domain.audit.repository import record
from domain.certificates import repository as repo
from domain.certificates.models import Certificate
from domain.secrets import SecretBox
from domain.tenancy.service import TenantContext
from pki.crl import CrlCache, refresh_crls
from pki.importing import CertInfo, ImportItem, check_identity, check_import, describe
from pki.loader import LoadError, parse_bundle
from pki.oids import ECDSA_WITH_SHA, curve_allowed
from pki.profile import Role, check_profile, crl_urls
from pki.validation import Validator

log = structlog.get_logger(__name__)

KEY_PURPOSE = "private_key"


class CertificateRejected(InvalidInput):
    """An import that failed validation; ``code`` is the PKI reason code."""

    code = "certificate_rejected"


class GatewayNotFound(NotFound):
    code = "gateway_not_found"


class MarketPartnerNotFound(NotFound):
    code = "market_partner_not_found"


def _reject(reason: str, detail: str) -> CertificateRejected:
    return CertificateRejected(f"certificate rejected ({reason}): {detail}", code=reason,
                               details={"reason": reason, "detail": detail})


# One CRL cache per tenant and process, persisted in the tenant's key folder so that a refresh in
# the worker serves validators in the API and head-end too.
_crl_caches: dict[str, CrlCache] = {}


def crl_cache(tenant: TenantContext) -> CrlCache:
    cache = _crl_caches.get(tenant.name)
    if cache is None:
        cache = CrlCache(directory=tenant.keys_dir / "crls")
        _crl_caches[tenant.name] = cache
    return cache


async def tenant_validator(session: AsyncSession, tenant: TenantContext) -> Validator:
    """A validator on the tenant's active trust anchors and Sub-CAs, with its CRL cache."""
    trust = await repo.active_trust(session)
    anchors = [x509.load_der_x509_certificate(c.der) for c in trust if c.is_trust_anchor]
    subcas = [x509.load_der_x509_certificate(c.der) for c in trust if not c.is_trust_anchor]
    return Validator(anchors, subcas, crl_cache=crl_cache(tenant))


def _ca_problem(cert: x509.Certificate, issuers: Sequence[x509.Certificate],
                now: dt.datetime) -> tuple[str, str] | None:
    """Why a root or Sub-CA certificate cannot be trusted, or None. End entities go through the
    validator; CA certificates are checked here: algorithm, profile, signature by an anchor, validity.
    (Revocation of a Sub-CA is checked on every end-entity validation through its chain.)"""
    if cert.signature_algorithm_oid.dotted_string not in ECDSA_WITH_SHA:
        return "forbidden_algorithm", "signature algorithm is not ECDSA with SHA-2"
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not curve_allowed(key.curve):
        return "forbidden_algorithm", "key is not EC on an allowed curve"
    violation = check_profile(cert, is_ca=True)
    if violation is not None:
        return "profile_violation", f"rule {violation.rule}: {violation.detail}"
    if not issuers:
        return "unknown_issuer", "no trust anchor issued this Sub-CA certificate"
    for issuer in issuers:
        try:
            cert.verify_directly_issued_by(issuer)
            break
        except (ValueError, TypeError, InvalidSignature):
            continue
    else:
        return "bad_signature", "signature does not verify with the issuer's key"
    if now < cert.not_valid_before_utc:
        return "not_yet_valid", f"valid from {cert.not_valid_before_utc.isoformat()}"
    if now > cert.not_valid_after_utc:
        return "expired", f"expired {cert.not_valid_after_utc.isoformat()}"
    return None


def _row(info: CertInfo, der: bytes, owner: str, **extra: object) -> Certificate:
    return Certificate(
        fingerprint=info.fingerprint, owner=owner, role=info.role.value if info.role else None,
        usage=info.usage.value if info.usage else None, subject=info.subject, common_name=info.common_name,
        issuer=info.issuer, serial=info.serial, subject_key_id=info.subject_key_id,
        not_before=info.not_before, not_after=info.not_after, crl_urls=list(info.crl_urls), der=der,
        **extra,
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass
class ImportOutcome:
    imported: list[Certificate] = field(default_factory=list)
    unchanged: list[Certificate] = field(default_factory=list)


async def import_trust(session: AsyncSession, tenant: TenantContext, data: bytes) -> ImportOutcome:
    """Root CAs (self-signed: trust anchors) and Sub-CAs (must chain to an anchor)."""
    try:
        bundle = parse_bundle(data)
    except LoadError as err:
        raise _reject("malformed", err.detail) from None
    if bundle.private_keys:
        raise _reject("key_not_allowed", "trust imports must not contain private keys")
    if not bundle.certificates:
        raise _reject("empty", "no certificate in the input")
    infos = [describe(c) for c in bundle.certificates]
    if not all(i.is_ca for i in infos):
        raise _reject("not_a_ca", "trust imports take CA certificates only; use the EMT/gateway imports")
    roots = [c for c in bundle.certificates if c.issuer == c.subject]
    existing = await repo.active_trust(session)
    anchors = [x509.load_der_x509_certificate(c.der) for c in existing if c.is_trust_anchor] + roots
    now = dt.datetime.now(dt.UTC)
    for cert, info in zip(bundle.certificates, infos, strict=True):
        issuers = [cert] if cert in roots else [a for a in anchors if a.subject == cert.issuer]
        problem = _ca_problem(cert, issuers, now)
        if problem is not None:
            reason, detail = problem
            raise _reject(reason, f"{info.subject}: {detail}")
    return await _store(session, [(c, i, {"is_trust_anchor": c in roots}) for c, i in
                                  zip(bundle.certificates, infos, strict=True)], owner="trust")


async def import_identity(
    session: AsyncSession, settings: Settings, tenant: TenantContext, data: bytes, password: bytes | None = None
) -> ImportOutcome:
    """The tenant's own GWA identity: TLS, SIG and ENC certificate with private keys. A new
    identity supersedes the previous one (kept for audit, keys included)."""
    check = check_identity(data, await tenant_validator(session, tenant), role=Role.GWA, password=password)
    if not check.ok:
        raise _reject(check.reason, check.detail)
    outcome = await _store(session, _with_keys(settings, tenant, check.items), owner="identity")
    superseded = await repo.supersede_identity(session, [i.info.fingerprint for i in check.items])
    if superseded:
        record(session, "supersede", "gwa_identity", tenant.name, {"certificates": {"old": superseded, "new": 0}})
    return outcome


def _with_keys(settings: Settings, tenant: TenantContext, items: Sequence[ImportItem],
               **extra: object) -> list[tuple[x509.Certificate, CertInfo, dict[str, object]]]:
    """The items to store, each private key encrypted for the tenant and bound to its certificate."""
    box = SecretBox(settings, tenant.name, KEY_PURPOSE)
    out: list[tuple[x509.Certificate, CertInfo, dict[str, object]]] = []
    for item in items:
        assert item.private_key is not None
        pem = item.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        out.append((item.certificate, item.info, {**extra, "private_key": box.encrypt(pem, item.info.fingerprint)}))
    return out


async def import_emt_identity(
    session: AsyncSession, settings: Settings, tenant: TenantContext, data: bytes, market_partner: str,
    password: bytes | None = None,
) -> ImportOutcome:
    """An EMT identity of the tenant: the TLS, SIG and ENC certificates of market partner
    ``market_partner`` with their private keys, for the MDM receiver (docs/mdm.md, "Who is served").
    Keys are encrypted at rest like the GWA identity's. Certificates imported before without keys
    (``import_emt``) gain them and the link to the market partner. A later identity of the same
    market partner (renewal) does not supersede the earlier one: the receiver presents the newest
    TLS certificate and opens containers for any valid ENC certificate, so gateways that still hold
    the old ENC certificate keep delivering."""
    mp_pk = await repo.market_partner_pk(session, market_partner)
    if mp_pk is None:
        raise MarketPartnerNotFound(f"market partner {market_partner!r} not found")
    check = check_identity(data, await tenant_validator(session, tenant), role=Role.EMT, password=password)
    if not check.ok:
        raise _reject(check.reason, check.detail)
    outcome = await _store(session, _with_keys(settings, tenant, check.items, market_partner_id=mp_pk), owner="emt")
    log.info("certificates.emt_identity_imported", tenant=tenant.name, market_partner=market_partner,
             imported=len(outcome.imported), unchanged=len(outcome.unchanged))
    return outcome


async def import_emt(
    session: AsyncSession, tenant: TenantContext, data: bytes, market_partner: str | None = None
) -> ImportOutcome:
    """A market participant's certificates, optionally linked to its market partner record."""
    mp_pk = None
    if market_partner:
        mp_pk = await repo.market_partner_pk(session, market_partner)
        if mp_pk is None:
            raise MarketPartnerNotFound(f"market partner {market_partner!r} not found")
    items = await _checked(session, tenant, data, Role.EMT)
    return await _store(session, [(i.certificate, i.info, {"market_partner_id": mp_pk}) for i in items], owner="emt")


async def import_gateway(
    session: AsyncSession, tenant: TenantContext, data: bytes, gateway: str | None = None
) -> ImportOutcome:
    """A gateway's certificates, linked to its gateway record. Their CN must name the gateway."""
    gw_pk = None
    items = await _checked(session, tenant, data, Role.SMGW)
    if gateway:
        gw_pk = await repo.gateway_pk(session, gateway)
        if gw_pk is None:
            raise GatewayNotFound(f"gateway {gateway!r} not found")
        for item in items:
            if (item.info.common_name or "").upper() != f"{gateway}.SMGW".upper():
                raise _reject("gateway_mismatch", f"{item.info.subject} does not belong to gateway {gateway}")
    return await _store(session, [(i.certificate, i.info, {"gateway_id": gw_pk}) for i in items], owner="gateway")


async def _checked(session: AsyncSession, tenant: TenantContext, data: bytes, role: Role) -> Sequence[ImportItem]:
    check = check_import(data, await tenant_validator(session, tenant), expected_role=role)
    if not check.ok:
        raise _reject(check.reason, check.detail)
    if any(i.private_key is not None for i in check.items):
        raise _reject("key_not_allowed", f"private keys of {role} certificates are not stored by the GWA")
    return check.items


async def _store(
    session: AsyncSession, items: Sequence[tuple[x509.Certificate, CertInfo, dict[str, object]]], *, owner: str
) -> ImportOutcome:
    known = await repo.by_fingerprints(session, [info.fingerprint for _, info, _ in items])
    outcome = ImportOutcome()
    for cert, info, extra in items:
        row = known.get(info.fingerprint)
        if row is not None:
            if row.owner != owner:
                raise _reject("already_imported", f"{info.subject} is already stored as {row.owner}")
            changed = {k: v for k, v in extra.items() if k != "private_key" and v is not None
                       and getattr(row, k) != v}
            if row.status != "active" and owner != "trust":
                changed["status"] = "active"
            # A certificate imported without its key gains it (an EMT identity over a public import).
            gains_key = row.private_key is None and extra.get("private_key") is not None
            for key, value in changed.items():
                setattr(row, key, value)
            if gains_key:
                row.private_key = cast(bytes, extra["private_key"])
            if changed or gains_key:
                audit = {k: {"old": None, "new": str(v)} for k, v in changed.items()}
                if gains_key:
                    audit["private_key"] = {"old": None, "new": "stored (encrypted)"}  # never the key
                record(session, "update", "certificate", info.fingerprint, audit)
                outcome.imported.append(row)
            else:
                outcome.unchanged.append(row)
            continue
        row = _row(info, _der(cert), owner, **extra)
        session.add(row)
        outcome.imported.append(row)
        record(session, "import", "certificate", info.fingerprint,
               {"subject": {"old": None, "new": info.subject}, "owner": {"old": None, "new": owner},
                "usage": {"old": None, "new": row.usage}})
    await session.flush()
    return outcome


@dataclass(frozen=True)
class RevocationRun:
    refreshed: dict[str, str]
    failed: dict[str, str]
    revoked: int
    good: int


async def refresh_revocation(session: AsyncSession, tenant: TenantContext, *, batch: int = 2000) -> RevocationRun:
    """Fetch every CRL the tenant's certificates point to (signature-checked), then set each active
    certificate's revocation status from them in set-based updates. What an activity schedules."""
    certs: list[x509.Certificate] = []
    after = 0
    urls_seen: set[str] = set()
    while True:
        rows = await repo.all_active_der(session, after, batch)
        if not rows:
            break
        after = rows[-1][0]
        for _, der in rows:
            cert = x509.load_der_x509_certificate(der)
            # One certificate per distinct CDP set is enough to name every CRL to fetch.
            urls = tuple(crl_urls(cert))
            if _is_ca(cert) or not set(urls) <= urls_seen:
                certs.append(cert)
                urls_seen.update(urls)
    cache = crl_cache(tenant)
    report = await refresh_crls(cache, certs)
    now = dt.datetime.now(dt.UTC)
    revoked = good = 0
    for url in report.refreshed:
        crl = cache.cached(url)
        if crl is None:
            continue
        issuer = crl.issuer.rfc4514_string({NameOID.SERIAL_NUMBER: "serialNumber"})
        serials = {f"{r.serial_number:x}" for r in crl}
        r, g = await repo.mark_revocation(session, issuer, serials, now, f"CRL {url}")
        revoked += r
        good += g
    log.info("certificates.revocation_refreshed", tenant=tenant.name, crls=len(report.refreshed),
             failed=len(report.failed), revoked=revoked)
    return RevocationRun({u: n.isoformat() for u, n in report.refreshed.items()}, dict(report.failed), revoked, good)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


async def request_gateway_revocation(session: AsyncSession, gateway: str) -> int:
    """Mark a gateway's active certificates for revocation handling (deinstallation)."""
    pk = await repo.gateway_pk(session, gateway)
    if pk is None:
        raise GatewayNotFound(f"gateway {gateway!r} not found")
    count = await repo.request_revocation_for_gateway(session, pk, dt.datetime.now(dt.UTC))
    if count:
        record(session, "request_revocation", "gateway", gateway, {"certificates": {"old": None, "new": count}})
    return count
