"""Certificate renewal on the time-skipping server, the path where the Sub-CA's answer is lost: the
request is never sent twice, the gateway is asked for a new key instead (a new command), and after
two lost answers the gateway's process fails with ``subca_outcome_unknown``, nothing installed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.renewal_steps import CertifyInput, CertifyResult, DueCertificate, DueCertificates, DueInput
from headend import contract as gc
from tests.workflows.harness import running
from tests.workflows.standins import HeadendNode, ProcessBook
from workflows.certificate_renewal import KEY_ATTEMPTS, CertificateRenewalInput, CertificateRenewalWorkflow

GATEWAY = "EEMH0720000200"


@dataclass
class LostAnswers:
    """The renewal's domain steps and the gateway's key requests; the Sub-CA never answers."""

    requests: list[gc.RequestCertificateSigningInput] = field(default_factory=list)
    certified: list[CertifyInput] = field(default_factory=list)
    installs: int = 0

    @activity.defn
    async def find_certificates_due_for_renewal(self, inp: DueInput) -> DueCertificates:
        return DueCertificates(due=[DueCertificate(usage="sig", fingerprint="ab" * 32, not_after="2026-12-20T00:00:00Z",
                                                   subject=f"CN={inp.gateway_id}.SMGW")], missing=[])

    @activity.defn
    async def certify_gateway_request(self, inp: CertifyInput) -> CertifyResult:
        self.certified.append(inp)
        return CertifyResult(status="outcome_unknown", csr_sha256=f"{len(self.certified):064x}", key_id="k")

    @activity.defn
    async def request_certificate_signing(self, inp: gc.RequestCertificateSigningInput
                                          ) -> gc.RequestCertificateSigningResult:
        self.requests.append(inp)
        n = len(self.requests)
        return gc.RequestCertificateSigningResult(gateway_id=inp.gateway_id, usage=inp.usage, csr_pem=f"csr-{n}",
                                                  key_id=f"key-{n}", sha256=f"{n:064x}", subject="CN=x")

    @activity.defn
    async def install_certificates(self, inp: gc.InstallCertificatesInput) -> gc.InstallCertificatesResult:
        self.installs += 1
        raise ApplicationError("must not be reached", non_retryable=True)


async def test_a_lost_subca_answer_is_never_resent_and_ends_outcome_unknown(time_env: WorkflowEnvironment) -> None:
    steps, book, node = LostAnswers(), ProcessBook(gateways=[GATEWAY]), HeadendNode()
    client = time_env.client
    async with running(client, [*book.activities(), steps.find_certificates_due_for_renewal,
                                steps.certify_gateway_request],
                       [node.ensure_gateway_connected],
                       [steps.request_certificate_signing, steps.install_certificates]) as queue:
        handle = await client.start_workflow(
            CertificateRenewalWorkflow.run,
            CertificateRenewalInput(process_id="p-renew", seq=1, gateway_id=GATEWAY, process_type="certificate_renewal",
                                    connect_timeout_s=10, attempts=2),
            id=f"certificate_renewal/{GATEWAY}/{uuid.uuid4().hex[:6]}", task_queue=queue)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "subca_outcome_unknown"
    assert len(steps.requests) == KEY_ATTEMPTS
    assert len({r.command_id for r in steps.requests}) == KEY_ATTEMPTS  # a new key each time, not a repeat
    assert [c.csr_pem for c in steps.certified] == ["csr-1", "csr-2"]  # each request sent once
    assert steps.installs == 0
    assert book.outcomes == {1: "failed"}
