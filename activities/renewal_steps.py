"""Domain steps of certificate renewal: which of a gateway's certificates are due, the Sub-CA's
certificate for the gateway's request (stored before it is installed), the replaced certificates
superseded with revocation requested (``domain/certificates/renewal.py``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.steps_common import Steps, domain_refusals
from domain.certificates import renewal
from pki.subca import SubCaError


@dataclass(frozen=True, kw_only=True)
class DueInput:
    gateway_id: str
    usages: list[str] = field(default_factory=lambda: ["tls", "sig", "enc"])
    renew_before_days: int = 60


@dataclass(frozen=True, kw_only=True)
class DueCertificate:
    usage: str
    fingerprint: str
    not_after: str
    subject: str


@dataclass(frozen=True, kw_only=True)
class DueCertificates:
    due: list[DueCertificate]
    missing: list[str]  # usages with no certificate of the gateway in the store


@dataclass(frozen=True, kw_only=True)
class CertifyInput:
    gateway_id: str
    usage: str
    csr_pem: str  # the gateway's PKCS#10 request (request_certificate_signing)
    replaces: str | None = None  # fingerprint of the certificate being renewed


@dataclass(frozen=True, kw_only=True)
class CertifyResult:
    status: str  # issued | already_issued | outcome_unknown (ask the gateway for a new key)
    csr_sha256: str
    key_id: str
    fingerprint: str | None = None
    pem: str | None = None
    not_after: str | None = None
    serial: str | None = None


@dataclass(frozen=True, kw_only=True)
class SupersedeInput:
    gateway_id: str
    renewed: dict[str, str]  # old fingerprint -> new fingerprint


@dataclass(frozen=True, kw_only=True)
class SupersedeResult:
    superseded: list[str]


@dataclass(frozen=True, kw_only=True)
class RetireInput:
    gateway_id: str
    fingerprints: list[str]


class RenewalSteps(Steps):
    @activity.defn
    @domain_refusals
    async def find_certificates_due_for_renewal(self, inp: DueInput) -> DueCertificates:
        async with self._session() as session:
            found = await renewal.due_for_renewal(session, inp.gateway_id, inp.usages, inp.renew_before_days,
                                                  dt.datetime.now(dt.UTC))
        due = [DueCertificate(usage=u, fingerprint=c.fingerprint, not_after=c.not_after.isoformat(), subject=c.subject)
               for u, c in found.due]
        return DueCertificates(due=due, missing=found.missing)

    @activity.defn
    @domain_refusals
    async def certify_gateway_request(self, inp: CertifyInput) -> CertifyResult:
        """The Sub-CA certifies the gateway's request; the certificate is in the store on return."""
        try:
            got = await renewal.certify_gateway_request(self._session, self.runtime.tenant, inp.gateway_id,
                                                        inp.usage, inp.csr_pem, inp.replaces)
        except SubCaError as err:
            what = {"subca_refused": "refused", "subca_unreachable": "could not be reached for",
                    "subca_no_answer": "gave no answer to", "subca_error": "failed on"}.get(err.reason, "failed on")
            raise ApplicationError(f"the Sub-CA {what} the {inp.usage} request of {inp.gateway_id}: {err.detail}",
                                   type=err.reason, non_retryable=not err.retryable) from None
        return CertifyResult(status=got.status, csr_sha256=got.csr_sha256, key_id=got.key_id,
                             fingerprint=got.fingerprint, pem=got.pem, not_after=got.not_after, serial=got.serial)

    @activity.defn
    @domain_refusals
    async def supersede_renewed_certificates(self, inp: SupersedeInput) -> SupersedeResult:
        async with self._session() as session, session.begin():
            return SupersedeResult(superseded=await renewal.supersede_renewed(session, inp.gateway_id, inp.renewed))

    @activity.defn
    @domain_refusals
    async def retire_uninstalled_certificates(self, inp: RetireInput) -> SupersedeResult:
        async with self._session() as session, session.begin():
            return SupersedeResult(superseded=await renewal.retire_uninstalled(session, inp.gateway_id,
                                                                                inp.fingerprints))
