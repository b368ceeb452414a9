"""pki.der writes the CMS structures gridgate seals without asn1crypto's object model. These tests
rebuild each written structure with asn1crypto from the same values (the random parts taken from
the written bytes) and require the same bytes, and check the writer's primitives against
asn1crypto's encoder on edge values (long lengths, large OID arcs, integer sign octets)."""

from __future__ import annotations

import hashlib
import os
import zlib

import pytest
from asn1crypto import algos, cms, core, keys
from asn1crypto import x509 as ax509
from cryptography.hazmat.primitives import serialization

from pki import der
from pki.cms_crypto import GcmParameters
from pki.cms_enveloped import Cipher, KeyAgreement, auth_enveloped, compress, encrypt
from pki.cms_signed import sign
from pki.profile import subject_key_id
from pki.testpki import Entity


@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2**31])
def test_integer_and_length_encoding(n: int) -> None:
    assert der.integer(n) == core.Integer(n).dump()
    content = b"\x00" * min(n, 70_000)
    assert der.octets(content) == core.OctetString(content).dump()


@pytest.mark.parametrize("dotted", ["1.2.840.113549.1.9.16.1.23", "0.4.0.127.0.7.1.1.5.1.1.3", "2.16.840.1.101.3.4.1.6",
                                    "2.999.1", "1.3.36.3.3.2.8.1.1.7", "1.2.3.4294967296"])
def test_oid_encoding(dotted: str) -> None:
    assert der.oid(dotted) == core.ObjectIdentifier(dotted).dump()


def test_set_of_is_sorted_like_asn1crypto() -> None:
    values = [core.OctetString(os.urandom(k)).dump() for k in (40, 3, 17, 3)]
    class Octets(core.SetOf):
        _child_spec = core.OctetString

    assert der.set_of(*values) == Octets([core.OctetString.load(v).native for v in values]).dump(force=True)


def test_invalid_oids_are_refused() -> None:
    for bad in ("1", "3.1", "1.40", "a.b"):
        with pytest.raises(ValueError):
            der.oid(bad)
    with pytest.raises(ValueError):
        der.integer(-1)


@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize("include_cert", [True, False])
@pytest.mark.parametrize("content_type", ["authenticated_enveloped_data", "data"])
def test_signed_data_matches_asn1crypto(sender: Entity, recipient: Entity, digest: str, include_cert: bool,
                                        content_type: str) -> None:
    # (asn1crypto parses typed content when it encodes it, so that content must be what it says)
    content = os.urandom(300) if content_type == "data" else \
        auth_enveloped(os.urandom(300), "data", recipient.enc.cert, "gcm", "bsi")
    written = sign(content, content_type=content_type, key=sender.sig.key, cert=sender.sig.cert, digest=digest,
                   include_cert=include_cert)
    signature = cms.ContentInfo.load(written)["content"]["signer_infos"][0]["signature"].native
    attrs = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": [content_type]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hashlib.new(digest, content).digest()]}),
    ])
    digest_alg = algos.DigestAlgorithm({"algorithm": digest})
    digest_alg["parameters"] = None
    signer = cms.SignerInfo({
        "version": "v3",
        "sid": cms.SignerIdentifier(name="subject_key_identifier", value=subject_key_id(sender.sig.cert)),
        "digest_algorithm": digest_alg,
        "signed_attrs": attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": f"{digest}_ecdsa"}),
        "signature": signature,
    })
    sd: dict[str, object] = {
        "version": "v3",
        "digest_algorithms": [digest_alg],
        "encap_content_info": {"content_type": content_type, "content": core.ParsableOctetString(content)},
        "signer_infos": [signer],
    }
    if include_cert:
        sd["certificates"] = [ax509.Certificate.load(sender.sig.cert.public_bytes(serialization.Encoding.DER))]
    expected = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(sd)}).dump()
    assert written == expected


