"""Path validation: one test per reason code, bad input, chain loops, CRLs from the distribution
point over HTTP (fetched, cached, signature-checked, fail closed) and the verify CLI."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki.crl import CrlCache, build_crl
from pki.profile import Role, Usage, build_end_entity_certificate, subject_name
from pki.testca import TestCA
from pki.testpki import TestPki
from pki.validation import Reason, Validator
from tests.helpers import gridgate_bin
from tests.pki.pki_helpers import custom_cert, pki_cli

if TYPE_CHECKING:
    from typer.testing import Result

    from tests.pki.conftest import FreshGateway

NOW = dt.datetime.now(dt.UTC)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_valid_for_its_purpose(test_pki: TestPki) -> None:
    v = test_pki.validator()
    gw = test_pki.gateway(test_pki.gateway_ids()[0])
    for usage in ("tls", "sig", "enc"):
        verdict = v.validate(gw.credential(usage).cert, usage)
        assert verdict.valid and verdict.reason is Reason.OK
        assert verdict.subject is not None and "SMGW" in verdict.subject
        assert [c.subject for c in verdict.chain] == [gw.tls.cert.subject, test_pki.subca.subject,
                                                      test_pki.root.subject]


def test_wrong_key_usage(test_pki: TestPki) -> None:
    v = test_pki.validator()
    assert v.validate(test_pki.gwa.enc.cert, "sig").reason is Reason.WRONG_KEY_USAGE
    assert v.validate(test_pki.gwa.sig.cert, "enc").reason is Reason.WRONG_KEY_USAGE
    assert v.validate(test_pki.gwa.tls.cert, "sig").reason is Reason.WRONG_KEY_USAGE  # TLS-only EKU


def test_expired_and_not_yet_valid(test_pki: TestPki) -> None:
    v = test_pki.validator(check_revocation=False)
    cert = test_pki.gwa.sig.cert
    assert v.validate(cert, "sig", cert.not_valid_after_utc + dt.timedelta(days=1)).reason is Reason.EXPIRED
    assert v.validate(cert, "sig", cert.not_valid_before_utc - dt.timedelta(days=1)).reason is Reason.NOT_YET_VALID


def test_unknown_issuer(test_pki: TestPki, foreign_pki: TestPki) -> None:
    v = test_pki.validator()
    foreign = foreign_pki.gwa.sig.cert  # same names as ours, other keys
    verdict = v.validate(foreign, "sig")
    assert verdict.reason is Reason.UNKNOWN_ISSUER, verdict


def test_foreign_subca_under_our_name_is_a_bad_signature(test_pki: TestPki, foreign_pki: TestPki) -> None:
    # A Sub-CA claiming our Sub-CA's name and key id path but signed by another root.
    v = Validator([test_pki.root], [foreign_pki.subca], crls=test_pki.crls())
    verdict = v.validate(foreign_pki.gwa.sig.cert, "sig")
    assert verdict.reason in (Reason.UNKNOWN_ISSUER, Reason.BAD_SIGNATURE)
    assert not verdict.valid


def test_bad_signature_on_flipped_bits(test_pki: TestPki) -> None:
    v = test_pki.validator()
    der = bytearray(_der(test_pki.gwa.sig.cert))
    sig_tampered = bytearray(der)
    sig_tampered[-1] ^= 0x01  # last byte of the ECDSA s value: DER stays well-formed
    assert v.validate(bytes(sig_tampered), "sig").reason is Reason.BAD_SIGNATURE
    cn = der.find(b"GRIDGATE-TEST")
    tbs_tampered = bytearray(der)
    tbs_tampered[cn] ^= 0x20  # 'G' -> 'g' in the subject CN
    assert v.validate(bytes(tbs_tampered), "sig").reason is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("data", [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                                  b"\x30\x82\x01"])
def test_garbage_is_malformed(test_pki: TestPki, data: bytes) -> None:
    verdict = test_pki.validator().validate(data, "sig")
    assert verdict.reason is Reason.MALFORMED and verdict.subject is None


def test_truncated_der_is_malformed(test_pki: TestPki) -> None:
    der = _der(test_pki.gwa.sig.cert)
    for cut in (1, 10, len(der) // 2, len(der) - 1):
        assert test_pki.validator().validate(der[:cut], "sig").reason is Reason.MALFORMED


def test_rsa_and_other_curves_are_forbidden(test_pki: TestPki) -> None:
    v = test_pki.validator()
    sub_key = test_pki.ca_key("subca")
    for key in (rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP521R1()),
                ec.generate_private_key(ec.SECP256K1())):
        # the RSA key on purpose: the signature (like the profile) takes EC keys only
        cert = build_end_entity_certificate(
            subject=subject_name("BAD.EMT"), public_key=key.public_key(), usage=Usage.SIG,  # type: ignore[arg-type]
            role=Role.EMT, issuer_cert=test_pki.subca, issuer_key=sub_key, not_before=NOW - dt.timedelta(hours=1),
            not_after=NOW + dt.timedelta(days=1), crl_url=test_pki.config.crl_url("subca"),
            san=[x509.DNSName("bad.test")])
        verdict = v.validate(cert, "sig")
        assert verdict.reason is Reason.FORBIDDEN_ALGORITHM, (type(key), verdict)


def test_signature_hash_outside_sha2_256_512_is_forbidden(test_pki: TestPki) -> None:
    # (cryptography refuses to sign with SHA-1 at all; SHA-224 is outside the allowed set too)
    cert, _ = custom_cert(test_pki.subca, test_pki.ca_key("subca"), "SHA224.EMT", san=[x509.DNSName("a.test")],
                          hash_alg=hashes.SHA224())
    assert test_pki.validator().validate(cert, "sig").reason is Reason.FORBIDDEN_ALGORITHM


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"cn": "X.SMGW", "san": [x509.DNSName("x.sm")]}, "san.forbidden"),
        ({"cn": "X.EMT"}, "san.required"),
        ({"cn": "X.EMT", "san": [x509.DNSName("x.test")], "policy": False}, "certificatePolicies"),
        ({"cn": "X.EMT", "san": [x509.DNSName("x.test")], "ku_critical": False}, "keyUsage.critical"),
        ({"cn": "X.EMT", "san": [x509.DNSName("x.test")], "organisation": "ACME"}, "subject.O"),
        ({"cn": "X.EMT", "san": [x509.DNSName("x.test")], "serial_number_attr": "abc"}, "subject.serialNumber"),
        ({"cn": "X.FOO", "san": [x509.DNSName("x.test")]}, "subject.CN"),
        ({"cn": "X.EMT", "san": [x509.DNSName("x.test")], "crl_url": None}, "crlDistributionPoints"),
    ],
)
def test_profile_violations_name_the_rule(test_pki: TestPki, kwargs: dict, rule: str) -> None:
    cert, _ = custom_cert(test_pki.subca, test_pki.ca_key("subca"), **kwargs)
    verdict = test_pki.validator().validate(cert, "sig")
    assert verdict.reason is Reason.PROFILE_VIOLATION
    assert f"rule {rule}" in verdict.detail


def test_end_entity_cannot_act_as_ca(test_pki: TestPki) -> None:
    gw = test_pki.gateway(test_pki.gateway_ids()[0])
    # a certificate "issued" by a gateway's SIG key
    cert, _ = custom_cert(gw.sig.cert, gw.sig.key, "Y.EMT", san=[x509.DNSName("y.test")])
    verdict = Validator([test_pki.root], [test_pki.subca, gw.sig.cert], check_revocation=False).validate(cert, "sig")
    assert verdict.reason is Reason.PROFILE_VIOLATION and "basicConstraints.ca" in verdict.detail


def test_chain_loop_is_detected(test_pki: TestPki) -> None:
    ka, kb = ec.generate_private_key(ec.BrainpoolP256R1()), ec.generate_private_key(ec.BrainpoolP256R1())
    # A is issued by B and B by A: there is no way up to a trust anchor
    seed_b, _ = custom_cert(None, kb, "LOOP-B.CA", key=kb, ca=True)
    a, _ = custom_cert(seed_b, kb, "LOOP-A.CA", key=ka, ca=True)
    b, _ = custom_cert(a, ka, "LOOP-B.CA", key=kb, ca=True)
    leaf, _ = custom_cert(a, ka, "LEAF.EMT", san=[x509.DNSName("leaf.test")])
    verdict = Validator([test_pki.root], [a, b]).validate(leaf, "sig")
    assert verdict.reason is Reason.UNKNOWN_ISSUER
    assert "loop" in verdict.detail


def test_revoked_with_given_crls(test_pki: TestPki, fresh_gateway: FreshGateway) -> None:
    gw = fresh_gateway()
    assert test_pki.validator().validate(gw.tls.cert, "tls").valid
    test_pki.revoke(gw.tls.cert)
    verdict = test_pki.validator().validate(gw.tls.cert, "tls")
    assert verdict.reason is Reason.REVOKED
    # the other two certificates of the gateway are untouched
    assert test_pki.validator().validate(gw.sig.cert, "sig").valid
    # validation at a time before the revocation still says ok
    assert test_pki.validator().validate(gw.tls.cert, "tls", NOW - dt.timedelta(minutes=30)).valid


def test_crl_signed_by_the_wrong_key(test_pki: TestPki, foreign_pki: TestPki) -> None:
    # The foreign PKI uses identical CA names: its CRLs look right but are signed by other keys.
    v = Validator([test_pki.root], [test_pki.subca], crls=foreign_pki.crls())
    verdict = v.validate(test_pki.gwa.sig.cert, "sig")
    assert verdict.reason is Reason.CRL_UNAVAILABLE and "authority key id" in verdict.detail
    # Same name and key id as our Sub-CA's CRL, but signed with another key.
    forged = build_crl(issuer_cert=test_pki.subca, issuer_key=foreign_pki.ca_key("subca"), revoked=[], number=7,
                       this_update=NOW, next_update=NOW + dt.timedelta(days=1))
    root_crl = [c for c in test_pki.crls() if c.issuer == test_pki.root.subject]
    verdict = Validator([test_pki.root], [test_pki.subca], crls=[*root_crl, forged]).validate(
        test_pki.gwa.sig.cert, "sig")
    assert verdict.reason is Reason.CRL_UNAVAILABLE and "signature does not verify" in verdict.detail


def test_expired_crl_fails_closed(test_pki: TestPki) -> None:
    stale = build_crl(issuer_cert=test_pki.subca, issuer_key=test_pki.ca_key("subca"), revoked=[], number=99,
                      this_update=NOW - dt.timedelta(days=10), next_update=NOW - dt.timedelta(days=1))
    root_crl = [c for c in test_pki.crls() if c.issuer == test_pki.root.subject]
    verdict = Validator([test_pki.root], [test_pki.subca], crls=[*root_crl, stale]).validate(
        test_pki.gwa.sig.cert, "sig")
    assert verdict.reason is Reason.CRL_EXPIRED


def test_missing_crl_fails_closed(test_pki: TestPki) -> None:
    root_crl = [c for c in test_pki.crls() if c.issuer == test_pki.root.subject]
    verdict = Validator([test_pki.root], [test_pki.subca], crls=root_crl).validate(test_pki.gwa.sig.cert, "sig")
    assert verdict.reason is Reason.CRL_UNAVAILABLE


# ------------------------------------------------------------------ CRLs from the distribution point


def test_crls_are_fetched_from_the_test_ca_and_cached(test_pki: TestPki, test_ca: TestCA) -> None:
    cache = CrlCache()
    v = Validator([test_pki.root], [test_pki.subca], crl_cache=cache)
    assert v.validate(test_pki.gwa.tls.cert, "tls").valid
    url = test_pki.config.crl_url("subca")
    assert url.startswith(test_ca.url) and cache.cached(url) is not None
    assert cache.cached(test_pki.config.crl_url("root")) is not None  # the Sub-CA was checked too


def test_revocation_over_http_needs_a_refresh(test_pki: TestPki, test_ca: TestCA, fresh_gateway: FreshGateway) -> None:
    import httpx

    gw = fresh_gateway()
    cache = CrlCache()
    v = Validator([test_pki.root], [test_pki.subca], crl_cache=cache)
    assert v.validate(gw.sig.cert, "sig").valid
    r = httpx.post(f"{test_ca.url}/revoke", json={"serial": f"{gw.sig.cert.serial_number:x}"}, timeout=10)
    assert r.status_code == 200
    # cached until nextUpdate: still the old CRL
    assert v.validate(gw.sig.cert, "sig").valid
    cache.invalidate(test_pki.config.crl_url("subca"))
    assert v.validate(gw.sig.cert, "sig").reason is Reason.REVOKED


def test_unreachable_distribution_point_fails_closed(tmp_path: Path) -> None:
    from pki.testpki import init_test_pki

    pki = init_test_pki(tmp_path / "dead", base_url="http://127.0.0.1:9")  # nothing listens on port 9
    v = Validator([pki.root], [pki.subca], crl_cache=CrlCache(timeout=2))
    verdict = v.validate(pki.gwa.sig.cert, "sig")
    assert verdict.reason is Reason.CRL_UNAVAILABLE and "ConnectError" in verdict.detail


def test_stale_cached_crl_that_cannot_be_refreshed_is_crl_expired(tmp_path: Path) -> None:
    from pki.testpki import init_test_pki

    pki = init_test_pki(tmp_path / "stale", base_url="http://127.0.0.1:9")
    cache = CrlCache(timeout=2)
    for name in ("root", "subca"):
        crl = build_crl(issuer_cert=pki.ca_cert(name), issuer_key=pki.ca_key(name), revoked=[], number=1,
                        this_update=NOW - dt.timedelta(days=9), next_update=NOW - dt.timedelta(days=2))
        cache.put(pki.config.crl_url(name), crl)
    verdict = Validator([pki.root], [pki.subca], crl_cache=cache).validate(pki.gwa.sig.cert, "sig")
    assert verdict.reason is Reason.CRL_EXPIRED


# ------------------------------------------------------------------ CLI


def _verify(*args: str | Path) -> Result:
    return pki_cli("verify", *args)


def test_cli_verify_exit_codes(test_pki: TestPki, test_ca: TestCA, tmp_path: Path) -> None:
    d = test_pki.directory
    crls: list[str | Path] = ["--crl", d / "crl/root.crl", "--crl", d / "crl/subca.crl"]
    ok = _verify(d / "gwa/tls.crt", "--trust", d / "ca/root.crt", "--chain", d / "ca/subca.crt", *crls,
                 "--purpose", "tls")
    assert ok.exit_code == 0, ok.stderr
    body = json.loads(ok.stdout)
    assert set(body) == {"valid", "reason", "subject", "detail"} and body["valid"] is True
    # no --crl: fetched from the test CA at the distribution point
    fetched = _verify(d / "gwa/tls.crt", "--trust", d / "ca/root.crt", "--chain", d / "ca/subca.crt")
    assert fetched.exit_code == 0, fetched.stdout
    late = _verify(d / "gwa/tls.crt", "--trust", d / "ca/root.crt", "--chain", d / "ca/subca.crt", *crls,
                   "--at", "2099-01-01T00:00:00Z")
    assert late.exit_code == 1 and json.loads(late.stdout)["reason"] == "expired"
    wrong = _verify(d / "gwa/enc.crt", "--trust", d / "ca/root.crt", "--chain", d / "ca/subca.crt", *crls,
                    "--purpose", "sig")
    assert wrong.exit_code == 1 and json.loads(wrong.stdout)["reason"] == "wrong_key_usage"
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    bad = _verify(garbage, "--trust", d / "ca/root.crt")
    assert bad.exit_code == 1 and json.loads(bad.stdout)["reason"] == "malformed"
    missing = _verify(tmp_path / "nope.crt", "--trust", d / "ca/root.crt")
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    bad_trust = _verify(d / "gwa/tls.crt", "--trust", garbage)
    assert bad_trust.exit_code == 2 and bad_trust.stderr.startswith("error: trust anchor")
    bad_purpose = _verify(d / "gwa/tls.crt", "--trust", d / "ca/root.crt", "--purpose", "xyz")
    assert bad_purpose.exit_code == 2
    bad_at = _verify(d / "gwa/tls.crt", "--trust", d / "ca/root.crt", "--at", "yesterday")
    assert bad_at.exit_code == 2


def test_console_script_verify(test_pki: TestPki) -> None:
    """The installed ``gridgate pki verify`` (root CLI, lazy sub-app registration) end to end."""
    d = test_pki.directory
    res = subprocess.run([gridgate_bin(), "pki", "verify", str(d / "gwa/sig.crt"), "--trust", str(d / "ca/root.crt"),
                          "--chain", str(d / "ca/subca.crt"), "--purpose", "enc", "--crl", str(d / "crl/root.crl"),
                          "--crl", str(d / "crl/subca.crl")], capture_output=True, timeout=60)
    assert res.returncode == 1 and json.loads(res.stdout)["reason"] == "wrong_key_usage"
