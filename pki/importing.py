"""Pure functions for certificate management in the product (no storage here): parse an uploaded
PEM/DER bundle, describe certificates for listing, and check an import before anything is stored.

Import is all-or-nothing: :func:`check_import` returns ``ok`` only when every certificate in the
bundle validates (and every private key belongs to one of them); otherwise the first failure's
reason code and nothing is to be stored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from pki.loader import PARSE_ERRORS, Bundle, LoadError, parse_bundle
from pki.profile import Role, Usage, crl_urls, role_of, subject_key_id, usage_of
from pki.validation import Validator, Verdict, fingerprint

__all__ = [
    "Bundle",
    "CertInfo",
    "ImportCheck",
    "ImportItem",
    "check_identity",
    "check_import",
    "describe",
    "expires_within",
    "parse_bundle",
]


@dataclass(frozen=True)
class CertInfo:
    """What a certificate list shows and a store indexes."""

    fingerprint: str  # SHA-256 of the DER, hex
    subject: str
    common_name: str | None
    issuer: str
    serial: str  # hex
    role: Role | None
    usage: Usage | None
    not_before: dt.datetime
    not_after: dt.datetime
    subject_key_id: str | None  # hex
    crl_urls: tuple[str, ...]
    is_ca: bool


def _rfc4514(name: x509.Name) -> str:
    return name.rfc4514_string({NameOID.SERIAL_NUMBER: "serialNumber"})


def describe(cert: x509.Certificate) -> CertInfo:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        bc = False
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ski = subject_key_id(cert)
    return CertInfo(
        fingerprint=fingerprint(cert),
        subject=_rfc4514(cert.subject),
        common_name=str(cns[0].value) if cns else None,
        issuer=_rfc4514(cert.issuer),
        serial=f"{cert.serial_number:x}",
        role=role_of(cert),
        usage=None if bc else usage_of(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        subject_key_id=ski.hex() if ski else None,
        crl_urls=tuple(crl_urls(cert)),
        is_ca=bool(bc),
    )


def expires_within(cert: x509.Certificate, days: int, now: dt.datetime | None = None) -> bool:
    """True when ``cert`` expires within ``days`` days of ``now`` (or has expired)."""
    now = now or dt.datetime.now(dt.UTC)
    return cert.not_valid_after_utc <= now + dt.timedelta(days=days)


@dataclass(frozen=True)
class ImportItem:
    certificate: x509.Certificate
    info: CertInfo
    verdict: Verdict
    private_key: PrivateKeyTypes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ImportCheck:
    """``ok`` and the items to store, or the reason code of the first problem.

    Reasons: the validator's codes (``expired``, ``revoked``, ``profile_violation``, ...) plus
    ``malformed`` (unparseable input), ``empty`` (no certificate), ``key_mismatch`` (a private
    key that belongs to no certificate), ``key_missing`` (keys required but absent),
    ``wrong_role`` (role differs from the expected one), ``incomplete_identity`` (not exactly
    one TLS, SIG and ENC certificate)."""

    ok: bool
    reason: str
    detail: str
    items: tuple[ImportItem, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "reason": self.reason, "detail": self.detail,
                "certificates": [i.info.fingerprint for i in self.items]}


def _public_numbers(key: PrivateKeyTypes | x509.Certificate) -> object:
    pub = key.public_key()
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_import(
    data: bytes,
    validator: Validator,
    *,
    expected_role: Role | None = None,
    require_keys: bool = False,
    password: bytes | None = None,
    at: dt.datetime | None = None,
) -> ImportCheck:
    """Parse ``data`` (PEM/DER, single or bundle) and validate every certificate for its own
    usage (from KeyUsage/EKU). CA certificates in the bundle are used as path helpers only and
    are not returned as items. Private keys are matched to certificates."""
    try:
        bundle = parse_bundle(data, password=password)
    except LoadError as err:
        return ImportCheck(False, "malformed", err.detail)
    cas = [c for c in bundle.certificates if describe(c).is_ca]
    leaves = [c for c in bundle.certificates if c not in cas]
    if not leaves:
        return ImportCheck(False, "empty", "no end-entity certificate in the input")
    keys = list(bundle.private_keys)
    key_by_spki = {_public_numbers(k): k for k in keys}
    items: list[ImportItem] = []
    for cert in leaves:
        try:
            info = describe(cert)
        except PARSE_ERRORS as err:
            return ImportCheck(False, "malformed", f"certificate unparseable: {err}")
        if expected_role is not None and info.role is not expected_role:
            return ImportCheck(False, "wrong_role", f"{info.subject} is a {info.role}, expected {expected_role}")
        verdict = validator.validate(cert, info.usage, at, extra_certs=cas)
        if not verdict.valid:
            return ImportCheck(False, verdict.reason.value, f"{info.subject}: {verdict.detail}")
        key = key_by_spki.pop(_public_numbers(cert), None)
        if require_keys and key is None:
            return ImportCheck(False, "key_missing", f"no private key for {info.subject} ({info.usage})")
        if key is not None and not isinstance(key, ec.EllipticCurvePrivateKey):
            return ImportCheck(False, "forbidden_algorithm", "private keys must be EC keys")
        items.append(ImportItem(cert, info, verdict, key))
    if key_by_spki:
        return ImportCheck(False, "key_mismatch", f"{len(key_by_spki)} private key(s) match no certificate")
    return ImportCheck(True, "ok", f"{len(items)} certificate(s) valid", tuple(items))


def check_identity(
    data: bytes,
    validator: Validator,
    *,
    role: Role = Role.GWA,
    password: bytes | None = None,
    at: dt.datetime | None = None,
) -> ImportCheck:
    """A tenant's own identity: exactly one TLS, one SIG and one ENC certificate of ``role``,
    each with its private key, all valid."""
    res = check_import(data, validator, expected_role=role, require_keys=True, password=password, at=at)
    if not res.ok:
        return res
    usages = sorted(str(i.info.usage) for i in res.items)
    if usages != ["enc", "sig", "tls"]:
        return ImportCheck(False, "incomplete_identity", f"need one tls, sig and enc certificate, got {usages}")
    return res