def test_sign_refuses_a_key_of_another_certificate(sender: Entity, recipient: Entity) -> None:
    with pytest.raises(ValueError, match="does not belong"):
        sign(b"x", content_type="data", key=recipient.enc.key, cert=sender.sig.cert)
    assert sign(b"x", content_type="data", key=sender.sig.key, cert=sender.sig.cert)  # the certificate is known now
    with pytest.raises(ValueError, match="does not belong"):
        sign(b"x", content_type="data", key=recipient.enc.key, cert=sender.sig.cert)


@pytest.mark.parametrize("cipher", ["gcm", "cbc-cmac"])
@pytest.mark.parametrize("key_agreement", ["bsi", "rfc5753"])
@pytest.mark.parametrize("content_type", ["compressed_data", "data"])
def test_auth_enveloped_data_matches_asn1crypto(recipient: Entity, cipher: Cipher, key_agreement: KeyAgreement,
                                                content_type: str) -> None:
    content = os.urandom(1000)
    written = auth_enveloped(content, content_type, recipient.enc.cert, cipher, key_agreement)
    parsed = cms.AuthEnvelopedData.load(written)
    kari = parsed["recipient_infos"][0].chosen
    aeci = parsed["auth_encrypted_content_info"]
    wrap_alg = cms.KeyEncryptionAlgorithm({"algorithm": "aes128_wrap"}).dump()
    ce_alg: dict[str, object] = {"algorithm": aeci["content_encryption_algorithm"]["algorithm"].dotted}
    if cipher == "gcm":
        params = aeci["content_encryption_algorithm"]["parameters"]
        gp = GcmParameters({"nonce": GcmParameters.load(params.dump())["nonce"].native, "icv_len": 16})
        ce_alg["parameters"] = core.Any.load(gp.dump())
    rebuilt_kari = cms.KeyAgreeRecipientInfo({
        "version": "v3",
        "originator": cms.OriginatorIdentifierOrKey(
            name="originator_key",
            value=keys.PublicKeyInfo({"algorithm": {"algorithm": "ec"},
                                      "public_key": kari["originator"].chosen["public_key"].native})),
        "key_encryption_algorithm": {"algorithm": kari["key_encryption_algorithm"]["algorithm"].dotted,
                                     "parameters": core.Any.load(wrap_alg)},
        "recipient_encrypted_keys": [{
            "rid": cms.KeyAgreementRecipientIdentifier(
                name="r_key_id", value={"subject_key_identifier": subject_key_id(recipient.enc.cert)}),
            "encrypted_key": kari["recipient_encrypted_keys"][0]["encrypted_key"].native,
        }],
    })
    aed: dict[str, object] = {
        "version": "v0",
        "recipient_infos": [cms.RecipientInfo(name="kari", value=rebuilt_kari)],
        "auth_encrypted_content_info": {"content_type": content_type, "content_encryption_algorithm": ce_alg,
                                        "encrypted_content": aeci["encrypted_content"].native},
        "mac": parsed["mac"].native,
    }
    if content_type != "data":
        aed["auth_attrs"] = cms.CMSAttributes([cms.CMSAttribute({"type": "content_type", "values": [content_type]})])
    assert written == cms.AuthEnvelopedData(aed).dump()
    wrapped = encrypt(content, recipient.enc.cert, content_type=content_type, cipher=cipher)
    assert cms.ContentInfo.load(wrapped, strict=True)["content_type"].native == "authenticated_enveloped_data"


def test_compressed_data_matches_asn1crypto() -> None:
    payload = os.urandom(200) * 5
    expected = cms.CompressedData({
        "version": "v0",
        "compression_algorithm": {"algorithm": "zlib"},
        "encap_content_info": {"content_type": "data", "content": zlib.compress(payload)},
    }).dump()
    assert compress(payload) == expected


@pytest.mark.parametrize("size", [0, 5, 127, 128, 300, 70_000])
def test_content_of_strips_short_and_long_headers(size: int) -> None:
    body = os.urandom(size)
    assert der.content_of(der.octets(body)) == body
