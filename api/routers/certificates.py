"""The tenant's certificates: trust anchors, its GWA identity, EMT and gateway certificates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from api.deps import CertificateWriter, StateDep, TenantReader
from api.schemas import Page
from core.errors import NotFound
from domain.certificates import repository as repo
from domain.certificates import service
from domain.certificates.schemas import CertificateOut, CertificateUpload, ImportResult, RevocationRunOut

router = APIRouter(prefix="/api/v1/tenants/{tenant}/certificates", tags=["certificates"])


def _result(outcome: service.ImportOutcome) -> ImportResult:
    return ImportResult(imported=[CertificateOut.of(c) for c in outcome.imported], unchanged=len(outcome.unchanged))


@router.post("/trust", response_model=ImportResult)
async def import_trust(access: CertificateWriter, body: CertificateUpload) -> ImportResult:
    """Root CA certificates (trust anchors) and Sub-CA certificates."""
    async with access.transaction() as session:
        return _result(await service.import_trust(session, access.tenant, body.data()))


@router.post("/identity", response_model=ImportResult)
async def import_identity(state: StateDep, access: CertificateWriter, body: CertificateUpload) -> ImportResult:
    """The tenant's own GWA identity: TLS, SIG and ENC certificates with their private keys."""
    password = body.password.encode() if body.password else None
    async with access.transaction() as session:
        return _result(await service.import_identity(session, state.settings, access.tenant, body.data(), password))


@router.post("/emt", response_model=ImportResult)
async def import_emt(
    access: CertificateWriter, body: CertificateUpload,
    market_partner: Annotated[str | None, Query(pattern=r"^\d{13}$")] = None,
) -> ImportResult:
    """A market participant's (EMT) certificates, optionally linked to its market partner."""
    async with access.transaction() as session:
        return _result(await service.import_emt(session, access.tenant, body.data(), market_partner))


@router.post("/gateways/{gateway}", response_model=ImportResult)
async def import_gateway(access: CertificateWriter, gateway: str, body: CertificateUpload) -> ImportResult:
    """A gateway's certificates, linked to the gateway record."""
    async with access.transaction() as session:
        return _result(await service.import_gateway(session, access.tenant, body.data(), gateway))


@router.get("", response_model=Page[CertificateOut])
async def list_certificates(
    access: TenantReader,
    owner: Literal["trust", "identity", "emt", "gateway"] | None = None,
    usage: Literal["tls", "sig", "enc"] | None = None,
    gateway: str | None = None,
    market_partner: str | None = None,
    expiring_within_days: Annotated[int | None, Query(ge=0, le=3650)] = None,
    status: Literal["active", "superseded", "retired"] | None = "active",
    revocation: Literal["unknown", "good", "revoked"] | None = None,
    after: Annotated[int | None, Query(ge=0, description="`next_after` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[CertificateOut]:
    """Certificates with expiry, revocation status and purpose. ``expiring_within_days=N``: those that
    expire within N days (or have expired)."""
    before = datetime.now(UTC) + timedelta(days=expiring_within_days) if expiring_within_days is not None else None
    stmt = repo.listing(owner=owner, usage=usage, gateway=gateway, market_partner=market_partner,
                        expiring_before=before, status=status, revocation=revocation, after=after, limit=limit)
    async with access.transaction() as session:
        rows = (await session.execute(stmt)).all()
    items = [CertificateOut.of(c, g, m) for c, g, m in rows]
    return Page(items=items, next_after=str(rows[-1][0].id) if len(rows) == limit else None)


@router.get("/{fingerprint}", response_model=CertificateOut)
async def get_certificate(access: TenantReader, fingerprint: str) -> CertificateOut:
    async with access.transaction() as session:
        row = await repo.by_fingerprint(session, fingerprint.lower())
    if row is None:
        raise NotFound(f"certificate {fingerprint!r} not found", code="certificate_not_found")
    return CertificateOut.of(row)


@router.get("/{fingerprint}/pem", response_class=PlainTextResponse)
async def get_certificate_pem(access: TenantReader, fingerprint: str) -> PlainTextResponse:
    """The certificate as PEM (never a private key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    async with access.transaction() as session:
        row = await repo.by_fingerprint(session, fingerprint.lower())
    if row is None:
        raise NotFound(f"certificate {fingerprint!r} not found", code="certificate_not_found")
    pem = x509.load_der_x509_certificate(row.der).public_bytes(serialization.Encoding.PEM)
    return PlainTextResponse(pem.decode(), media_type="application/x-pem-file")


@router.post("/revocation-check", response_model=RevocationRunOut)
async def revocation_check(access: CertificateWriter) -> RevocationRunOut:
    """Refresh every CRL now and update each certificate's revocation status (also scheduled)."""
    async with access.transaction() as session:
        run = await service.refresh_revocation(session, access.tenant)
    return RevocationRunOut(refreshed=run.refreshed, failed=run.failed, revoked=run.revoked, good=run.good)
