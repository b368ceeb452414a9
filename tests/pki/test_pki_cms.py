"""CMS SignedData(AuthEnvelopedData(CompressedData)): structure per DS 5, both content ciphers,
interoperability with the openssl CLI in both directions, tampering, wrong recipient/signer, and
the cms CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

import pytest
from asn1crypto import cms as acms
from cryptography import x509

from pki import cms
from pki.cms import CmsError
from pki.cms_enveloped import Cipher, KeyAgreement
from pki.oids import AES_CBC_CMAC_128, ECKA_EG_X963_SHA256
from pki.profile import subject_key_id
from pki.testpki import Entity, TestPki
from tests.pki.pki_helpers import openssl, pki_cli

if TYPE_CHECKING:
    from tests.pki.conftest import FreshGateway

PAYLOAD = b"<cosem><obj id='1-0:1.8.0*255' v='12345'/></cosem>" * 200  # ~10 KB, compressible


class _SealOptions(TypedDict, total=False):
    """The options of ``cms.seal`` the tests vary."""

    cipher: Cipher
    key_agreement: KeyAgreement
    include_signer_cert: bool


class _OpenOptions(TypedDict, total=False):
    """The options of ``cms.open`` the tests vary."""

    signer_certs: Sequence[x509.Certificate]
    max_payload: int


def _seal(sender: Entity, recipient: Entity, payload: bytes = PAYLOAD, **kw: Unpack[_SealOptions]) -> bytes:
    return cms.seal(payload, sign_key=sender.sig.key, sign_cert=sender.sig.cert, recipient_cert=recipient.enc.cert,
                    **kw)


def _open(data: bytes, recipient: Entity, pki: TestPki, **kw: Unpack[_OpenOptions]) -> cms.Opened:
    return cms.open(data, key=recipient.enc.key, cert=recipient.enc.cert, validator=pki.validator(), **kw)


@pytest.mark.parametrize("cipher", ["gcm", "cbc-cmac"])
@pytest.mark.parametrize("key_agreement", ["bsi", "rfc5753"])
@pytest.mark.parametrize("size", [0, 1, 15, 16, 10_000, 300_000])
def test_roundtrip(sender: Entity, recipient: Entity, test_pki: TestPki, cipher: Cipher, key_agreement: KeyAgreement,
                   size: int) -> None:
    payload = os.urandom(size)
    sealed = _seal(sender, recipient, payload, cipher=cipher, key_agreement=key_agreement)
    opened = _open(sealed, recipient, test_pki)
    assert opened.payload == payload
    assert opened.cipher == cipher and opened.compressed
    assert opened.signer == sender.sig.cert
    assert opened.signer_subject is not None and "SMGW" in opened.signer_subject


def test_fresh_keys_per_message(sender: Entity, recipient: Entity) -> None:
    a, b = _seal(sender, recipient), _seal(sender, recipient)
    assert a != b and PAYLOAD[:40] not in a


def test_structure_follows_the_ds_profile(sender: Entity, recipient: Entity) -> None:
    ci = acms.ContentInfo.load(_seal(sender, recipient))
    assert ci["content_type"].native == "signed_data"
    sd = ci["content"]
    assert sd["version"].native == "v3" and sd["crls"].native is None
    assert [a["algorithm"].native for a in sd["digest_algorithms"]] == ["sha256"]
    assert sd["digest_algorithms"][0]["parameters"].native is None  # absent, not NULL
    assert [c.chosen.dump() for c in sd["certificates"]] == [sender.sig.cert.public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER)]
    (si,) = sd["signer_infos"]
    assert si["version"].native == "v3" and si["sid"].name == "subject_key_identifier"
    assert si["sid"].chosen.native == subject_key_id(sender.sig.cert)
    assert sorted(a["type"].native for a in si["signed_attrs"]) == ["content_type", "message_digest"]
    assert si["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    assert si["unsigned_attrs"].native is None
    eci = sd["encap_content_info"]
    assert eci["content_type"].native == "authenticated_enveloped_data"

    aed = acms.AuthEnvelopedData.load(bytes(eci["content"]))
    assert aed["version"].native == "v0" and aed["originator_info"].native is None
    (ri,) = aed["recipient_infos"]
    kari = ri.chosen
    assert ri.name == "kari" and kari["version"].native == "v3"
    assert kari["originator"].name == "originator_key"
    assert kari["originator"].chosen["algorithm"]["algorithm"].native == "ec"
    assert kari["ukm"].native is None
    assert kari["key_encryption_algorithm"]["algorithm"].dotted == ECKA_EG_X963_SHA256
    wrap = acms.KeyEncryptionAlgorithm.load(kari["key_encryption_algorithm"]["parameters"].dump())
    assert wrap["algorithm"].native == "aes128_wrap" and wrap["parameters"].native is None
    (rek,) = kari["recipient_encrypted_keys"]
    assert rek["rid"].name == "r_key_id"
    assert rek["rid"].chosen["subject_key_identifier"].native == subject_key_id(recipient.enc.cert)
    assert len(rek["encrypted_key"].native) == 24  # AES-128 key wrapped
    aeci = aed["auth_encrypted_content_info"]
    assert aeci["content_type"].native == "compressed_data"
    assert aeci["content_encryption_algorithm"]["algorithm"].native == "aes128_gcm"
    assert [a["type"].native for a in aed["auth_attrs"]] == ["content_type"]
    assert len(aed["mac"].native) == 16


def test_cbc_cmac_structure(sender: Entity, recipient: Entity) -> None:
    ci = acms.ContentInfo.load(_seal(sender, recipient, cipher="cbc-cmac"))
    aed = acms.AuthEnvelopedData.load(bytes(ci["content"]["encap_content_info"]["content"]))
    alg = aed["auth_encrypted_content_info"]["content_encryption_algorithm"]
    assert alg["algorithm"].dotted == AES_CBC_CMAC_128 and alg["parameters"].native is None
    rek = aed["recipient_infos"][0].chosen["recipient_encrypted_keys"][0]
    assert len(rek["encrypted_key"].native) == 40  # Kenc || KMAC wrapped
    assert len(aed["mac"].native) == 16


# --------------------------------------------------------------------------- openssl interop


def test_openssl_verifies_our_signed_data(sender: Entity, recipient: Entity, test_pki: TestPki,
                                          tmp_path: Path) -> None:
    sealed = tmp_path / "sealed.der"
    sealed.write_bytes(_seal(sender, recipient))
    res = openssl("cms", "-verify", "-inform", "DER", "-in", sealed, "-CAfile", test_pki.chain_path, "-binary",
                  "-out", tmp_path / "inner.der")
    assert b"Verification successful" in res.stderr
    inner = acms.AuthEnvelopedData.load((tmp_path / "inner.der").read_bytes())
    assert inner["version"].native == "v0"
    # and a flipped signature bit is caught by openssl too
    data = bytearray(sealed.read_bytes())
    data[-5] ^= 0x01
    sealed.write_bytes(bytes(data))
    bad = openssl("cms", "-verify", "-inform", "DER", "-in", sealed, "-CAfile", test_pki.chain_path, "-binary",
                  "-out", tmp_path / "x", check=False)
    assert bad.returncode != 0


def test_openssl_decrypts_our_auth_enveloped_data(recipient: Entity, tmp_path: Path) -> None:
    payload = os.urandom(5000)
    enc = tmp_path / "aed.der"
    enc.write_bytes(cms.encrypt(payload, recipient.enc.cert, key_agreement="rfc5753"))
    openssl("cms", "-decrypt", "-inform", "DER", "-in", enc, "-recip", recipient.enc.cert_path, "-inkey",
            recipient.enc.key_path, "-binary", "-out", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == payload


def test_openssl_and_compressed_content_with_auth_attrs(recipient: Entity, tmp_path: Path) -> None:
    """RFC 5083 requires authAttrs for non-id-data content; OpenSSL <= 3.0.19/3.5 mis-tags them
    (openssl#26101, fixed by openssl#31695) and cannot parse such containers at all."""
    enc = tmp_path / "aed.der"
    enc.write_bytes(cms.encrypt(cms.compress(PAYLOAD), recipient.enc.cert, content_type="compressed_data",
                                key_agreement="rfc5753"))
    res = openssl("cms", "-decrypt", "-inform", "DER", "-in", enc, "-recip", recipient.enc.cert_path, "-inkey",
                  recipient.enc.key_path, "-binary", "-out", tmp_path / "out.der", check=False)
    if res.returncode != 0 and b"Field=mac" in res.stderr:
        pytest.xfail("this OpenSSL cannot parse AuthEnvelopedData authAttrs (openssl#26101)")
    assert res.returncode == 0, res.stderr
    assert cms.decompress((tmp_path / "out.der").read_bytes()) == PAYLOAD


@pytest.mark.parametrize("keyid", [True, False], ids=["ski", "issuer_serial"])
def test_we_decrypt_openssl_auth_enveloped_data(recipient: Entity, tmp_path: Path, keyid: bool) -> None:
    payload = os.urandom(10_000)
    (tmp_path / "p.bin").write_bytes(payload)
    openssl("cms", "-encrypt", "-binary", "-aes-128-gcm", *(["-keyid"] if keyid else []), "-recip",
            recipient.enc.cert_path, "-keyopt", "ecdh_kdf_md:sha256", "-outform", "DER", "-in", tmp_path / "p.bin",
            "-out", tmp_path / "e.der")
    assert cms.decrypt((tmp_path / "e.der").read_bytes(), recipient.enc.key, recipient.enc.cert) == payload


def test_openssl_default_sha1_kdf_is_refused(recipient: Entity, tmp_path: Path) -> None:
    (tmp_path / "p.bin").write_bytes(b"x")
    openssl("cms", "-encrypt", "-binary", "-aes-128-gcm", "-recip", recipient.enc.cert_path, "-outform", "DER",
            "-in", tmp_path / "p.bin", "-out", tmp_path / "e.der")
    with pytest.raises(CmsError) as err:
        cms.decrypt((tmp_path / "e.der").read_bytes(), recipient.enc.key, recipient.enc.cert)
    assert err.value.reason == "forbidden_algorithm"


@pytest.mark.parametrize("keyid", [True, False], ids=["ski", "issuer_serial"])
def test_we_verify_openssl_signed_data(sender: Entity, test_pki: TestPki, tmp_path: Path, keyid: bool) -> None:
    (tmp_path / "p.bin").write_bytes(PAYLOAD)
    openssl("cms", "-sign", "-binary", "-nodetach", "-md", "sha256", *(["-keyid"] if keyid else []), "-signer",
            sender.sig.cert_path, "-inkey", sender.sig.key_path, "-outform", "DER", "-in", tmp_path / "p.bin",
            "-out", tmp_path / "s.der")
    signed = cms.verify((tmp_path / "s.der").read_bytes(), validator=test_pki.validator())
    assert signed.content == PAYLOAD and signed.content_type == "data"
    assert signed.signer == sender.sig.cert


def test_we_open_a_container_made_entirely_by_openssl(sender: Entity, recipient: Entity, test_pki: TestPki,
                                                      tmp_path: Path) -> None:
    """openssl encrypts (AES-128-GCM, SHA-256 KDF) and signs the AuthEnvelopedData as eContent."""
    payload = os.urandom(4096)
    (tmp_path / "p.bin").write_bytes(payload)
    openssl("cms", "-encrypt", "-binary", "-aes-128-gcm", "-keyid", "-recip", recipient.enc.cert_path, "-keyopt",
            "ecdh_kdf_md:sha256", "-outform", "DER", "-in", tmp_path / "p.bin", "-out", tmp_path / "e.der")
    ci = acms.ContentInfo.load((tmp_path / "e.der").read_bytes())
    (tmp_path / "aed.der").write_bytes(ci["content"].untag().dump())
    openssl("cms", "-sign", "-binary", "-nodetach", "-md", "sha256", "-keyid", "-econtent_type",
            "1.2.840.113549.1.9.16.1.23", "-signer", sender.sig.cert_path, "-inkey", sender.sig.key_path,
            "-outform", "DER", "-in", tmp_path / "aed.der", "-out", tmp_path / "s.der")
    opened = _open((tmp_path / "s.der").read_bytes(), recipient, test_pki)
    assert opened.payload == payload and not opened.compressed and opened.cipher == "gcm"


def test_cbc_cmac_checked_step_by_step_with_openssl_primitives(sender: Entity, recipient: Entity,
                                                               tmp_path: Path) -> None:
    """No CMS implementation at hand speaks AES-CBC-CMAC (DS 5.4), so rebuild the receiving side
    from openssl primitives: ECDH, X9.63 KDF, AES key unwrap, CMAC, AES-CBC."""
    from pki.cms_crypto import EccCmsSharedInfo

    ci = acms.ContentInfo.load(_seal(sender, recipient, cipher="cbc-cmac"))
    aed = acms.AuthEnvelopedData.load(bytes(ci["content"]["encap_content_info"]["content"]))
    kari = aed["recipient_infos"][0].chosen
    point = bytes(kari["originator"].chosen["public_key"].native)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    eph = ec.EllipticCurvePublicKey.from_encoded_point(ec.BrainpoolP256R1(), point)
    (tmp_path / "eph.pem").write_bytes(eph.public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo))
    z = openssl("pkeyutl", "-derive", "-inkey", recipient.enc.key_path, "-peerkey", tmp_path / "eph.pem").stdout
    info = EccCmsSharedInfo({"key_info": kari["key_encryption_algorithm"]["parameters"],
                             "supp_pub_info": (128).to_bytes(4, "big")}).dump()
    kek = openssl("kdf", "-keylen", "16", "-kdfopt", "digest:SHA256", "-kdfopt", f"hexsecret:{z.hex()}",
                  "-kdfopt", f"hexinfo:{info.hex()}", "-binary", "X963KDF").stdout
    wrapped = kari["recipient_encrypted_keys"][0]["encrypted_key"].native
    (tmp_path / "wrapped.bin").write_bytes(wrapped)
    keys = openssl("enc", "-d", "-id-aes128-wrap", "-K", kek.hex(), "-iv", "A6A6A6A6A6A6A6A6", "-in",
                   tmp_path / "wrapped.bin").stdout
    assert len(keys) == 32
    k_enc, k_mac = keys[:16], keys[16:]
    ct = bytes(aed["auth_encrypted_content_info"]["encrypted_content"])
    aad = b"\x31" + aed["auth_attrs"].dump()[1:]
    (tmp_path / "macin.bin").write_bytes(ct + aad)
    mac = openssl("mac", "-cipher", "AES-128-CBC", "-macopt", f"hexkey:{k_mac.hex()}", "-binary", "-in",
                  tmp_path / "macin.bin", "CMAC").stdout
    assert mac == aed["mac"].native
    (tmp_path / "ct.bin").write_bytes(ct)
    compressed = openssl("enc", "-d", "-aes-128-cbc", "-K", k_enc.hex(), "-iv", "00" * 16, "-in",
                         tmp_path / "ct.bin").stdout
    assert cms.decompress(compressed) == PAYLOAD


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("cipher", ["gcm", "cbc-cmac"])
def test_any_single_bit_flip_is_refused(sender: Entity, recipient: Entity, test_pki: TestPki,
                                        cipher: Cipher) -> None:
    sealed = _seal(sender, recipient, b"short admin payload", cipher=cipher)
    v = test_pki.validator()
    reasons: dict[str, int] = {}
    for i in range(len(sealed)):
        bad = bytearray(sealed)
        bad[i] ^= 1 << (i % 8)
        with pytest.raises(CmsError) as err:
            cms.open(bytes(bad), key=recipient.enc.key, cert=recipient.enc.cert, validator=v)
        reasons[err.value.reason] = reasons.get(err.value.reason, 0) + 1
    assert set(reasons) <= {"malformed", "bad_signature", "unknown_signer", "forbidden_algorithm", "wrong_recipient",
                            "decrypt_failed", "unknown_issuer", "profile_violation", "wrong_key_usage"}, reasons
    assert reasons["bad_signature"] and reasons["malformed"]


