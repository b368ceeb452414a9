"""The head-end side of key renewal (``request_certificate_signing``, then ``install_certificates``
of the certificate the Sub-CA issued) and ``delete_communication_profile``, end to end against the
simulated gateway: the request is checked, repeated by command ID without a new key; after the
install the gateway's next connection presents the renewed TLS certificate (reported with
``read_device_info``) and the head-end seals for the renewed ENC certificate.

Gateway 3: no test after this one uses it, and its certificates are not in the store (the head-end
reads its ENC certificate from the gateway), so no store update is needed for its new TLS
certificate to be admitted."""

from __future__ import annotations

import pytest
from cryptography import x509
from temporalio.exceptions import ApplicationError

from headend import contract as M
from pki.testca import certify_csr
from pki.validation import fingerprint
from tests.headend.conftest import GATEWAYS, TENANT, Acts, HeSim, HeTenant

GID = GATEWAYS[3]


def _smgw(usage: str, cert: x509.Certificate) -> M.CertificateToInstall:
    from cryptography.hazmat.primitives import serialization

    return M.CertificateToInstall(owner=GID, role="smgw", usage=usage,
                                  pem=cert.public_bytes(serialization.Encoding.PEM).decode())


async def test_renewal_of_a_gateways_keys(sim: HeSim, acts: Acts, he_tenant: HeTenant) -> None:
    pki = he_tenant.pki
    state = sim.fleet.gateways[GID].state
    before = await acts("read_device_info", M.ReadDeviceInfoInput(gateway_id=GID, command_id="rn-info0"))
    assert before.tls_certificate_sha256 == fingerprint(pki.gateway(GID).tls.cert)

    req = await acts("request_certificate_signing", M.RequestCertificateSigningInput(
        gateway_id=GID, command_id="rn-csr-tls", usage="tls"))
    csr = x509.load_pem_x509_csr(req.csr_pem.encode())
    assert req.usage == "tls" and csr.is_signature_valid and csr.subject == pki.gateway(GID).tls.cert.subject
    assert req.subject == csr.subject.rfc4514_string() and len(req.key_id) == 64
    again = await acts("request_certificate_signing", M.RequestCertificateSigningInput(
        gateway_id=GID, command_id="rn-csr-tls", usage="tls"))
    assert again == req
    assert state.counters["applied_by_kind"]["request_certificate_signing"] == 1

    new_tls = certify_csr(pki, req.csr_pem.encode(), "tls")
    installed = await acts("install_certificates", M.InstallCertificatesInput(
        gateway_id=GID, command_id="rn-install-tls", certificates=(_smgw("tls", new_tls),)))
    assert [(c.usage, c.sha256, c.status) for c in installed.certificates] == [
        ("tls", fingerprint(new_tls), "installed")]
    # The gateway closed its connection after the install and came back with the new certificate.
    after = await acts("read_device_info", M.ReadDeviceInfoInput(gateway_id=GID, command_id="rn-info1"))
    assert after.tls_certificate_sha256 == fingerprint(new_tls)

    sig = await acts("request_certificate_signing", M.RequestCertificateSigningInput(
        gateway_id=GID, command_id="rn-csr-sig", usage="sig"))
    enc = await acts("request_certificate_signing", M.RequestCertificateSigningInput(
        gateway_id=GID, command_id="rn-csr-enc", usage="enc"))
    new_sig = certify_csr(pki, sig.csr_pem.encode(), "sig")
    new_enc = certify_csr(pki, enc.csr_pem.encode(), "enc")
    both = await acts("install_certificates", M.InstallCertificatesInput(
        gateway_id=GID, command_id="rn-install-sig-enc", certificates=(_smgw("sig", new_sig), _smgw("enc", new_enc))))
    assert {c.usage: c.status for c in both.certificates} == {"sig": "installed", "enc": "installed"}
    # The next request is sealed for the renewed ENC certificate (read from the gateway again).
    await acts("set_time", M.SetTimeInput(gateway_id=GID, command_id="rn-clock", mode="shift", shift_ms=0))
    assert acts.activities.node.endpoints[TENANT].enc_certs[GID] == new_enc
    assert set(state.own_keys) == {"tls", "sig", "enc"} and not state.pending_keys

    with pytest.raises(ApplicationError) as err:
        await acts("request_certificate_signing", M.RequestCertificateSigningInput(
            gateway_id=GID, command_id="rn-csr-bad", usage="lmn"))
    assert err.value.type == "malformed" and err.value.non_retryable


async def test_delete_communication_profile(sim: HeSim, acts: Acts, he_tenant: HeTenant) -> None:
    enc = he_tenant.pki.emts["emt1"].enc.cert_path.read_text()
    await acts("install_certificates", M.InstallCertificatesInput(gateway_id=GID, command_id="dc-certs", certificates=(
        M.CertificateToInstall(owner="emt1", role="emt", usage="enc", pem=enc),)))
    await acts("write_communication_profile", M.WriteCommunicationProfileInput(
        gateway_id=GID, command_id="dc-cp", profile=M.CommunicationProfile(
            profile_id="cp-dc", peer="emt1", endpoint="https://emt1.gridgate.test/smgw")))
    inp = M.DeleteCommunicationProfileInput(gateway_id=GID, command_id="dc-del", profile_id="cp-dc")
    gone = await acts("delete_communication_profile", inp)
    assert (gone.kind, gone.profile_id, gone.existed) == ("communication", "cp-dc", True)
    assert await acts("delete_communication_profile", inp) == gone  # answered from the command table
    absent = await acts("delete_communication_profile", M.DeleteCommunicationProfileInput(
        gateway_id=GID, command_id="dc-del2", profile_id="cp-dc"))
    assert not absent.existed
    assert "cp-dc" not in sim.fleet.gateways[GID].state.profiles["communication"]
