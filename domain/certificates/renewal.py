"""Renewal of a gateway's certificates: a PKCS#10 request the gateway made for a new key goes to the
tenant's Sub-CA, the certificate comes back into the certificate store, and once the gateway uses
it the certificate it replaces is superseded with revocation requested.

**Where the Sub-CA plugs in.** :class:`pki.subca.SubCa` is the one interface (``certify(csr,
usage)``); its implementations are adapters in ``pki/subca.py`` (the development stand-in today,
the SM-PKI Sub-CA's web service next), chosen by :func:`pki.subca.subca_for`.

**At most one valid certificate per request.** A certificate is never requested twice for one
key without knowing the first outcome:

* the store is asked first: a certificate of the gateway with the request's public key is the
  answer (a repeated step, a retried activity, a re-run after a crash);
* before the request is sent, a ``submit`` entry for it (SHA-256 of the DER request) is committed
  to the audit log; every definite outcome follows as another entry in the same transaction as its
  effect (``issue`` with the imported certificate, ``refused``, ``unreachable``, ``failed``);
* a request whose last entry is still ``submit`` has an unknown outcome (answer lost, crash
  between the CA's answer and the commit): it is not sent again. The caller gets
  ``outcome_unknown`` and asks the gateway for a new key (a new request replaces the pending key,
  docs/protocol.md 10.4), so a certificate the CA may have issued for the abandoned key certifies a
  key that no longer exists anywhere (``abandon`` entry with the key ID, for the Sub-CA operator).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput
from domain.audit.repository import history, record
from domain.certificates import repository as repo
from domain.certificates.models import Certificate
from domain.certificates.service import CertificateRejected, GatewayNotFound, import_gateway
from domain.devices.service import get_gateway
from domain.tenancy.service import TenantContext
from pki.subca import SubCa, SubCaError, subca_for

REQUEST = "certificate_request"  # audit object type; object id = SHA-256 of the DER request
TERMINAL = ("issue", "refused", "unreachable", "failed", "abandon")


class RenewalRefused(InvalidInput):
    """A request gridgate does not send (not this gateway's, bad signature) or a refusal by the CA."""

    code = "renewal_refused"


@dataclass(frozen=True)
class Issued:
    status: str  # issued | already_issued | outcome_unknown
    csr_sha256: str
    key_id: str
    fingerprint: str | None = None
    pem: str | None = None
    not_after: str | None = None
    serial: str | None = None
    subca: str | None = None


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Due:
    due: list[tuple[str, Certificate]]  # (usage, its newest certificate), by usage
    missing: list[str]  # usages with no active certificate of the gateway in the store


async def due_for_renewal(session: AsyncSession, gateway: str, usages: Sequence[str], renew_before_days: int,
                          now: dt.datetime) -> Due:
    """Per usage the gateway's newest active certificate, due when it expires within
    ``renew_before_days`` or is revoked; usages without one are missing."""
    limit = now + dt.timedelta(days=renew_before_days)
    gw = await get_gateway(session, gateway)
    rows = await repo.active_of_gateway(session, gw.id, usages)
    # Ordered by not_after: the last one per usage wins.
    newest = {c.usage: c for c in rows if c.usage is not None}
    due = [(u, c) for u, c in sorted(newest.items()) if c.not_after <= limit or c.revocation == "revoked"]
    return Due(due=due, missing=sorted(set(usages) - set(newest)))


def check_request(gateway: str, usage: str, csr_pem: str) -> x509.CertificateSigningRequest:
    """The gateway's PKCS#10 request, refused unless it is well-formed, self-signed and names it."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        valid = csr.is_signature_valid
    except ValueError as err:
        raise RenewalRefused(f"the {usage} request of {gateway} is not a PKCS#10 request: {err}",
                             code="malformed") from None
    cns = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not valid:
        raise RenewalRefused(f"the {usage} request of {gateway} has a bad signature", code="malformed")
    if [c.upper() for c in cns] != [f"{gateway}.SMGW"]:
        raise RenewalRefused(f"the {usage} request names {cns}, not {gateway}.SMGW", code="malformed")
    return csr


async def _known(session: AsyncSession, gateway_pk: int, usage: str, spki: bytes) -> Certificate | None:
    for row in await repo.of_gateway_for_usage(session, gateway_pk, usage):
        if _spki(x509.load_der_x509_certificate(row.der).public_key()) == spki:
            return row
    return None


def _issued(status: str, csr_sha: str, key_id: str, row: Certificate, subca: str | None = None) -> Issued:
    pem = x509.load_der_x509_certificate(row.der).public_bytes(serialization.Encoding.PEM).decode()
    return Issued(status, csr_sha, key_id, row.fingerprint, pem, row.not_after.isoformat(), row.serial, subca)


async def certify_gateway_request(sessions: Callable[[], AsyncSession], tenant: TenantContext, gateway: str, usage: str,
                                  csr_pem: str, replaces: str | None = None, *,
                                  subca: SubCa | None = None) -> Issued:
    """Have the Sub-CA certify the gateway's request and store the certificate (active, linked to the
    gateway). ``replaces``: fingerprint of the certificate being renewed (its CRL distribution point
    names the Sub-CA when ``GRIDGATE_SUBCA_URL`` is unset). ``sessions()`` opens a tenant session.
    Raises :class:`RenewalRefused` (no retry helps) or :class:`pki.subca.SubCaError`."""
    csr = check_request(gateway, usage, csr_pem)
    der = csr.public_bytes(serialization.Encoding.DER)
    csr_sha = hashlib.sha256(der).hexdigest()
    spki = _spki(csr.public_key())
    key_id = hashlib.sha256(spki).hexdigest()
    async with sessions() as session, session.begin():
        gw_pk = await repo.gateway_pk(session, gateway)
        if gw_pk is None:
            raise GatewayNotFound(f"gateway {gateway!r} not found")
        known = await _known(session, gw_pk, usage, spki)
        if known is not None:
            return _issued("already_issued", csr_sha, key_id, known)
        last = await history(session, object_type=REQUEST, object_id=csr_sha, limit=1)
        if last and last[0].action not in TERMINAL:
            record(session, "abandon", REQUEST, csr_sha, {
                "gateway": {"old": None, "new": gateway}, "usage": {"old": None, "new": usage},
                "key_id": {"old": None, "new": key_id},
                "why": {"old": None, "new": "outcome of the earlier submission unknown; the gateway makes a new key"}})
            return Issued("outcome_unknown", csr_sha, key_id)
        old = await repo.by_fingerprint(session, replaces) if replaces else None
        ca = subca or subca_for(list(old.crl_urls) if old is not None else [])
        record(session, "submit", REQUEST, csr_sha, {
            "gateway": {"old": None, "new": gateway}, "usage": {"old": None, "new": usage},
            "key_id": {"old": None, "new": key_id}, "subca": {"old": None, "new": ca.url},
            "replaces": {"old": None, "new": replaces}})
    try:
        pem = await ca.certify(der, usage)
    except SubCaError as err:
        if err.issued is False:
            async with sessions() as session, session.begin():
                action = {"subca_refused": "refused", "subca_unreachable": "unreachable"}.get(err.reason, "failed")
                record(session, action, REQUEST, csr_sha, {"reason": {"old": None, "new": err.reason},
                                                            "detail": {"old": None, "new": err.detail[:300]}})
        raise
    try:
        cert: x509.Certificate | None = x509.load_pem_x509_certificate(pem)
    except ValueError:
        cert = None
    try:
        async with sessions() as session, session.begin():
            if cert is None:
                raise _NotStored("the Sub-CA's answer is not a PEM certificate")
            if _spki(cert.public_key()) != spki:
                raise _NotStored("the certificate is not for the requested key")
            try:
                outcome = await import_gateway(session, tenant, pem, gateway)
            except CertificateRejected as err:
                raise _NotStored(f"the issued certificate does not validate: {err.message}") from None
            row = (outcome.imported or outcome.unchanged)[0]
            if row.usage != usage:
                raise _NotStored(f"the Sub-CA issued a {row.usage} certificate for a {usage} request")
            record(session, "issue", REQUEST, csr_sha, {"fingerprint": {"old": None, "new": row.fingerprint},
                                                        "serial": {"old": None, "new": row.serial}})
            return _issued("issued", csr_sha, key_id, row, ca.url)
    except _NotStored as err:
        async with sessions() as session, session.begin():
            serial = f"{cert.serial_number:x}" if cert is not None else None
            record(session, "issue_rejected", REQUEST, csr_sha, {"detail": {"old": None, "new": err.problem},
                                                                 "serial": {"old": None, "new": serial}})
        raise RenewalRefused(f"{usage}: {err.problem}", code="certificate_invalid") from None


class _NotStored(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


async def _gateway_certificates(session: AsyncSession, gateway: str, fingerprints: list[str]
                                ) -> tuple[int, dict[str, Certificate]]:
    gw_pk = await repo.gateway_pk(session, gateway)
    if gw_pk is None:
        raise GatewayNotFound(f"gateway {gateway!r} not found")
    return gw_pk, await repo.by_fingerprints(session, fingerprints)


def _end_active(session: AsyncSession, row: Certificate, status: str, action: str, now: dt.datetime,
                why: dict[str, Any]) -> None:
    """An active certificate leaves service (``superseded`` / ``retired``), revocation requested."""
    row.status = status
    if row.revocation_requested_at is None:
        row.revocation_requested_at = now
    record(session, action, "certificate", row.fingerprint, {
        "status": {"old": "active", "new": status}, **why,
        "revocation_requested_at": {"old": None, "new": now.isoformat()}})


async def supersede_renewed(session: AsyncSession, gateway: str, renewed: dict[str, str]) -> list[str]:
    """``renewed``: old fingerprint -> the new one the gateway now uses. Each old certificate still
    active becomes ``superseded`` with revocation requested (for the Sub-CA). Returns the fingerprints
    changed (idempotent: a repeat changes nothing)."""
    gw_pk, rows = await _gateway_certificates(session, gateway, [*renewed, *renewed.values()])
    now = dt.datetime.now(dt.UTC)
    done = []
    for old_fp, new_fp in renewed.items():
        old, new = rows.get(old_fp), rows.get(new_fp)
        if old is None or new is None or old.gateway_id != gw_pk or new.gateway_id != gw_pk:
            raise RenewalRefused(f"{old_fp[:16]} / {new_fp[:16]} are not certificates of {gateway}",
                                 code="certificates_unknown")
        if old.status == "active":
            _end_active(session, old, "superseded", "supersede", now, {"superseded_by": {"old": None, "new": new_fp}})
            done.append(old_fp)
    await session.flush()
    return done


async def retire_uninstalled(session: AsyncSession, gateway: str, fingerprints: list[str]) -> list[str]:
    """Certificates a renewal obtained but never sent to the gateway (it failed before the install):
    ``retired`` with revocation requested, so the certificate they were to replace is found due
    again. Returns the fingerprints changed (idempotent)."""
    gw_pk, rows = await _gateway_certificates(session, gateway, fingerprints)
    now = dt.datetime.now(dt.UTC)
    done = []
    for fp in fingerprints:
        row = rows.get(fp)
        if row is not None and row.gateway_id == gw_pk and row.status == "active":
            _end_active(session, row, "retired", "retire", now, {
                "why": {"old": None, "new": "renewal failed before the certificate was installed"}})
            done.append(fp)
    await session.flush()
    return done
