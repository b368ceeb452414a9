"""The HTTP test CA: CRLs at the distribution points, revocation, PKCS#10 issuance (requests
made by openssl req), token protection, and the ``testca serve`` command."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from cryptography import x509

from pki.crl import parse_crl
from pki.profile import Role, Usage, role_of, usage_of
from pki.testca import TestCA
from pki.testpki import TestPki
from tests.helpers import gridgate_bin
from tests.pki.pki_helpers import openssl

if TYPE_CHECKING:
    from tests.pki.conftest import FreshGateway


def test_publishes_crls_and_ca_certificates(test_ca: TestCA, test_pki: TestPki) -> None:
    for name, issuer in (("root", test_pki.root), ("subca", test_pki.subca)):
        r = httpx.get(test_pki.config.crl_url(name), timeout=10)
        assert r.status_code == 200 and r.headers["content-type"] == "application/pkix-crl"
        assert parse_crl(r.content).issuer == issuer.subject
    r = httpx.get(f"{test_ca.url}/ca/chain.pem", timeout=10)
    assert r.status_code == 200 and r.text.count("BEGIN CERTIFICATE") == 2
    assert httpx.get(f"{test_ca.url}/health", timeout=10).json() == {"status": "ok"}
    assert httpx.get(f"{test_ca.url}/nothing", timeout=10).status_code == 404


def test_revoke_by_certificate_and_by_serial(test_ca: TestCA, test_pki: TestPki, fresh_gateway: FreshGateway) -> None:
    gw = fresh_gateway()
    pem = gw.tls.cert_path.read_text()
    assert httpx.post(f"{test_ca.url}/revoke", json={"certificate": pem}, timeout=10).status_code == 200
    r = httpx.post(f"{test_ca.url}/revoke", json={"serial": f"{gw.enc.cert.serial_number:x}",
                                                  "reason": "superseded"}, timeout=10)
    assert r.status_code == 200
    crl = parse_crl(httpx.get(test_pki.config.crl_url("subca"), timeout=10).content)
    entry = crl.get_revoked_certificate_by_serial_number(gw.enc.cert.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.superseded
    assert crl.get_revoked_certificate_by_serial_number(gw.tls.cert.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(gw.sig.cert.serial_number) is None
    for body in (b"{", b'{"serial": "zz"}', b"{}", b'{"certificate": "junk"}'):
        assert httpx.post(f"{test_ca.url}/revoke", content=body, timeout=10).status_code == 400


def _csr(tmp_path: Path, subj: str, *extra: str, curve: str = "brainpoolP256r1") -> tuple[bytes, Path]:
    key = tmp_path / "new.key"
    openssl("ecparam", "-genkey", "-name", curve, "-noout", "-out", key)
    csr = openssl("req", "-new", "-key", key, "-subj", subj, *extra).stdout
    return csr, key


def test_renewal_by_pkcs10(test_ca: TestCA, test_pki: TestPki, tmp_path: Path) -> None:
    csr, key = _csr(tmp_path, "/C=DE/O=SM-Test-PKI-DE/CN=ETHE0116900000.SMGW/serialNumber=2")
    r = httpx.post(f"{test_ca.url}/certify", params={"usage": "tls"}, content=csr, timeout=10)
    assert r.status_code == 200, r.text
    cert = x509.load_pem_x509_certificate(r.content)
    assert role_of(cert) is Role.SMGW and usage_of(cert) is Usage.TLS
    assert test_pki.validator().validate(cert, "tls").valid
    # the certificate belongs to the requester's key
    (tmp_path / "c.pem").write_bytes(r.content)
    pub_cert = openssl("x509", "-in", tmp_path / "c.pem", "-noout", "-pubkey").stdout
    pub_key = openssl("pkey", "-in", key, "-pubout").stdout
    assert pub_cert == pub_key


def test_emt_request_needs_a_san(test_ca: TestCA, test_pki: TestPki, tmp_path: Path) -> None:
    subj = "/C=DE/O=SM-Test-PKI-DE/CN=EMT9-TEST.EMT/serialNumber=1"
    csr, _ = _csr(tmp_path, subj)
    r = httpx.post(f"{test_ca.url}/certify", params={"usage": "enc"}, content=csr, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "profile_violation" and "san.required" in r.json()["detail"]
    csr, _ = _csr(tmp_path, subj, "-addext", "subjectAltName=DNS:emt9.gridgate.test")
    r = httpx.post(f"{test_ca.url}/certify", params={"usage": "enc"}, content=csr, timeout=10)
    assert r.status_code == 200
    assert test_pki.validator().validate(x509.load_pem_x509_certificate(r.content), "enc").valid


@pytest.mark.parametrize(
    ("subj", "curve", "usage", "error"),
    [
        ("/C=DE/O=SM-Test-PKI-DE/CN=ETHE0116900000.SMGW/serialNumber=2", "secp521r1", "tls", "forbidden_algorithm"),
        ("/C=DE/O=ACME/CN=ETHE0116900000.SMGW/serialNumber=2", "brainpoolP256r1", "tls", "profile_violation"),
        ("/C=DE/O=SM-Test-PKI-DE/CN=ETHE0116900000.SMGW/serialNumber=x", "brainpoolP256r1", "tls",
         "profile_violation"),
        ("/C=DE/O=SM-Test-PKI-DE/CN=ETHE0116900000.FOO/serialNumber=2", "brainpoolP256r1", "tls",
         "profile_violation"),
        ("/C=DE/O=SM-Test-PKI-DE/CN=ETHE0116900000.SMGW/serialNumber=2", "brainpoolP256r1", "xyz", "bad_request"),
    ],
)
def test_bad_requests_are_refused(test_ca: TestCA, tmp_path: Path, subj: str, curve: str, usage: str,
                                  error: str) -> None:
    csr, _ = _csr(tmp_path, subj, curve=curve)
    r = httpx.post(f"{test_ca.url}/certify", params={"usage": usage}, content=csr, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == error, r.text


def test_garbage_and_tampered_requests(test_ca: TestCA, tmp_path: Path) -> None:
    r = httpx.post(f"{test_ca.url}/certify", params={"usage": "sig"}, content=b"garbage", timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "malformed"
    csr, _ = _csr(tmp_path, "/C=DE/O=SM-Test-PKI-DE/CN=ETHE0116900000.SMGW/serialNumber=2")
    der = bytearray(x509.load_pem_x509_csr(csr).public_bytes(__import__(
        "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER))
    der[-3] ^= 0x01  # inside the signature
    r = httpx.post(f"{test_ca.url}/certify", params={"usage": "sig"}, content=bytes(der), timeout=10)
    assert r.status_code == 400 and r.json()["error"] in ("bad_signature", "malformed")


def test_token_protects_writes(test_pki: TestPki) -> None:
    with TestCA(test_pki.directory, token="s3cret") as ca:
        assert httpx.get(f"{ca.url}/crl/subca.crl", timeout=10).status_code == 200  # reads stay public
        assert httpx.post(f"{ca.url}/revoke", json={"serial": "1"}, timeout=10).status_code == 401
        r = httpx.post(f"{ca.url}/revoke", json={"serial": "1"}, headers={"Authorization": "Bearer s3cret"},
                       timeout=10)
        assert r.status_code == 200


def test_serve_command(test_pki: TestPki) -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([gridgate_bin(), "pki", "testca", "serve", str(test_pki.directory), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/crl/root.crl", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("testca serve did not come up")
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run([gridgate_bin(), "pki", "testca", "serve", "/nonexistent"], capture_output=True, timeout=30)
    assert bad.returncode == 2 and b"not a test PKI" in bad.stderr
