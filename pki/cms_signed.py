"""SignedData (RFC 5652, DS 5.3.3): one signer identified by SKI (issuerAndSerialNumber accepted
when verifying), signed attributes contentType + messageDigest, ECDSA with SHA-256/384/512 (DER
signature), the signer's certificate optionally included, no CRLs inside."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki import der
from pki.cms_common import (
    ATTR_CONTENT_TYPE,
    ATTR_MESSAGE_DIGEST,
    BAD_SIGNATURE,
    CT_NAMES,
    FORBIDDEN_ALGORITHM,
    MALFORMED,
    UNKNOWN_SIGNER,
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
from pki.oids import DIGESTS, ECDSA_WITH_SHA, ID_SIGNED_DATA
from pki.validation import Validator, Verdict

_DIGEST_NAME = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
_ECDSA_OID_HASH = {oid: h.name for oid, h in ECDSA_WITH_SHA.items()}
_DIGEST_OID_NAME = {oid: h.name for oid, h in DIGESTS.items()}
_DIGEST_OID = {name: oid for oid, name in _DIGEST_OID_NAME.items()}
_ECDSA_OID = {name: oid for oid, name in _ECDSA_OID_HASH.items()}


_certs: dict[bytes, x509.Certificate] = {}
_CERTS_MAX = 1024


def _certificate(der: bytes) -> x509.Certificate:
    """Load a carried certificate, reusing the object for bytes seen before: a peer sends the
    same signer certificate in every message, and an object the validator has seen before is
    validated from its memo (parsed extensions, fingerprint) instead of from scratch."""
    cert = _certs.get(der)
    if cert is None:
        cert = x509.load_der_x509_certificate(der)
        if len(_certs) >= _CERTS_MAX:
            _certs.pop(next(iter(_certs)))
        _certs[der] = cert
    return cert


def sign(
    content: bytes,
    *,
    content_type: str,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    digest: str = "sha256",
    include_cert: bool = True,
) -> bytes:
    """DER ContentInfo(SignedData) over ``content`` of ``content_type`` (asn1crypto name or
    dotted OID, e.g. ``authenticated_enveloped_data``). Written with :mod:`pki.der`."""
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    if not _pair_checked(key, cert, cert_der):
        raise ValueError("signing key does not belong to the signing certificate")
    ct_oid = content_type_oid(content_type)
    md = hashlib.new(digest, content).digest()
    signed_attrs = der.set_of(
        der.seq(der.oid(ATTR_CONTENT_TYPE), der.set_of(der.oid(ct_oid))),
        der.seq(der.oid(ATTR_MESSAGE_DIGEST), der.set_of(der.octets(md))),
    )
    signature = key.sign(signed_attrs, ec.ECDSA(_DIGEST_NAME[digest]))  # over the universal SET
    digest_alg = der.algorithm(_DIGEST_OID[digest])  # DS 5.3.3.2.1: parameters absent
    signer = der.seq(
        der.integer(3),
        der.implicit_primitive(0, require_ski(cert)),  # sid: subjectKeyIdentifier
        digest_alg,
        der.explicit(0, der.content_of(signed_attrs)),  # [0] IMPLICIT SET OF Attribute
        der.algorithm(_ECDSA_OID[digest]),
        der.octets(signature),
    )
    sd = der.seq(
        der.integer(3),
        der.set_of(digest_alg),
        der.seq(der.oid(ct_oid), der.explicit(0, der.octets(content))),
        der.explicit(0, cert_der) if include_cert else b"",  # certificates [0] IMPLICIT SET OF
        der.set_of(signer),
    )
    return der.seq(der.oid(ID_SIGNED_DATA), der.explicit(0, sd))


_pairs: dict[bytes, bytes] = {}  # certificate DER -> public point of a key checked against it


def _pair_checked(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, cert_der: bytes) -> bool:
    """Does ``key`` belong to the certificate? The certificate's point is remembered, so a key
    signing again costs one public-point export instead of two key conversions."""
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    known = _pairs.get(cert_der)
    if known is None:
        pub = cert.public_key()
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            return False
        known = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        if len(_pairs) >= _CERTS_MAX:
            _pairs.pop(next(iter(_pairs)))
        _pairs[cert_der] = known
    return known == point


@dataclass(frozen=True)
class Signed:
    """A verified SignedData: the encapsulated content and its validated signer."""

    content_type: str
    content: bytes
    signer: x509.Certificate
    verdict: Verdict


def verify(
    data: bytes,
    *,
    validator: Validator,
    signer_certs: Sequence[x509.Certificate] = (),
    at: dt.datetime | None = None,
) -> Signed:
    """Verify a DER ContentInfo(SignedData): structure, the single signer's signature over the
    signed attributes, messageDigest and contentType, then the signer's certificate for purpose
    ``sig`` with ``validator``. ``signer_certs``: known certificates to look the signer up in,
    besides those the container carries. Raises :class:`CmsError`."""
    with parsing("SignedData"):
        ci = cms.ContentInfo.load(data, strict=True)
        if CT_NAMES.get(oid(ci["content_type"])) != "signed_data":
            raise CmsError(MALFORMED, f"not SignedData but {oid(ci['content_type'])}")
        sd = ci["content"]
        infos = sd["signer_infos"]
        if len(infos) != 1:
            raise CmsError(MALFORMED, f"expected exactly one SignerInfo, got {len(infos)}")
        si = infos[0]
        sid = si["sid"]
        si_version = si["version"].native
        if (sid.name, si_version) not in (("subject_key_identifier", "v3"), ("issuer_and_serial_number", "v1")):
            raise CmsError(MALFORMED, f"SignerInfo version {si_version} does not fit signer id {sid.name}")
        eci = sd["encap_content_info"]
        e_dotted = oid(eci["content_type"])
        e_type = CT_NAMES.get(e_dotted, e_dotted)
        want_version = "v3" if si_version == "v3" or e_type != "data" else "v1"
        if sd["version"].native != want_version:
            raise CmsError(MALFORMED, f"SignedData version must be {want_version}")
        if not absent(sd["crls"]):
            raise CmsError(MALFORMED, "CRLs inside SignedData are not allowed (DS 5.3.3)")
        if not absent(si["unsigned_attrs"]):
            raise CmsError(MALFORMED, "unsigned attributes are not allowed (DS 5.3.3)")
        if absent(eci["content"]):
            raise CmsError(MALFORMED, "detached content not supported here")
        # the octet string's bytes, not asn1crypto's parse of them (merges BER chunks too)
        content = bytes(eci["content"])
        if not content:
            raise CmsError(MALFORMED, "detached content not supported here")
        digest_oid = oid(si["digest_algorithm"]["algorithm"])
        digest_name = _DIGEST_OID_NAME.get(digest_oid)
        if digest_name is None:
            raise CmsError(FORBIDDEN_ALGORITHM, f"digest {digest_oid} not allowed")
        if not absent_or_null(si["digest_algorithm"]["parameters"]):
            raise CmsError(MALFORMED, "digest algorithm parameters must be absent or NULL")
        listed = [oid(a["algorithm"]) for a in sd["digest_algorithms"]]
        if digest_oid not in listed or any(o not in _DIGEST_OID_NAME for o in listed):
            raise CmsError(MALFORMED, "digestAlgorithms does not match the SignerInfo")
        sig_oid = oid(si["signature_algorithm"]["algorithm"])
        if _ECDSA_OID_HASH.get(sig_oid) != digest_name:
            raise CmsError(FORBIDDEN_ALGORITHM, f"signature algorithm {sig_oid} is not ECDSA with {digest_name}")
        if not absent_or_null(si["signature_algorithm"]["parameters"]):
            raise CmsError(MALFORMED, "signature algorithm parameters must be absent")
        attrs = si["signed_attrs"]
        if absent(attrs):
            raise CmsError(MALFORMED, "signed attributes are required")
        by_type = {}
        for a in attrs:
            t = oid(a["type"])
            if t in by_type:
                raise CmsError(MALFORMED, "duplicate signed attribute")
            by_type[t] = a["values"]
        for needed, label in ((ATTR_CONTENT_TYPE, "contentType"), (ATTR_MESSAGE_DIGEST, "messageDigest")):
            if needed not in by_type or len(by_type[needed]) != 1:
                raise CmsError(MALFORMED, f"signed attribute {label} missing or multi-valued")
        if oid(by_type[ATTR_CONTENT_TYPE][0]) != e_dotted:
            raise CmsError(BAD_SIGNATURE, "signed contentType does not match eContentType")
        md = by_type[ATTR_MESSAGE_DIGEST][0].native
        signed_bytes = set_tagged(attrs.dump())
        signature = si["signature"].native
        carried = []
        if not absent(sd["certificates"]):
            for choice in sd["certificates"]:
                if choice.name == "certificate":
                    carried.append(_certificate(choice.chosen.dump()))
        signer = next((c for c in [*signer_certs, *carried] if identifies(c, sid.name, sid.chosen)), None)
    if signer is None:
        raise CmsError(UNKNOWN_SIGNER, "signer certificate neither in the container nor known")
    # The certificate first: it also vets the key (curve, algorithm) the signature is checked with.
    verdict = validator.validate(signer, "sig", at, extra_certs=carried)
    if not verdict.valid:
        raise CmsError(verdict.reason.value, f"signer certificate: {verdict.detail}")
    if hashlib.new(digest_name, content).digest() != md:
        raise CmsError(BAD_SIGNATURE, "messageDigest does not match the content")
    pub = signer.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise CmsError(FORBIDDEN_ALGORITHM, "signer key is not an EC key")
    try:
        pub.verify(signature, signed_bytes, ec.ECDSA(_DIGEST_NAME[digest_name]))
    except InvalidSignature:
        raise CmsError(BAD_SIGNATURE, "signature does not verify with the signer's key") from None
    return Signed(e_type, content, signer, verdict)
