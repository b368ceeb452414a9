"""Certificate renewal of one gateway (docs/processes.md, certificate_renewal).

For each due usage the gateway makes a new key and a PKCS#10 request for it
(``request_certificate_signing``: the gateway keeps its private keys), the tenant's Sub-CA
certifies it and the certificate is stored at once (``certify_gateway_request``: idempotent, and a
request whose outcome is unknown is never sent twice: the gateway makes another key instead). Then
one ``install_certificates`` activates the new keys on the gateway, a TLS renewal is verified on the
connection the gateway opens with its new certificate, and the replaced certificates are superseded
with revocation requested.

Workflows started before ``request_certificate_signing`` existed stopped with ``csr_unavailable``;
their histories replay on that branch (``PATCH_REQUEST_CSR``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import headend.contract as gc
    from activities.gateway_commands import GatewayCommandActivities as Commands
    from activities.renewal_steps import (
        CertifyInput,
        CertifyResult,
        DueCertificate,
        DueInput,
        RenewalSteps,
        RetireInput,
        SupersedeInput,
    )
    from domain.processes.types import CertificateRenewalParams
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink, GatewayStepFailed

MISSING_COMMAND = "request_certificate_signing"
# Version marker: before it, the process stopped with csr_unavailable after finding what is due.
PATCH_REQUEST_CSR = "renewal-request-certificate-signing"
# New keys the gateway is asked for per usage when the Sub-CA's answer to a request was lost.
KEY_ATTEMPTS = 2


@dataclass(frozen=True, kw_only=True)
class CertificateRenewalInput(GatewayProcessInput):
    params: CertificateRenewalParams = field(default_factory=CertificateRenewalParams)


@workflow.defn(name="CertificateRenewal")
class CertificateRenewalWorkflow(GatewayProcessWorkflow[CertificateRenewalInput]):
    @workflow.run
    async def run(self, inp: CertificateRenewalInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: CertificateRenewalInput, link: GatewayLink) -> dict[str, Any]:
        gw = inp.gateway_id
        self.at("find_certificates_due_for_renewal")
        found = await domain_step(RenewalSteps.find_certificates_due_for_renewal, DueInput(
            gateway_id=gw, usages=list(inp.params.usages), renew_before_days=inp.params.renew_before_days))
        if found.missing:
            raise GatewayStepFailed("certificates_unknown", f"no {', '.join(found.missing).upper()} certificate of "
                                                            f"{gw} in the certificate store to renew")
        if not found.due:
            return {"due": 0, "renewal": "not_due"}
        if not workflow.patched(PATCH_REQUEST_CSR):
            self.at("obtain_certificate_request")
            raise GatewayStepFailed(
                "csr_unavailable",
                f"{len(found.due)} certificate(s) due ({', '.join(d.usage for d in found.due)}, the first expiring "
                f"{found.due[0].not_after}); the gateway administration protocol has no command to obtain a PKCS#10 "
                f"request from the gateway ({MISSING_COMMAND}), so the renewal cannot proceed")
        return await self.renew(gw, found.due, link)

    async def renew(self, gw: str, due: list[DueCertificate], link: GatewayLink) -> dict[str, Any]:
        issued: dict[str, tuple[DueCertificate, CertifyResult]] = {}
        try:
            for d in due:
                issued[d.usage] = (d, await self.certificate_for(gw, d, link))
        except GatewayStepFailed:
            # Nothing was sent to the gateway: what the Sub-CA issued so far is never going to be used.
            if issued:
                try:
                    await domain_step(RenewalSteps.retire_uninstalled_certificates, RetireInput(
                        gateway_id=gw, fingerprints=[r.fingerprint for _, r in issued.values() if r.fingerprint]))
                except GatewayStepFailed as err:  # the original failure is the one to report
                    workflow.logger.warning("renewal of %s: issued certificates not retired: %s", gw, err.message)
            raise

        self.at("install_renewed_certificates")
        installed = await link.run(Commands.install_certificates, partial(gc.InstallCertificatesInput, gateway_id=gw,
            certificates=tuple(
                gc.CertificateToInstall(owner=gw, role="smgw", usage=u, pem=r.pem or "")
                for u, (_, r) in issued.items())), step="install_renewed_certificates")
        got = {(c.usage, c.sha256) for c in installed.certificates if c.status in ("installed", "unchanged")}
        wrong = [u for u, (_, r) in issued.items() if (u, r.fingerprint) not in got]
        if wrong:
            raise GatewayStepFailed("verification_failed", f"the gateway did not report the renewed "
                                                           f"{', '.join(wrong)} certificate(s) installed")
        if "tls" in issued:
            new_tls = issued["tls"][1].fingerprint
            info = await link.run(Commands.read_device_info, partial(gc.ReadDeviceInfoInput, gateway_id=gw),
                step=self.at("verify_renewed_tls_certificate"))
            if info.tls_certificate_sha256 != new_tls:
                raise GatewayStepFailed("verification_failed", (
                    f"the gateway's connection presents TLS certificate {(info.tls_certificate_sha256 or '?')[:16]}, "
                    f"not the renewed {(new_tls or '?')[:16]}"))

        self.at("supersede_renewed_certificates")
        done = await domain_step(RenewalSteps.supersede_renewed_certificates, SupersedeInput(
            gateway_id=gw, renewed={d.fingerprint: r.fingerprint or "" for d, r in issued.values()}))
        return {"due": len(due), "renewed": len(issued), "usages": ",".join(sorted(issued)),
                "superseded": len(done.superseded),
                "not_after": min(r.not_after or "" for _, r in issued.values()),
                **{f"{u}_sha256": r.fingerprint for u, (_, r) in issued.items()}}

    async def certificate_for(self, gw: str, d: DueCertificate, link: GatewayLink) -> CertifyResult:
        """The Sub-CA's certificate for a new key of ``d.usage`` (stored). A request whose answer
        was lost is not sent again: the gateway makes another key (a new command ID)."""
        for attempt in range(1, KEY_ATTEMPTS + 1):
            suffix = "" if attempt == 1 else f"/{attempt}"
            req = await link.run(Commands.request_certificate_signing, partial(gc.RequestCertificateSigningInput,
                gateway_id=gw, usage=d.usage),
                step=self.at(f"request_certificate_signing/{d.usage}{suffix}"))
            self.at(f"certify_request/{d.usage}{suffix}")
            got = await domain_step(RenewalSteps.certify_gateway_request, CertifyInput(
                gateway_id=gw, usage=d.usage, csr_pem=req.csr_pem, replaces=d.fingerprint))
            if got.status != "outcome_unknown":
                return got
        raise GatewayStepFailed("subca_outcome_unknown", (
            f"the Sub-CA's answer to {KEY_ATTEMPTS} {d.usage} requests was lost; certificates it may have issued "
            f"are for keys the gateway discarded (audit log, certificate_request)"))
