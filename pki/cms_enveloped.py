"""AuthEnvelopedData (RFC 5083, DS 5.3.2) with one KeyAgreeRecipientInfo (ephemeral-static ECDH,
X9.63 KDF, AES key wrap, recipient by SKI) and AES-GCM or AES-CBC-CMAC content encryption, plus
CompressedData (RFC 3274, zlib).

Key agreement OID: the DS names BSI ``ecka-eg-X963KDF-SHA256`` (0.4.0.127.0.7.1.1.5.1.1.3);
OpenSSL only knows RFC 5753 ``dhSinglePass-stdDH-sha256kdf-scheme`` (1.3.132.1.11.1) for the same
computation. gridgate writes the BSI OID by default (``key_agreement="bsi"``) and the RFC 5753
one on request; opening accepts both. Both use RFC 5753 ECC-CMS-SharedInfo as the KDF input.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Literal

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki import cms_crypto as cc
from pki import der
from pki.cms_common import (
    ATTR_CONTENT_TYPE,
    CT_NAMES,
    DECRYPT_FAILED,
    FORBIDDEN_ALGORITHM,
    MALFORMED,
    WRONG_RECIPIENT,
    CmsError,
    absent,
    absent_or_null,
    content_type_oid,
    identifies,
    oid,
    parsing,
    require_ski,
    set_tagged,
)
from pki.cms_crypto import MAX_PAYLOAD, CbcCmacParameters, DecryptError, GcmParameters
from pki.oids import (
    AES128_GCM,
    AES128_WRAP,
    AES_CBC_CMAC_128,
    AES_CBC_CMAC_KEYLEN,
    AES_GCM_KEYLEN,
    AES_WRAP_KEYLEN,
    DH_SINGLE_PASS_STD_SHA256,
    ECKA_EG_X963_SHA256,
    ID_ALG_ZLIB,
    ID_CT_AUTH_ENVELOPED_DATA,
    ID_DATA,
    ID_EC_PUBLIC_KEY,
    KEY_AGREEMENT_HASH,
    curve_allowed,
)

Cipher = Literal["gcm", "cbc-cmac"]
KeyAgreement = Literal["bsi", "rfc5753"]

_CURVE_OIDS = {
    "brainpoolP256r1": "1.3.36.3.3.2.8.1.1.7",
    "brainpoolP384r1": "1.3.36.3.3.2.8.1.1.11",
    "brainpoolP512r1": "1.3.36.3.3.2.8.1.1.13",
    "secp256r1": "1.2.840.10045.3.1.7",
    "secp384r1": "1.3.132.0.34",
}


def _spki_point(pub: ec.EllipticCurvePublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


# --------------------------------------------------------------------------- CompressedData


def compress(payload: bytes) -> bytes:
    """CompressedData (RFC 3274, zlib) DER, without ContentInfo (the inner layer of seal)."""
    return der.seq(der.integer(0), der.algorithm(ID_ALG_ZLIB),
                   der.seq(der.oid(ID_DATA), der.explicit(0, der.octets(cc.compress(payload)))))


def decompress(der: bytes, *, max_payload: int = MAX_PAYLOAD) -> bytes:
    with parsing("CompressedData"):
        cd = cms.CompressedData.load(der, strict=True)
        if cd["version"].native != "v0":
            raise CmsError(MALFORMED, "CompressedData version must be 0")
        if oid(cd["compression_algorithm"]["algorithm"]) != "1.2.840.113549.1.9.16.3.8":
            raise CmsError(FORBIDDEN_ALGORITHM, "compression algorithm is not zlib")
        if not absent_or_null(cd["compression_algorithm"]["parameters"]):
            raise CmsError(MALFORMED, "zlib compression takes no parameters")
        eci = cd["encap_content_info"]
        if oid(eci["content_type"]) != "1.2.840.113549.1.7.1":
            raise CmsError(MALFORMED, "compressed content is not id-data")
        data = None if absent(eci["content"]) else bytes(eci["content"])
        if data is None:
            raise CmsError(MALFORMED, "compressed content missing")
    try:
        return cc.decompress(data, max_payload)
    except ValueError as err:
        raise CmsError(MALFORMED, f"CompressedData: {err}") from None


# --------------------------------------------------------------------------- AuthEnvelopedData


def auth_enveloped(
    content: bytes,
    content_type: str,
    recipient_cert: x509.Certificate,
    cipher: Cipher,
    key_agreement: KeyAgreement,
) -> bytes:
    """DER AuthEnvelopedData (bare, no ContentInfo) of ``content`` for ``recipient_cert``'s ENC
    key, written with :mod:`pki.der`."""
    rpub = recipient_cert.public_key()
    if not isinstance(rpub, ec.EllipticCurvePublicKey) or not curve_allowed(rpub.curve):
        raise ValueError("recipient certificate must carry an EC key on an allowed curve")
    ct_oid = content_type_oid(content_type)
    eph = ec.generate_private_key(rpub.curve)  # fresh ephemeral key per message (ECKA-EG)
    wrap_alg = der.algorithm(AES128_WRAP)  # parameters absent
    kek = cc.derive_kek(
        eph, rpub, wrap_algorithm_der=wrap_alg, kek_len=16, kdf_hash=KEY_AGREEMENT_HASH[ECKA_EG_X963_SHA256]
    )
    # RFC 5083 / DS: authAttrs with contentType when the content is not id-data; the universal
    # SET is the AAD, the field carries it as [1] IMPLICIT.
    aad = b""
    if ct_oid != ID_DATA:
        aad = der.set_of(der.seq(der.oid(ATTR_CONTENT_TYPE), der.set_of(der.oid(ct_oid))))
    if cipher == "gcm":
        cek = os.urandom(16)
        nonce, ct, mac = cc.gcm_encrypt(cek, content, aad)
        ce_alg = der.algorithm(AES128_GCM, der.seq(der.octets(nonce), der.integer(cc.TAG_LEN)))
    elif cipher == "cbc-cmac":
        k_enc, k_mac = os.urandom(16), os.urandom(16)
        ct, mac = cc.cbc_cmac_encrypt(k_enc, k_mac, content, aad)
        cek = k_enc + k_mac  # DS 5.3.2.2.3: wrap Kenc || KMAC; parameters absent (IV 0, MAC 16)
        ce_alg = der.algorithm(AES_CBC_CMAC_128)
    else:
        raise ValueError(f"unknown cipher {cipher!r}")
    kdf_oid = ECKA_EG_X963_SHA256 if key_agreement == "bsi" else DH_SINGLE_PASS_STD_SHA256
    kari = b"".join((
        der.integer(3),
        # originator [0] EXPLICIT, originatorKey [1] IMPLICIT OriginatorPublicKey (id-ecPublicKey,
        # parameters absent: the recipient's curve)
        der.explicit(0, der.explicit(1, der.algorithm(ID_EC_PUBLIC_KEY)
                                     + der.bit_string(_spki_point(eph.public_key())))),
        der.algorithm(kdf_oid, wrap_alg),
        der.seq(der.seq(  # recipientEncryptedKeys: rKeyId [0] IMPLICIT RecipientKeyIdentifier
            der.explicit(0, der.octets(require_ski(recipient_cert))),
            der.octets(cc.wrap(kek, cek)),
        )),
    ))
    return der.seq(
        der.integer(0),
        der.set_of(der.explicit(1, kari)),  # RecipientInfo kari [1] IMPLICIT
        der.seq(der.oid(ct_oid), ce_alg, der.implicit_primitive(0, ct)),
        der.explicit(1, der.content_of(aad)) if aad else b"",  # authAttrs [1] IMPLICIT
        der.octets(mac),
    )


def encrypt(
    content: bytes,
    recipient_cert: x509.Certificate,
    *,
    content_type: str = "data",
    cipher: Cipher = "gcm",
    key_agreement: KeyAgreement = "bsi",
) -> bytes:
    """ContentInfo(AuthEnvelopedData) for ``recipient_cert``'s ENC key."""
    aed = auth_enveloped(content, content_type, recipient_cert, cipher, key_agreement)
    return der.seq(der.oid(ID_CT_AUTH_ENVELOPED_DATA), der.explicit(0, aed))