def test_tampered_inner_layers_without_signature(recipient: Entity) -> None:
    """Decrypt alone (no signature): GCM tag / CMAC catch every flip in ciphertext or MAC."""
    for cipher in ("gcm", "cbc-cmac"):
        ci = bytearray(cms.encrypt(b"abc" * 100, recipient.enc.cert, cipher=cipher))
        for pos in (len(ci) - 1, len(ci) - 20, len(ci) - 40):
            bad = bytearray(ci)
            bad[pos] ^= 0x80
            with pytest.raises(CmsError):
                cms.decrypt(bytes(bad), recipient.enc.key, recipient.enc.cert)


def test_wrong_recipient_and_wrong_key(sender: Entity, recipient: Entity, test_pki: TestPki) -> None:
    sealed = _seal(sender, recipient)
    other = test_pki.emts["emt2"]
    with pytest.raises(CmsError) as err:
        _open(sealed, other, test_pki)
    assert err.value.reason == "wrong_recipient"
    with pytest.raises(CmsError) as err:
        cms.open(sealed, key=other.enc.key, cert=recipient.enc.cert, validator=test_pki.validator())
    assert err.value.reason == "decrypt_failed"


def test_signer_problems(sender: Entity, recipient: Entity, test_pki: TestPki, foreign_pki: TestPki,
                         fresh_gateway: FreshGateway) -> None:
    bare = _seal(sender, recipient, include_signer_cert=False)
    with pytest.raises(CmsError) as err:
        _open(bare, recipient, test_pki)
    assert err.value.reason == "unknown_signer"
    assert _open(bare, recipient, test_pki, signer_certs=[sender.sig.cert]).payload == PAYLOAD

    alien = foreign_pki.gateway(foreign_pki.gateway_ids()[0])
    with pytest.raises(CmsError) as err:
        _open(_seal(alien, recipient), recipient, test_pki)
    assert err.value.reason == "unknown_issuer"

    enc_signed = cms.seal(PAYLOAD, sign_key=sender.enc.key, sign_cert=sender.enc.cert,
                          recipient_cert=recipient.enc.cert)
    with pytest.raises(CmsError) as err:
        _open(enc_signed, recipient, test_pki)
    assert err.value.reason == "wrong_key_usage"

    gw = fresh_gateway()
    sealed = _seal(gw, recipient)
    assert _open(sealed, recipient, test_pki).payload == PAYLOAD
    test_pki.revoke(gw.sig.cert)
    with pytest.raises(CmsError) as err:
        _open(sealed, recipient, test_pki)
    assert err.value.reason == "revoked"


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x30\x80", b"\x30\x03\x06\x01\x00"])
def test_garbage_is_malformed(recipient: Entity, test_pki: TestPki, data: bytes) -> None:
    with pytest.raises(CmsError) as err:
        _open(data, recipient, test_pki)
    assert err.value.reason == "malformed"


