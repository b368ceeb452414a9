"""Renewal of a gateway's own keys (docs/protocol.md 10.4, ``request_certificate_signing``) and
``delete_communication_profile`` (10.6), against the simulator through the GWA stub: a fresh
pending key per usage and command ID, the certificate for it activates it (TLS presented from the
reconnect on, SIG signing, ENC decrypting with the old and the pending key too), all of it kept
across a restart."""

from __future__ import annotations

import base64
import hashlib
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki import cms, tls
from pki.testca import certify_csr
from pki.testpki import TestPki
from simulator.run import Simulator
from simulator.state import meter_ids
from tests.simulator.conftest import SimFactory, connect, fleet, gid
from tests.simulator.gwa_stub import GwaStub, Link, child_of, xml
from tests.simulator.helpers import (
    CERTS_INSTALL,
    CERTS_READ,
    CLOCK,
    COMM_PROFILE,
    EVAL_PROFILE,
    cert_el,
    commission,
    new_id,
    post,
)

CSR = "objects/64-00002b0000ff/methods/5"
Q = "{urn:gridgate:gwa:1}"


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


async def _csr(link: Link, usage: str, command_id: str) -> tuple[x509.CertificateSigningRequest, ET.Element]:
    reply = await post(link, CSR, xml("generateCertificateRequest", {"usage": usage}), command_id)
    assert reply.status == 200, reply
    root = reply.root
    assert root is not None and root.tag == Q + "certificateRequest" and root.get("usage") == usage
    der = base64.b64decode(root.text or "")
    assert root.get("sha256") == hashlib.sha256(der).hexdigest()
    return x509.load_der_x509_csr(der), root


def _install(gateway_id: str, *certs: tuple[str, x509.Certificate]) -> bytes:
    return xml("certificates", {}, *(cert_el(gateway_id, "smgw", usage, c) for usage, c in certs))


def _presented(link: Link) -> x509.Certificate:
    cert = tls.peer_certificate(link.writer.get_extra_info("ssl_object"))
    assert cert is not None
    return cert


