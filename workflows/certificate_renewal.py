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

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import headend.contract as gc
    from activities.renewal_steps import (
        CertifyInput,
        CertifyResult,
        DueCertificate,
        DueCertificates,
        DueInput,
        RetireInput,
        SupersedeInput,
        SupersedeResult,
    )
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink, GatewayStepFailed

MISSING_COMMAND = "request_certificate_signing"
# Version marker: before it, the process stopped with csr_unavailable after finding what is due.
PATCH_REQUEST_CSR = "renewal-request-certificate-signing"
# New keys the gateway is asked for per usage when the Sub-CA's answer to a request was lost.
KEY_ATTEMPTS = 2


@workflow.defn(name="CertificateRenewal")
class CertificateRenewalWorkflow(GatewayProcessWorkflow):
    @workflow.run
    async def run(self, inp: GatewayProcessInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: GatewayProcessInput, link: GatewayLink) -> dict[str, Any]:
        gw = inp.gateway_id
        self.at("find_certificates_due_for_renewal")
        found: DueCertificates = await domain_step("find_certificates_due_for_renewal", DueInput(
            gw, list(inp.params.get("usages") or ["tls", "sig", "enc"]),
            int(inp.params.get("renew_before_days", 60))), DueCertificates)
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
                    await domain_step("retire_uninstalled_certificates", RetireInput(
                        gw, [r.fingerprint for _, r in issued.values() if r.fingerprint]), SupersedeResult)
                except GatewayStepFailed as err:  # the original failure is the one to report
                    workflow.logger.warning("renewal of %s: issued certificates not retired: %s", gw, err.message)
            raise

        self.at("install_renewed_certificates")
        installed = await link.run("install_certificates", lambda cid: gc.InstallCertificatesInput(
            gateway_id=gw, command_id=cid, certificates=tuple(
                gc.CertificateToInstall(owner=gw, role="smgw", usage=u, pem=r.pem or "")
                for u, (_, r) in issued.items())), gc.InstallCertificatesResult, step="install_renewed_certificates")
        got = {(c.usage, c.sha256) for c in installed.certificates if c.status in ("installed", "unchanged")}
        wrong = [u for u, (_, r) in issued.items() if (u, r.fingerprint) not in got]
        if wrong:
            raise GatewayStepFailed("verification_failed", f"the gateway did not report the renewed "
                                                           f"{', '.join(wrong)} certificate(s) installed")
        if "tls" in issued:
            new_tls = issued["tls"][1].fingerprint
            info = await link.run("read_device_info", lambda cid: gc.ReadDeviceInfoInput(
                gateway_id=gw, command_id=cid), gc.DeviceInfoResult, step=self.at("verify_renewed_tls_certificate"))
            if info.tls_certificate_sha256 != new_tls:
                raise GatewayStepFailed("verification_failed", (
                    f"the gateway's connection presents TLS certificate {(info.tls_certificate_sha256 or '?')[:16]}, "
                    f"not the renewed {(new_tls or '?')[:16]}"))

        self.at("supersede_renewed_certificates")
        done: SupersedeResult = await domain_step("supersede_renewed_certificates", SupersedeInput(
            gw, {d.fingerprint: r.fingerprint or "" for d, r in issued.values()}), SupersedeResult)
        return {"due": len(due), "renewed": len(issued), "usages": ",".join(sorted(issued)),
                "superseded": len(done.superseded),
                "not_after": min(r.not_after or "" for _, r in issued.values()),
                **{f"{u}_sha256": r.fingerprint for u, (_, r) in issued.items()}}

    async def certificate_for(self, gw: str, d: DueCertificate, link: GatewayLink) -> CertifyResult:
        """The Sub-CA's certificate for a new key of ``d.usage`` (stored). A request whose answer
        was lost is not sent again: the gateway makes another key (a new command ID)."""
        for attempt in range(1, KEY_ATTEMPTS + 1):
            suffix = "" if attempt == 1 else f"/{attempt}"
            req = await link.run("request_certificate_signing", lambda cid: gc.RequestCertificateSigningInput(
                gateway_id=gw, command_id=cid, usage=d.usage), gc.RequestCertificateSigningResult,
                step=self.at(f"request_certificate_signing/{d.usage}{suffix}"))
            self.at(f"certify_request/{d.usage}{suffix}")
            got: CertifyResult = await domain_step("certify_gateway_request", CertifyInput(
                gw, d.usage, req.csr_pem, d.fingerprint), CertifyResult)
            if got.status != "outcome_unknown":
                return got
        raise GatewayStepFailed("subca_outcome_unknown", (
            f"the Sub-CA's answer to {KEY_ATTEMPTS} {d.usage} requests was lost; certificates it may have issued "
            f"are for keys the gateway discarded (audit log, certificate_request)"))
