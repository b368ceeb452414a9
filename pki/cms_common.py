"""Shared pieces of the CMS layers: the error type with reason codes, the parse guard that turns
any ASN.1 decoding problem into ``malformed``, and identifier matching."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asn1crypto import core
from cryptography import x509

from pki.loader import PARSE_ERRORS
from pki.profile import subject_key_id

MALFORMED = "malformed"
BAD_SIGNATURE = "bad_signature"
UNKNOWN_SIGNER = "unknown_signer"
WRONG_RECIPIENT = "wrong_recipient"
DECRYPT_FAILED = "decrypt_failed"
FORBIDDEN_ALGORITHM = "forbidden_algorithm"


class CmsError(Exception):
    """A container that cannot be opened/verified. ``reason`` is a stable code: ``malformed``,
    ``bad_signature``, ``unknown_signer``, ``wrong_recipient``, ``decrypt_failed``,
    ``forbidden_algorithm``, or the certificate verdict reason for the signer (``expired``,
    ``revoked``, ``unknown_issuer``, ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        return {"valid": False, "reason": self.reason, "detail": self.detail}


_ASN1_ERRORS: tuple[type[Exception], ...] = (*PARSE_ERRORS, KeyError, IndexError, OverflowError, AttributeError)


@contextmanager
def parsing(what: str) -> Iterator[None]:
    """asn1crypto parses lazily and raises assorted errors on bad DER: all of them are
    ``malformed`` for the caller (no traceback, no partial result)."""
    try:
        yield
    except CmsError:
        raise
    except _ASN1_ERRORS as err:
        raise CmsError(MALFORMED, f"{what}: {type(err).__name__}: {str(err)[:200]}") from None


# Content types and attribute types by dotted OID (asn1crypto's names, so messages read alike).
CT_NAMES = {
    "1.2.840.113549.1.7.1": "data",
    "1.2.840.113549.1.7.2": "signed_data",
    "1.2.840.113549.1.9.16.1.9": "compressed_data",
    "1.2.840.113549.1.9.16.1.23": "authenticated_enveloped_data",
}
_CT_OIDS = {name: dotted for dotted, name in CT_NAMES.items()}
ATTR_CONTENT_TYPE = "1.2.840.113549.1.9.3"
ATTR_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_dotted: dict[bytes, str] = {}


def oid(value: Any) -> str:
    """Dotted form of a parsed OBJECT IDENTIFIER, cached by its content octets: asn1crypto's
    ``.dotted``/``.native`` recompute it on every access, which dominated CMS parsing time."""
    contents = value.contents
    hit = _dotted.get(contents)
    if hit is None:
        hit = value.dotted
        if len(_dotted) < 4096:
            _dotted[contents] = hit
    return hit


def content_type_oid(content_type: str) -> str:
    """Dotted OID of a content type given by asn1crypto name or already dotted."""
    return content_type if content_type[:1].isdigit() else _CT_OIDS[content_type]


def absent(value: Any) -> bool:
    """An OPTIONAL field that is not there. Cheaper than ``.native is None``, which would decode
    the whole subtree (certificates, nested content) just to compare with None."""
    return isinstance(value, core.Void)


def absent_or_null(value: Any) -> bool:
    """Algorithm parameters that are absent or NULL."""
    return isinstance(value, core.Void) or value.dump() == b"\x05\x00"


def set_tagged(implicit_der: bytes) -> bytes:
    """Re-tag an IMPLICIT [n] SET OF attributes as universal SET (what is signed / MACed)."""
    return b"\x31" + implicit_der[1:]


def identifies(cert: x509.Certificate, choice_name: str, choice: Any) -> bool:
    """Does a SignerIdentifier / KeyAgreeRecipientIdentifier choice name ``cert``?"""
    if choice_name == "subject_key_identifier":
        return subject_key_id(cert) == choice.native
    if choice_name == "r_key_id":
        return subject_key_id(cert) == choice["subject_key_identifier"].native
    if choice_name == "issuer_and_serial_number":
        return bool(
            choice["issuer"].dump() == cert.issuer.public_bytes()
            and choice["serial_number"].native == cert.serial_number
        )
    return False


def require_ski(cert: x509.Certificate) -> bytes:
    ski = subject_key_id(cert)
    if ski is None:
        raise ValueError("certificate has no SubjectKeyIdentifier (required by the SM-PKI profile)")
    return ski
