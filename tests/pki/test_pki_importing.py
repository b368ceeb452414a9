"""Import checks for the product's certificate management: bundles in, reason codes out, nothing
partial."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from pki.importing import check_identity, check_import, describe, expires_within
from pki.loader import cert_to_pem, key_to_pem
from pki.profile import Role, Usage
from pki.testpki import Entity, TestPki
from pki.validation import Validator

if TYPE_CHECKING:
    from tests.pki.conftest import FreshGateway


def _bundle(ent: Entity, usages: tuple[str, ...] = ("tls", "sig", "enc"), keys: bool = True) -> bytes:
    out = b""
    for u in usages:
        cred = ent.credential(u)
        out += cert_to_pem(cred.cert) + (key_to_pem(cred.key) if keys else b"")
    return out


def test_gwa_identity_bundle_is_accepted(test_pki: TestPki) -> None:
    res = check_identity(_bundle(test_pki.gwa), test_pki.validator())
    assert res.ok and res.reason == "ok"
    assert sorted(str(i.info.usage) for i in res.items) == ["enc", "sig", "tls"]
    assert all(i.private_key is not None for i in res.items)
    assert "PRIVATE" not in repr(res)  # keys stay out of reprs/logs


def test_identity_problems(test_pki: TestPki, foreign_pki: TestPki) -> None:
    v = test_pki.validator()
    assert check_identity(_bundle(test_pki.gwa, keys=False), v).reason == "key_missing"
    assert check_identity(_bundle(test_pki.gwa, ("tls", "sig")), v).reason == "incomplete_identity"
    assert check_identity(_bundle(test_pki.emts["emt1"]), v).reason == "wrong_role"
    stray = _bundle(test_pki.gwa) + key_to_pem(test_pki.emts["emt1"].sig.key)
    assert check_identity(stray, v).reason == "key_mismatch"
    assert check_identity(_bundle(foreign_pki.gwa), v).reason == "unknown_issuer"


def test_single_der_certificate_and_role_check(test_pki: TestPki) -> None:
    v = test_pki.validator()
    der = test_pki.emts["emt2"].enc.cert.public_bytes(serialization.Encoding.DER)
    res = check_import(der, v, expected_role=Role.EMT)
    assert res.ok and res.items[0].info.usage is Usage.ENC and res.items[0].private_key is None
    assert check_import(der, v, expected_role=Role.SMGW).reason == "wrong_role"


def test_bundle_with_its_own_sub_ca(test_pki: TestPki) -> None:
    """A validator that knows only the root still accepts a bundle that brings its Sub-CA; the
    Sub-CA is a path helper, not an imported item."""
    v = Validator([test_pki.root], crls=test_pki.crls())
    gw = test_pki.gateway(test_pki.gateway_ids()[2])
    data = _bundle(gw, keys=False) + cert_to_pem(test_pki.subca)
    res = check_import(data, v, expected_role=Role.SMGW)
    assert res.ok and len(res.items) == 3
    assert check_import(_bundle(gw, keys=False), v).reason == "unknown_issuer"


def test_one_bad_certificate_rejects_the_whole_bundle(test_pki: TestPki, fresh_gateway: FreshGateway) -> None:
    gw = fresh_gateway()
    test_pki.revoke(gw.sig.cert)
    res = check_import(_bundle(gw, keys=False), test_pki.validator())
    assert not res.ok and res.reason == "revoked" and res.items == ()


def test_garbage_and_empty(test_pki: TestPki) -> None:
    v = test_pki.validator()
    assert check_import(b"\x00\x01garbage", v).reason == "malformed"
    assert check_import(b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n", v).reason == "malformed"
    assert check_import(cert_to_pem(test_pki.subca), v).reason == "empty"
    assert check_import(b"-----BEGIN FOO-----\nQUJD\n-----END FOO-----\n", v).reason == "malformed"


def test_describe_and_expiry(test_pki: TestPki) -> None:
    cert = test_pki.gwa.tls.cert
    info = describe(cert)
    assert info.role is Role.GWA and info.usage is Usage.TLS and not info.is_ca
    assert info.common_name == "GRIDGATE-TEST.GWA" and len(info.fingerprint) == 64
    assert info.crl_urls == (test_pki.config.crl_url("subca"),)
    assert describe(test_pki.subca).is_ca and describe(test_pki.subca).usage is None
    now = dt.datetime.now(dt.UTC)
    assert not expires_within(cert, 30, now)
    assert expires_within(cert, 800, now)
