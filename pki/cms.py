"""CMS containers per TR-03109-1 DS section 5 / TR-03116-3 section 8:
``ContentInfo(SignedData(AuthEnvelopedData(CompressedData(zlib, payload))))``.

:func:`seal` builds that nesting; :func:`open` takes it apart, checking everything, and returns
the payload with the signer's certificate, or raises :class:`CmsError` with a reason code. Never
returns unauthenticated bytes. The layers are exposed one by one for interop and partial use:
:func:`sign`/:func:`verify` (:mod:`pki.cms_signed`), :func:`encrypt`/:func:`decrypt`
(:mod:`pki.cms_enveloped`), :func:`compress`/:func:`decompress`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from pki.cms_common import MALFORMED, CmsError
from pki.cms_crypto import MAX_PAYLOAD
from pki.cms_enveloped import (
    Cipher,
    Decrypted,
    KeyAgreement,
    auth_enveloped,
    compress,
    decompress,
    decrypt,
    decrypt_auth_enveloped,
    encrypt,
)
from pki.cms_signed import Signed, sign, verify
from pki.validation import Validator, Verdict


def seal(
    payload: bytes,
    *,
    sign_key: ec.EllipticCurvePrivateKey,
    sign_cert: x509.Certificate,
    recipient_cert: x509.Certificate,
    cipher: Cipher = "gcm",
    key_agreement: KeyAgreement = "bsi",
    include_signer_cert: bool = True,
) -> bytes:
    """DER ``ContentInfo(SignedData(AuthEnvelopedData(CompressedData(payload))))``: signed with
    the sender's SIG key (signer by SKI), encrypted for the recipient's ENC certificate
    (recipient by SKI) with fresh keys."""
    aed = auth_enveloped(compress(payload), "compressed_data", recipient_cert, cipher, key_agreement)
    return sign(aed, content_type="authenticated_enveloped_data", key=sign_key, cert=sign_cert,
                include_cert=include_signer_cert)


@dataclass(frozen=True)
class Opened:
    """An opened container: the payload and who signed it (already validated)."""

    payload: bytes
    signer: x509.Certificate
    signer_verdict: Verdict
    cipher: Cipher
    compressed: bool

    @property
    def signer_subject(self) -> str | None:
        return self.signer_verdict.subject


def open(
    data: bytes,
    *,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    validator: Validator,
    signer_certs: Sequence[x509.Certificate] = (),
    at: dt.datetime | None = None,
    max_payload: int = MAX_PAYLOAD,
) -> Opened:
    """Verify the signature and the signer's SIG certificate (``validator``, revocation
    included), decrypt with the recipient's ENC ``key``/``cert``, decompress.

    Accepts AuthEnvelopedData content of type CompressedData (gridgate, DS) or id-data (DS
    allows both). Raises :class:`CmsError`."""
    signed: Signed = verify(data, validator=validator, signer_certs=signer_certs, at=at)
    if signed.content_type != "authenticated_enveloped_data":
        raise CmsError(MALFORMED, f"signed content is {signed.content_type}, expected AuthEnvelopedData")
    dec = decrypt_auth_enveloped(signed.content, key, cert)
    compressed = dec.content_type == "compressed_data"
    payload = decompress(dec.content, max_payload=max_payload) if compressed else dec.content
    return Opened(payload, signed.signer, signed.verdict, dec.cipher, compressed)


__all__ = [
    "Cipher",
    "CmsError",
    "Decrypted",
    "KeyAgreement",
    "Opened",
    "Signed",
    "compress",
    "decompress",
    "decrypt",
    "decrypt_auth_enveloped",
    "encrypt",
    "open",
    "seal",
    "sign",
    "verify",
]