async def test_renewal_of_tls_sig_and_enc_keys(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = gid(0)
    state = tmp_path / "state"
    sim = await make_sim(gateways=1, state=state)
    link = await connect(sim, stub, g, sim_pki)
    old = sim_pki.gateway(g)
    assert _presented(link).serial_number == old.tls.cert.serial_number

    csr, root = await _csr(link, "tls", "csr-tls")
    assert csr.is_signature_valid and csr.subject == old.tls.cert.subject
    key = csr.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "brainpoolP256r1"
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert root.get("keyId") == hashlib.sha256(spki).hexdigest()
    again, _ = await _csr(link, "tls", "csr-tls")  # the same command ID: the same request, no new key
    assert again.public_bytes(serialization.Encoding.DER) == csr.public_bytes(serialization.Encoding.DER)
    st = fleet(sim).gateways[g].state
    assert st.counters["applied_by_kind"]["request_certificate_signing"] == 1 and st.counters["repeated"] == 1

    # A restart keeps the pending key: the certificate issued for it is installed afterwards.
    await sim.stop()
    stub.forget(g)
    sim = await make_sim(gateways=1, state=state)
    link = await connect(sim, stub, g, sim_pki, timestamp=int(time.time()) + 1)
    new_tls = certify_csr(sim_pki, csr.public_bytes(serialization.Encoding.PEM), "tls")
    stub.forget(g)
    reply = await post(link, CERTS_INSTALL, _install(g, ("tls", new_tls)), "install-tls")
    assert reply.status == 200 and reply.headers.get("connection") == "close"
    item = child_of(reply.element, "certificate")
    assert (item.get("status"), item.get("sha256")) == ("installed", hashlib.sha256(_der(new_tls)).hexdigest())
    # The gateway reconnects on its own, presenting the renewed TLS certificate.
    link = await stub.wait_link(g)
    assert _presented(link) == new_tls

    # SIG and ENC in one install; while the ENC key is pending it already decrypts.
    sig_csr, _ = await _csr(link, "sig", "csr-sig")
    enc_csr, _ = await _csr(link, "enc", "csr-enc")
    new_sig = certify_csr(sim_pki, sig_csr.public_bytes(serialization.Encoding.PEM), "sig")
    new_enc = certify_csr(sim_pki, enc_csr.public_bytes(serialization.Encoding.PEM), "enc")
    gwa = sim_pki.gwa

    def sealed_for(cert: x509.Certificate, body: bytes) -> bytes:
        return cms.seal(body, sign_key=gwa.sig.key, sign_cert=gwa.sig.cert, recipient_cert=cert)

    assert (await link.request("GET", CLOCK)).status == 200
    pending_read = xml("clock", {"mode": "shift", "shiftMs": 1})
    reply = await link.request("PUT", CLOCK, raw_body=sealed_for(new_enc, pending_read), command_id=new_id())
    assert reply.status == 204, reply
    signers: list[x509.Certificate] = []
    opener = stub.open_from_gateway

    def capture(data: bytes) -> tuple[ET.Element, str | None]:
        signers.append(cms.verify(data, validator=sim_pki.validator()).signer)
        return opener(data)

    monkeypatch.setattr(stub, "open_from_gateway", capture)
    reply = await post(link, CERTS_INSTALL, _install(g, ("sig", new_sig), ("enc", new_enc)), "install-sig-enc")
    assert reply.status == 200 and reply.headers.get("connection") != "close"
    assert {i.get("usage"): i.get("status") for i in reply.element.findall(Q + "certificate")} == {
        "sig": "installed", "enc": "installed"}
    assert signers[-1] == new_sig  # the answer is already signed with the new SIG key
    # ENC: the new certificate is the recipient now, and the old one still opens (key kept for decrypting).
    assert (await link.request("PUT", CLOCK, raw_body=sealed_for(new_enc, pending_read),
                               command_id=new_id())).status == 204
    assert (await link.request("PUT", CLOCK, pending_read, command_id=new_id())).status == 204  # sealed for old

    # The gateway lists its renewed certificates, and keeps them across a restart.
    listed = {e.get("usage"): base64.b64decode(e.text or "")
              for e in (await link.request("GET", CERTS_READ)).element.findall(Q + "certificate")}
    assert listed == {"tls": _der(new_tls), "sig": _der(new_sig), "enc": _der(new_enc)}
    await sim.stop()
    stub.forget(g)
    monkeypatch.setattr(stub, "open_from_gateway", opener)
    sim = await make_sim(gateways=1, state=state)
    link = await connect(sim, stub, g, sim_pki, timestamp=int(time.time()) + 2)
    assert _presented(link) == new_tls
    monkeypatch.setattr(stub, "open_from_gateway", capture)
    assert (await link.request("PUT", CLOCK, raw_body=sealed_for(new_enc, pending_read),
                               command_id=new_id())).status == 204
    assert signers[-1] == new_sig
    st = fleet(sim).gateways[g].state
    assert not st.pending_keys and set(st.own_keys) == {"tls", "sig", "enc"}


async def test_renewal_refusals(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g = gid(1)
    link = await connect(sim, stub, g, sim_pki)
    bad = await post(link, CSR, xml("generateCertificateRequest", {"usage": "lmn"}))
    assert (bad.status, bad.reason) == (400, "malformed")

    first, _ = await _csr(link, "sig", new_id("csr"))
    second, _ = await _csr(link, "sig", new_id("csr"))  # a new command ID: a new key replaces the pending one
    assert first.public_key() != second.public_key()
    discarded = certify_csr(sim_pki, first.public_bytes(serialization.Encoding.PEM), "sig")
    refused = await post(link, CERTS_INSTALL, _install(g, ("sig", discarded)))
    assert (refused.status, refused.reason) == (422, "certificate_invalid")
    # A certificate of another gateway for a key this one does not hold: refused too.
    other = await post(link, CERTS_INSTALL, _install(g, ("sig", sim_pki.gateway(gid(2)).sig.cert)))
    assert (other.status, other.reason) == (422, "certificate_invalid")
    # The pending key is still usable.
    good = certify_csr(sim_pki, second.public_bytes(serialization.Encoding.PEM), "sig")
    ok = await post(link, CERTS_INSTALL, _install(g, ("sig", good)))
    assert ok.status == 200 and ok.signer_cn == f"{g}.SMGW"


async def test_delete_communication_profile(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g, meter = gid(2), meter_ids(2)[0]
    link = await connect(sim, stub, g, sim_pki)
    await commission(link, stub, sim_pki, meter)
    ref = xml("profileRef", {"id": "cp-emt1"})
    busy = await post(link, COMM_PROFILE.format(2), ref)
    assert (busy.status, busy.reason) == (403, "rejected")
    assert (await post(link, EVAL_PROFILE.format(2), xml("profileRef", {"id": f"ep-taf7-{meter}"}))).status == 200
    cid = new_id("del-cp")
    gone = await post(link, COMM_PROFILE.format(2), ref, cid)
    assert gone.status == 200 and gone.root is not None
    assert (gone.root.get("kind"), gone.root.get("id"), gone.root.get("existed")) == ("communication", "cp-emt1",
                                                                                      "true")
    assert (await post(link, COMM_PROFILE.format(2), ref, cid)).element.get("existed") == "true"
    absent = await post(link, COMM_PROFILE.format(2), ref)
    assert absent.element.get("existed") == "false"
    st = fleet(sim).gateways[g].state
    assert "cp-emt1" not in st.profiles["communication"]
    assert st.counters["applied_by_kind"]["delete_communication_profile"] == 2

