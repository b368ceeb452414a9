"""The cryptographic primitives under gridgate's CMS profile (TR-03109-1 DS 5.3/5.4), kept apart
from the ASN.1 plumbing in :mod:`pki.cms`:

* ECKA-EG / RFC 5753 ephemeral-static ECDH with the X9.63 KDF over ECC-CMS-SharedInfo,
* AES key wrap (RFC 3394) of the content-encryption key(s),
* content encryption AES-GCM (12-byte nonce, 16-byte tag) and AES-CBC (IV 0) + AES-CMAC
  (DS 5.4: MAC over C || AAD, keys Kenc || KMAC wrapped together),
* zlib compression with a bound on the inflated size.
"""

from __future__ import annotations

import functools
import os
import zlib

from asn1crypto import core
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

GCM_NONCE_LEN = 12
TAG_LEN = 16
MAX_PAYLOAD = 64 * 1024 * 1024


class DecryptError(Exception):
    """Key unwrap, tag/MAC check or padding failed: the container was not for us or was altered."""


class EccCmsSharedInfo(core.Sequence):
    """RFC 5753 ECC-CMS-SharedInfo, the X9.63 KDF's SharedInfo."""

    _fields = [
        ("key_info", core.Any),
        ("entity_u_info", core.OctetString, {"explicit": 0, "optional": True}),
        ("supp_pub_info", core.OctetString, {"explicit": 2}),
    ]


class GcmParameters(core.Sequence):
    """RFC 5084 GCMParameters."""

    _fields = [
        ("nonce", core.OctetString),
        ("icv_len", core.Integer, {"default": 12}),
    ]


class CbcCmacParameters(core.Sequence):
    """DS 5.4 CBC-CMAC-Param (only accepted when opening; gridgate omits parameters)."""

    _fields = [
        ("iv", core.OctetString),
        ("mac_len", core.Integer, {"default": 16}),
    ]


def derive_kek(
    private_key: ec.EllipticCurvePrivateKey,
    peer_public: ec.EllipticCurvePublicKey,
    *,
    wrap_algorithm_der: bytes,
    kek_len: int,
    kdf_hash: hashes.HashAlgorithm,
    ukm: bytes | None = None,
) -> bytes:
    """ECDH (x-coordinate) -> X9.63 KDF -> key-encryption key. SharedInfo carries the key-wrap
    AlgorithmIdentifier exactly as encoded in the message (that is what OpenSSL hashes)."""
    z = private_key.exchange(ec.ECDH(), peer_public)
    info = shared_info(wrap_algorithm_der, kek_len, ukm)
    return X963KDF(algorithm=kdf_hash, length=kek_len, sharedinfo=info).derive(z)


@functools.lru_cache(maxsize=64)
def shared_info(wrap_algorithm_der: bytes, kek_len: int, ukm: bytes | None = None) -> bytes:
    """DER ECC-CMS-SharedInfo. Without UKM it is the same for every message, hence the cache."""
    return EccCmsSharedInfo(
        {
            "key_info": core.Any.load(wrap_algorithm_der),
            "entity_u_info": ukm,
            "supp_pub_info": (kek_len * 8).to_bytes(4, "big"),
        }
    ).dump()


def wrap(kek: bytes, key: bytes) -> bytes:
    return aes_key_wrap(kek, key)


def unwrap(kek: bytes, wrapped: bytes) -> bytes:
    try:
        return aes_key_unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError):
        raise DecryptError("key unwrap failed") from None


def gcm_encrypt(key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes, bytes]:
    """-> (nonce, ciphertext, tag)."""
    nonce = os.urandom(GCM_NONCE_LEN)
    out = AESGCM(key).encrypt(nonce, plaintext, aad)
    return nonce, out[:-TAG_LEN], out[-TAG_LEN:]


def gcm_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, tag: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext + tag, aad)
    except (InvalidTag, ValueError):
        raise DecryptError("GCM authentication failed") from None


def cbc_cmac_encrypt(k_enc: bytes, k_mac: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """AES-CBC with IV 0 (keys are fresh per message, DS 5.3.2.2.3) and PKCS#7 padding, then
    CMAC over C || AAD. -> (ciphertext, mac)."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(k_enc), modes.CBC(bytes(16))).encryptor()
    c = enc.update(padded) + enc.finalize()
    return c, _cmac(k_mac, c + aad)


def cbc_cmac_decrypt(k_enc: bytes, k_mac: bytes, iv: bytes, ciphertext: bytes, mac: bytes, aad: bytes) -> bytes:
    import hmac

    # MAC before decryption: no padding oracle, no garbage from an altered ciphertext.
    if not hmac.compare_digest(_cmac(k_mac, ciphertext + aad), mac):
        raise DecryptError("CMAC verification failed")
    if not ciphertext or len(ciphertext) % 16:
        raise DecryptError("ciphertext length is not a multiple of the block size")
    dec = Cipher(algorithms.AES(k_enc), modes.CBC(iv)).decryptor()
    padded = dec.update(ciphertext) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise DecryptError("bad padding") from None


def _cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def compress(payload: bytes) -> bytes:
    return zlib.compress(payload)


def decompress(data: bytes, limit: int = MAX_PAYLOAD) -> bytes:
    """Inflate a zlib stream; ValueError on corruption, trailing data or more than ``limit``
    bytes (decompression bombs)."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as err:
        raise ValueError(f"zlib: {err}") from None
    if len(out) > limit:
        raise ValueError(f"decompressed payload exceeds {limit} bytes")
    if not d.eof or d.unused_data or d.unconsumed_tail:
        raise ValueError("zlib stream incomplete or followed by extra data")
    return out
