"""The test SM-PKI: layout, key protection, SM-PKI profile of every certificate (checked with
openssl as well as our own rules), CRLs, the deterministic gateway ID sequence, bulk issuance."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from core.ids import demo_gateway_id
from pki.ids import gateway_id
from pki.oids import SM_PKI_POLICY
from pki.profile import Role, Usage, check_profile, role_of, usage_of
from pki.testpki import Entity, TestPki, init_test_pki
from tests.helpers import gridgate_bin
from tests.pki.pki_helpers import openssl


def _entities(pki: TestPki) -> list[Entity]:
    return [pki.gwa, *pki.emts.values(), *(pki.gateway(g) for g in pki.gateway_ids()[:3])]


def test_layout_and_private_keys_are_owner_only(test_pki: TestPki) -> None:
    d = test_pki.directory
    for rel in ("pki.json", "ca/root.crt", "ca/subca.crt", "ca/chain.pem", "crl/root.crl", "crl/subca.crl"):
        assert (d / rel).is_file(), rel
    keys = list(d.rglob("*.key"))
    # root + Sub-CA + GWA/2 EMT/3 SMGW triples
    assert len(keys) >= 2 + 3 * (1 + 2 + 3)
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert b"PRIVATE KEY" in key.read_bytes()


def test_ca_algorithms_match_the_sm_pki(test_pki: TestPki) -> None:
    root, sub = test_pki.root, test_pki.subca
    root_key, sub_key = root.public_key(), sub.public_key()
    assert isinstance(root_key, ec.EllipticCurvePublicKey) and isinstance(root_key.curve, ec.BrainpoolP384R1)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA384)
    assert isinstance(sub_key, ec.EllipticCurvePublicKey) and isinstance(sub_key.curve, ec.BrainpoolP256R1)
    assert isinstance(sub.signature_hash_algorithm, hashes.SHA384)  # signed by the root
    leaf = test_pki.gwa.tls.cert
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)  # signed by the Sub-CA
    assert root.subject == root.issuer and sub.issuer == root.subject
    assert check_profile(root, is_ca=True) is None
    assert check_profile(sub, is_ca=True) is None


def test_every_end_entity_follows_the_profile(test_pki: TestPki) -> None:
    for ent in _entities(test_pki):
        for usage in (Usage.TLS, Usage.SIG, Usage.ENC):
            cert = ent.credential(usage).cert
            assert check_profile(cert, is_ca=False) is None, (ent.name, usage)
            assert role_of(cert) is ent.role
            assert usage_of(cert) is usage
            key = cert.public_key()
            assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.BrainpoolP256R1)
            ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
            assert ku.critical and bc.critical and not bc.value.ca
            assert ku.value.key_agreement is (usage is Usage.ENC)
            assert ku.value.digital_signature is (usage is not Usage.ENC)
            pol = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
            assert [p.policy_identifier for p in pol] == [SM_PKI_POLICY]
            cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
            assert cdp[0].full_name[0].value == test_pki.config.crl_url("subca")
            has_san = any(e.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME for e in cert.extensions)
            assert has_san is (ent.role is not Role.SMGW)
            subj = cert.subject
            assert subj.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "DE"
            assert subj.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "SM-Test-PKI-DE"
            assert str(subj.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value).isdigit()


def test_openssl_verifies_chains_with_crl_checking(test_pki: TestPki, tmp_path: Path) -> None:
    """An independent implementation accepts our chains and CRLs."""
    crls = tmp_path / "crls.pem"
    crls.write_bytes(b"".join(openssl("crl", "-inform", "DER", "-in", test_pki.crl_path(n)).stdout
                              for n in ("root", "subca")))
    for ent in _entities(test_pki):
        for usage in ("tls", "sig", "enc"):
            res = openssl("verify", "-x509_strict", "-crl_check_all", "-CRLfile", crls, "-CAfile", test_pki.root_path,
                          "-untrusted", test_pki.subca_path, ent.directory / f"{usage}.crt")
            assert b": OK" in res.stdout
    for name, issuer in (("root", test_pki.root_path), ("subca", test_pki.subca_path)):
        res = openssl("crl", "-inform", "DER", "-in", test_pki.crl_path(name), "-CAfile", issuer, "-noout")
        assert b"verify OK" in res.stderr + res.stdout


def test_gateway_ids_follow_the_shared_demo_sequence(test_pki: TestPki) -> None:
    assert [gateway_id(i) for i in range(3)] == [demo_gateway_id(i) for i in range(3)]
    assert test_pki.gateway_ids()[:3] == sorted(gateway_id(i) for i in range(3))
    cn = test_pki.gateway(gateway_id(0)).tls.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == f"{gateway_id(0)}.SMGW"


def test_issue_gateway_is_idempotent_and_force_renews(test_pki: TestPki) -> None:
    gid = "EDNT0116909060"
    first = test_pki.issue_gateway(gid)
    serial = first.tls.cert.serial_number
    again = test_pki.issue_gateway(gid)
    assert again.tls.cert.serial_number == serial
    renewed = test_pki.issue_gateway(gid, force=True, sequence=2)
    assert renewed.tls.cert.serial_number != serial
    assert renewed.tls.cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "2"
    assert test_pki.validator().validate(renewed.tls.cert, "tls").valid


def test_bulk_issuance_in_worker_processes(tmp_path: Path) -> None:
    pki = init_test_pki(tmp_path / "bulk", gateways=0)
    done: list[int] = []
    ids = pki.issue_gateways(range(8), workers=2, progress=done.append)
    assert ids == [gateway_id(i) for i in range(8)]
    assert pki.gateway_ids() == sorted(ids)
    v = pki.validator()
    assert all(v.validate(pki.gateway(g).enc.cert, "enc").valid for g in ids)
    assert done[-1] == 8


def test_bulk_parallel_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pki.testpki as tp

    monkeypatch.setattr(tp, "_PARALLEL_THRESHOLD", 4)  # exercise the process pool with few gateways
    pki = init_test_pki(tmp_path / "par", gateways=0)
    ids = pki.issue_gateways(range(6), workers=2)
    assert sorted(ids) == pki.gateway_ids()
    assert len({pki.gateway(g).sig.cert.serial_number for g in ids}) == 6


def test_init_refuses_a_non_empty_directory(test_pki: TestPki) -> None:
    with pytest.raises(FileExistsError):
        init_test_pki(test_pki.directory)


def test_cli_init_and_issue(tmp_path: Path) -> None:
    d = tmp_path / "cli"
    res = subprocess.run([gridgate_bin(), "pki", "testpki", "init", str(d), "--gateways", "2",
                          "--base-url", "http://127.0.0.1:9999"], capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["gateways"] == 2
    pki = TestPki(d)
    assert pki.config.crl_url("subca") == "http://127.0.0.1:9999/crl/subca.crl"
    res = subprocess.run([gridgate_bin(), "pki", "testpki", "issue", str(d), "EDNT0116909060"],
                         capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "EDNT0116909060" in pki.gateway_ids()
    bad = subprocess.run([gridgate_bin(), "pki", "testpki", "issue", str(d), "XX"], capture_output=True, timeout=60)
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr
    again = subprocess.run([gridgate_bin(), "pki", "testpki", "init", str(d)], capture_output=True, timeout=60)
    assert again.returncode == 2 and b"not empty" in again.stderr


def test_concurrent_issuance_of_one_gateway_never_mixes_keys(test_pki: TestPki) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from cryptography.hazmat.primitives import serialization

    gid = "EDNT0116999999"

    def issue(_: int) -> None:
        TestPki(test_pki.directory).issue_gateway(gid)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(issue, range(8)))
    ent = test_pki.gateway(gid)
    for usage in ("tls", "sig", "enc"):
        cred = ent.credential(usage)
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        assert cred.key.public_key().public_bytes(*spki) == cred.cert.public_key().public_bytes(*spki)
    assert not [p for p in (test_pki.directory / "smgw").iterdir() if p.name.startswith(".")]
