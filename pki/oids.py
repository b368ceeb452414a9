"""Object identifiers and algorithm tables of the SM-PKI (TR-03109-1 DS section 5, TR-03116-3)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

# SM-PKI certificate policy (public lint rules of the SM-PKI).
SM_PKI_POLICY = ObjectIdentifier("0.4.0.127.0.7.3.4.1.1.1")

# bsi-de = 0.4.0.127.0.7
BSI_DE = "0.4.0.127.0.7"
# TR-03111 ecdsa-plain-signatures: {bsi-de algorithms(1) id-ecc(1) signatures(4) ecdsa-plain(1) n}
ECDSA_PLAIN_PREFIX = f"{BSI_DE}.1.1.4.1"
ECDSA_PLAIN_SHA256 = f"{ECDSA_PLAIN_PREFIX}.3"
ECDSA_PLAIN: dict[str, hashes.HashAlgorithm] = {
    f"{ECDSA_PLAIN_PREFIX}.2": hashes.SHA224(),
    f"{ECDSA_PLAIN_PREFIX}.3": hashes.SHA256(),
    f"{ECDSA_PLAIN_PREFIX}.4": hashes.SHA384(),
    f"{ECDSA_PLAIN_PREFIX}.5": hashes.SHA512(),
}

# ECKA-EG with X9.63 KDF (DS 5.3.2.2.1): {bsi-de 1 1 5 1 1 n}
ECKA_EG_X963_SHA256 = f"{BSI_DE}.1.1.5.1.1.3"
ECKA_EG_X963_SHA384 = f"{BSI_DE}.1.1.5.1.1.4"
ECKA_EG_X963_SHA512 = f"{BSI_DE}.1.1.5.1.1.5"
# RFC 5753 names for the same computation (what OpenSSL writes and understands).
DH_SINGLE_PASS_STD_SHA256 = "1.3.132.1.11.1"
DH_SINGLE_PASS_STD_SHA384 = "1.3.132.1.11.2"
DH_SINGLE_PASS_STD_SHA512 = "1.3.132.1.11.3"
KEY_AGREEMENT_HASH: dict[str, hashes.HashAlgorithm] = {
    ECKA_EG_X963_SHA256: hashes.SHA256(),
    ECKA_EG_X963_SHA384: hashes.SHA384(),
    ECKA_EG_X963_SHA512: hashes.SHA512(),
    DH_SINGLE_PASS_STD_SHA256: hashes.SHA256(),
    DH_SINGLE_PASS_STD_SHA384: hashes.SHA384(),
    DH_SINGLE_PASS_STD_SHA512: hashes.SHA512(),
}

# AES-CBC-CMAC (DS 5.4): {bsi-de algorithm(1) symmetricCiphers(3) AES(1) authEncr(1) n}
AES_CBC_CMAC_128 = f"{BSI_DE}.1.3.1.1.2"
AES_CBC_CMAC_192 = f"{BSI_DE}.1.3.1.1.3"
AES_CBC_CMAC_256 = f"{BSI_DE}.1.3.1.1.4"
AES_CBC_CMAC_KEYLEN = {AES_CBC_CMAC_128: 16, AES_CBC_CMAC_192: 24, AES_CBC_CMAC_256: 32}

AES128_GCM = "2.16.840.1.101.3.4.1.6"
AES192_GCM = "2.16.840.1.101.3.4.1.26"
AES256_GCM = "2.16.840.1.101.3.4.1.46"
AES_GCM_KEYLEN = {AES128_GCM: 16, AES192_GCM: 24, AES256_GCM: 32}

AES128_WRAP = "2.16.840.1.101.3.4.1.5"
AES192_WRAP = "2.16.840.1.101.3.4.1.25"
AES256_WRAP = "2.16.840.1.101.3.4.1.45"
AES_WRAP_KEYLEN = {AES128_WRAP: 16, AES192_WRAP: 24, AES256_WRAP: 32}

ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
ID_CT_COMPRESSED_DATA = "1.2.840.113549.1.9.16.1.9"
ID_CT_AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23"
ID_ALG_ZLIB = "1.2.840.113549.1.9.16.3.8"
ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"

# Curves TR-03116-3 allows for certificates, key agreement and TLS groups.
ALLOWED_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "brainpoolP256r1": ec.BrainpoolP256R1,
    "brainpoolP384r1": ec.BrainpoolP384R1,
    "brainpoolP512r1": ec.BrainpoolP512R1,
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
}

# Certificate and CMS signature algorithms: ecdsa-with-SHA256/384/512 only.
ECDSA_WITH_SHA = {
    "1.2.840.10045.4.3.2": hashes.SHA256(),
    "1.2.840.10045.4.3.3": hashes.SHA384(),
    "1.2.840.10045.4.3.4": hashes.SHA512(),
}
DIGESTS = {
    "2.16.840.1.101.3.4.2.1": hashes.SHA256(),
    "2.16.840.1.101.3.4.2.2": hashes.SHA384(),
    "2.16.840.1.101.3.4.2.3": hashes.SHA512(),
}


def curve_allowed(curve: ec.EllipticCurve) -> bool:
    """True when ``curve`` is one of the five curves TR-03116-3 admits."""
    return curve.name in ALLOWED_CURVES
