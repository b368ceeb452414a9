"""Certificate renewal of one gateway, as far as the administration protocol allows.

Renewal needs a PKCS#10 request signed with the gateway's new key: the gateway generates its keys
itself and never hands out a private key. docs/protocol.md (section 10) has no command that makes the
gateway produce such a request, so this process finds the certificates that are due and stops there
with reason ``csr_unavailable`` instead of faking a request. The missing command and the steps after
it (test CA /certify, import, ``install_certificates`` with role smgw, verify by hash) are described
in docs/processes.md.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.renewal_steps import DueCertificates, DueInput
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink, GatewayStepFailed

MISSING_COMMAND = "request_certificate_signing"


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
        self.at("obtain_certificate_request")
        raise GatewayStepFailed(
            "csr_unavailable",
            f"{len(found.due)} certificate(s) due ({', '.join(d.usage for d in found.due)}, the first expiring "
            f"{found.due[0].not_after}); the gateway administration protocol has no command to obtain a PKCS#10 "
            f"request from the gateway ({MISSING_COMMAND}), so the renewal cannot proceed")