def test_truncation_is_refused(sender: Entity, recipient: Entity, test_pki: TestPki) -> None:
    sealed = _seal(sender, recipient)
    for cut in (10, len(sealed) // 2, len(sealed) - 1):
        with pytest.raises(CmsError) as err:
            _open(sealed[:cut], recipient, test_pki)
        assert err.value.reason == "malformed"
    with pytest.raises(CmsError):
        _open(sealed + b"\x00", recipient, test_pki)  # trailing data


def test_decompression_bomb_is_refused(sender: Entity, recipient: Entity, test_pki: TestPki) -> None:
    sealed = _seal(sender, recipient, b"\x00" * 5_000_000)
    assert len(sealed) < 20_000
    with pytest.raises(CmsError) as err:
        _open(sealed, recipient, test_pki, max_payload=1_000_000)
    assert err.value.reason == "malformed" and "exceeds" in err.value.detail


# --------------------------------------------------------------------------- CLI


def test_cli_seal_and_open(sender: Entity, recipient: Entity, test_pki: TestPki, tmp_path: Path) -> None:
    (tmp_path / "p.xml").write_bytes(PAYLOAD)
    out = tmp_path / "c.der"
    for cipher in ("gcm", "cbc-cmac"):
        res = pki_cli("cms", "seal", tmp_path / "p.xml", "--sign-key", sender.sig.key_path, "--sign-cert",
                      sender.sig.cert_path, "--recipient-cert", recipient.enc.cert_path, "--cipher", cipher, "-o", out)
        assert res.exit_code == 0, res.output
        d = test_pki.directory
        opened = pki_cli("cms", "open", out, "--key", recipient.enc.key_path, "--cert", recipient.enc.cert_path,
                         "--trust", d / "ca/root.crt", "--chain", d / "ca/subca.crt", "--crl", d / "crl/root.crl",
                         "--crl", d / "crl/subca.crl")
        assert opened.exit_code == 0, opened.output
        assert opened.stdout_bytes == PAYLOAD
    other = test_pki.emts["emt2"]
    wrong = pki_cli("cms", "open", out, "--key", other.enc.key_path, "--cert", other.enc.cert_path, "--trust",
                    test_pki.root_path, "--chain", test_pki.subca_path)
    assert wrong.exit_code == 1 and json.loads(wrong.stdout) == {
        "valid": False, "reason": "wrong_recipient", "detail": "no recipient entry for this certificate"}
    (tmp_path / "junk").write_bytes(b"junk")
    junk = pki_cli("cms", "open", tmp_path / "junk", "--key", other.enc.key_path, "--cert", other.enc.cert_path,
                   "--trust", test_pki.root_path)
    assert junk.exit_code == 1 and json.loads(junk.stdout)["reason"] == "malformed"
    nokey = pki_cli("cms", "open", out, "--key", tmp_path / "junk", "--cert", other.enc.cert_path, "--trust",
                    test_pki.root_path)
    assert nokey.exit_code == 2 and "error: key" in nokey.stderr
    bad_cipher = pki_cli("cms", "seal", tmp_path / "p.xml", "--sign-key", sender.sig.key_path, "--sign-cert",
                         sender.sig.cert_path, "--recipient-cert", recipient.enc.cert_path, "--cipher", "des",
                         "-o", out)
    assert bad_cipher.exit_code == 2