@dataclass(frozen=True)
class Decrypted:
    content_type: str  # "data" or "compressed_data"
    content: bytes
    cipher: Cipher


def decrypt_auth_enveloped(
    der: bytes, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> Decrypted:
    """Open an AuthEnvelopedData (bare, no ContentInfo) for (``key``, ``cert``)."""
    with parsing("AuthEnvelopedData"):
        aed = cms.AuthEnvelopedData.load(der, strict=True)
        if aed["version"].native != "v0":
            raise CmsError(MALFORMED, "AuthEnvelopedData version must be 0")
        if not absent(aed["originator_info"]) or not absent(aed["unauth_attrs"]):
            raise CmsError(MALFORMED, "originatorInfo/unauthAttrs must be absent")
        kari, rek = _find_recipient(aed, cert)
        kek = _kari_kek(kari, key)
        aeci = aed["auth_encrypted_content_info"]
        ct_oid = oid(aeci["content_type"])
        content_type = CT_NAMES.get(ct_oid, ct_oid)
        if content_type not in ("data", "compressed_data"):
            raise CmsError(MALFORMED, f"encrypted content type {ct_oid} not supported")
        aad = b""
        if not absent(aed["auth_attrs"]):
            aad = set_tagged(aed["auth_attrs"].dump())
            declared = [oid(a["values"][0]) for a in aed["auth_attrs"] if oid(a["type"]) == ATTR_CONTENT_TYPE]
            if declared != [ct_oid]:
                raise CmsError(MALFORMED, "authAttrs contentType does not match the encrypted content type")
        elif content_type != "data":
            raise CmsError(MALFORMED, "authAttrs with contentType required for non-data content (RFC 5083)")
        alg = aeci["content_encryption_algorithm"]
        alg_oid = oid(alg["algorithm"])
        params = alg["parameters"]
        ct = aeci["encrypted_content"].native
        if ct is None:
            raise CmsError(MALFORMED, "encryptedContent missing (detached content not supported)")
        mac = aed["mac"].native
        wrapped = rek["encrypted_key"].native
    try:
        if alg_oid in AES_GCM_KEYLEN:
            with parsing("GCMParameters"):
                gp = GcmParameters.load(params.dump(), strict=True)
                nonce, icv = gp["nonce"].native, gp["icv_len"].native
            if len(nonce) != 12 or icv != 16 or len(mac) != 16:
                raise CmsError(MALFORMED, "GCM requires a 12-byte nonce and a 16-byte tag")
            cek = cc.unwrap(kek, wrapped)
            if len(cek) != AES_GCM_KEYLEN[alg_oid]:
                raise DecryptError("content-encryption key has the wrong length")
            return Decrypted(content_type, cc.gcm_decrypt(cek, nonce, ct, mac, aad), "gcm")
        if alg_oid in AES_CBC_CMAC_KEYLEN:
            iv = bytes(16)
            if not absent_or_null(params):
                with parsing("CBC-CMAC-Param"):
                    cp = CbcCmacParameters.load(params.dump(), strict=True)
                    iv = cp["iv"].native
                    if len(iv) != 16 or cp["mac_len"].native != 16:
                        raise CmsError(MALFORMED, "CBC-CMAC requires a 16-byte IV and MAC length 16")
            if len(mac) != 16:
                raise CmsError(MALFORMED, "CMAC must be 16 bytes")
            klen = AES_CBC_CMAC_KEYLEN[alg_oid]
            keys_ = cc.unwrap(kek, wrapped)
            if len(keys_) != 2 * klen:
                raise DecryptError("wrapped key is not Kenc || KMAC")
            plain = cc.cbc_cmac_decrypt(keys_[:klen], keys_[klen:], iv, ct, mac, aad)
            return Decrypted(content_type, plain, "cbc-cmac")
    except DecryptError as err:
        raise CmsError(DECRYPT_FAILED, str(err)) from None
    raise CmsError(FORBIDDEN_ALGORITHM, f"content encryption {alg_oid} not allowed")


def _find_recipient(aed: cms.AuthEnvelopedData, cert: x509.Certificate) -> tuple[Any, Any]:
    saw_other = False
    for ri in aed["recipient_infos"]:
        if ri.name != "kari":
            saw_other = True
            continue
        kari = ri.chosen
        if kari["version"].native != "v3":
            raise CmsError(MALFORMED, "KeyAgreeRecipientInfo version must be 3")
        for rek in kari["recipient_encrypted_keys"]:
            rid = rek["rid"]
            if identifies(cert, rid.name, rid.chosen):
                return kari, rek
    hint = " (only non-key-agreement recipients)" if saw_other else ""
    raise CmsError(WRONG_RECIPIENT, f"no recipient entry for this certificate{hint}")


def _kari_kek(kari: Any, key: ec.EllipticCurvePrivateKey) -> bytes:
    orig = kari["originator"]
    if orig.name != "originator_key":
        raise CmsError(MALFORMED, "originator must be an ephemeral originatorKey")
    pki_ = orig.chosen
    if oid(pki_["algorithm"]["algorithm"]) != ID_EC_PUBLIC_KEY:
        raise CmsError(FORBIDDEN_ALGORITHM, "originator key is not id-ecPublicKey")
    params = pki_["algorithm"]["parameters"]
    # DS: if present, namedCurve and it must be the recipient key's curve
    if not absent_or_null(params) and (
        params.name != "named" or oid(params.chosen) != _CURVE_OIDS.get(key.curve.name)
    ):
        raise CmsError(MALFORMED, "originator key curve differs from the recipient key's curve")
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(key.curve, bytes(pki_["public_key"].native))
    except ValueError:
        raise CmsError(MALFORMED, "originator public key is not a point on the recipient's curve") from None
    kea = kari["key_encryption_algorithm"]
    kdf_oid = oid(kea["algorithm"])
    if kdf_oid not in KEY_AGREEMENT_HASH:
        raise CmsError(FORBIDDEN_ALGORITHM, f"key agreement {kdf_oid} not allowed")
    wrap_der = kea["parameters"].dump()
    wrap_oid, wrap_params_ok = _wrap_algorithm(wrap_der)
    if wrap_oid not in AES_WRAP_KEYLEN:
        raise CmsError(FORBIDDEN_ALGORITHM, f"key wrap {wrap_oid} not allowed")
    if not wrap_params_ok:
        raise CmsError(MALFORMED, "key wrap algorithm parameters must be absent")
    ukm = kari["ukm"].native
    return cc.derive_kek(key, peer, wrap_algorithm_der=wrap_der, kek_len=AES_WRAP_KEYLEN[wrap_oid],
                         kdf_hash=KEY_AGREEMENT_HASH[kdf_oid], ukm=ukm)


@functools.lru_cache(maxsize=64)
def _wrap_algorithm(der: bytes) -> tuple[str, bool]:
    """(OID, parameters absent/NULL) of a key-wrap AlgorithmIdentifier; cached because every
    message carries the same few bytes."""
    alg = cms.KeyEncryptionAlgorithm.load(der, strict=True)
    return alg["algorithm"].dotted, absent_or_null(alg["parameters"])


def decrypt(data: bytes, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate,
            *, max_payload: int = MAX_PAYLOAD) -> bytes:
    """ContentInfo(AuthEnvelopedData) -> content (decompressed if it was CompressedData)."""
    with parsing("ContentInfo"):
        ci = cms.ContentInfo.load(data, strict=True)
        if CT_NAMES.get(oid(ci["content_type"])) != "authenticated_enveloped_data":
            raise CmsError(MALFORMED, f"not AuthEnvelopedData but {oid(ci['content_type'])}")
        inner = ci["content"].untag().dump()  # dump() would keep the [0] EXPLICIT wrapper
    dec = decrypt_auth_enveloped(inner, key, cert)
    return decompress(dec.content, max_payload=max_payload) if dec.content_type == "compressed_data" else dec.content
