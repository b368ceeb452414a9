"""Certificate path validation to a tenant's trust anchors, with SM-PKI algorithm and profile rules
and CRL revocation checking. Every outcome is a :class:`Verdict` with one reason code.

Checks, in order (the first failure is the verdict): parse (``malformed``), allowed algorithms
(``forbidden_algorithm``), path to a trust anchor (``unknown_issuer``, incl. chain loops),
signatures (``bad_signature``), validity at ``at`` (``expired``/``not_yet_valid``), CA constraints
and profile (``profile_violation``), key usage for the purpose (``wrong_key_usage``), revocation of
every non-anchor certificate (``revoked``/``crl_unavailable``/``crl_expired``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.crl import CheckedCrl, CrlCache, CrlError, check_crl
from pki.loader import PARSE_ERRORS, LoadError, load_certificate
from pki.oids import ECDSA_WITH_SHA, curve_allowed
from pki.profile import (
    ORG_PRODUCTION,
    ORG_TEST,
    Usage,
    authority_key_id,
    check_profile,
    crl_urls,
    subject_key_id,
)

MAX_PATH = 6
_MEMO_MAX = 20_000


class Reason(StrEnum):
    OK = "ok"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REVOKED = "revoked"
    UNKNOWN_ISSUER = "unknown_issuer"
    BAD_SIGNATURE = "bad_signature"
    WRONG_KEY_USAGE = "wrong_key_usage"
    FORBIDDEN_ALGORITHM = "forbidden_algorithm"
    CRL_UNAVAILABLE = "crl_unavailable"
    CRL_EXPIRED = "crl_expired"
    PROFILE_VIOLATION = "profile_violation"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class Verdict:
    """Outcome of a validation. ``subject`` is the RFC 4514 subject of the validated certificate
    (None when it could not be parsed); ``detail`` names the failing certificate and rule."""

    valid: bool
    reason: Reason
    subject: str | None
    detail: str
    chain: tuple[x509.Certificate, ...] = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "reason": self.reason.value, "subject": self.subject, "detail": self.detail}


class _Fail(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def fresh(self) -> _Fail:
        """A new instance to raise: re-raising a memoised one would grow its traceback (and keep
        the frames, with their certificates, alive) on every call."""
        return _Fail(self.reason, self.detail)


_fp_cache: dict[int, tuple[x509.Certificate, bytes]] = {}
_FP_CACHE_MAX = 512  # CA certificates are the frequent ones; leaves come and go


def _fp(cert: x509.Certificate) -> bytes:
    """SHA-256 of the DER, remembered per certificate object (validators see the same objects
    again and again; the strong reference keeps the id from being reused)."""
    hit = _fp_cache.get(id(cert))
    if hit is not None and hit[0] is cert:
        return hit[1]
    fp = cert.fingerprint(_SHA256)
    if len(_fp_cache) >= _FP_CACHE_MAX:
        _fp_cache.clear()
    _fp_cache[id(cert)] = (cert, fp)
    return fp


_SHA256 = hashes.SHA256()

# Signature results are pure functions of (certificate bytes, issuer key): cache them so
# validating the same signer for every CMS message costs no extra ECDSA verifications.
_sig_cache: dict[tuple[bytes, bytes], bool] = {}
_sig_lock = threading.Lock()
_SIG_CACHE_MAX = 65536


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _signature_ok(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    key = (_fp(cert), _spki(issuer))
    with _sig_lock:
        hit = _sig_cache.get(key)
    if hit is not None:
        return hit
    pub = issuer.public_key()
    algo = ECDSA_WITH_SHA.get(cert.signature_algorithm_oid.dotted_string)
    ok = False
    if algo is not None and isinstance(pub, ec.EllipticCurvePublicKey):
        try:
            pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algo))
            ok = True
        except InvalidSignature:
            ok = False
    with _sig_lock:
        if len(_sig_cache) >= _SIG_CACHE_MAX:
            _sig_cache.clear()
        _sig_cache[key] = ok
    return ok


def _name(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string({NameOID.SERIAL_NUMBER: "serialNumber"})
    except ValueError:
        return "<unparseable subject>"


def _check_encoding(cert: x509.Certificate) -> None:
    """DER strictness cryptography leaves out: the signature BIT STRING must have 0 unused bits
    (otherwise one certificate has several encodings and fingerprints)."""
    der = cert.public_bytes(serialization.Encoding.DER)
    if der[-len(cert.signature) - 1] != 0:
        raise _Fail(Reason.MALFORMED, f"{_name(cert)}: signature BIT STRING has unused bits")
    if cert.serial_number <= 0:  # RFC 5280 4.1.2.2
        raise _Fail(Reason.MALFORMED, f"{_name(cert)}: serial number is not positive")


def _check_algorithms(cert: x509.Certificate) -> None:
    _check_encoding(cert)
    oid = cert.signature_algorithm_oid.dotted_string
    if oid not in ECDSA_WITH_SHA:
        raise _Fail(Reason.FORBIDDEN_ALGORITHM, f"{_name(cert)}: signature algorithm {oid} is not ECDSA-SHA2")
    try:
        pub = cert.public_key()
    except PARSE_ERRORS as err:
        raise _Fail(Reason.FORBIDDEN_ALGORITHM, f"{_name(cert)}: unsupported public key ({err})") from None
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise _Fail(Reason.FORBIDDEN_ALGORITHM, f"{_name(cert)}: public key is {type(pub).__name__}, not EC")
    if not curve_allowed(pub.curve):
        raise _Fail(Reason.FORBIDDEN_ALGORITHM, f"{_name(cert)}: curve {pub.curve.name} not allowed")


def _key_usage_ok(cert: x509.Certificate, purpose: Usage) -> str | None:
    try:
        ku: x509.KeyUsage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return "KeyUsage missing"
    if purpose is Usage.ENC:
        return None if ku.key_agreement else "keyAgreement not set"
    if not ku.digital_signature:
        return "digitalSignature not set"
    try:
        eku = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None
    tls = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    if ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku:
        return None
    if purpose is Usage.TLS and not eku & tls:
        return "ExtendedKeyUsage lacks serverAuth/clientAuth"
    # Key separation: a certificate restricted to TLS by its EKU is not a content-signature
    # certificate (TLS and SIG are both digitalSignature, the EKU is what tells them apart).
    if purpose is Usage.SIG and eku and eku <= tls:
        return "ExtendedKeyUsage restricts the key to TLS"
    return None


class Validator:
    """Validates end-entity certificates against ``trust_anchors``.

    ``intermediates``: Sub-CA certificates known in advance (peers need not send them).
    ``crls``: when given, exactly these CRLs are used and distribution points are never fetched.
    Otherwise CRLs come from ``crl_cache`` (a fresh :class:`CrlCache` if None) via the CDP URLs.
    ``check_revocation=False`` disables revocation (tests, offline tools; never the product).
    """

    def __init__(
        self,
        trust_anchors: Sequence[x509.Certificate],
        intermediates: Sequence[x509.Certificate] = (),
        *,
        crls: Sequence[x509.CertificateRevocationList] | None = None,
        crl_cache: CrlCache | None = None,
        check_revocation: bool = True,
        check_profile: bool = True,
        organisations: Iterable[str] = (ORG_PRODUCTION, ORG_TEST),
    ) -> None:
        self.anchors = list(trust_anchors)
        self._anchor_fps = {_fp(a) for a in self.anchors}
        self.intermediates = list(intermediates)
        self.static_crls = list(crls) if crls is not None else None
        self.crl_cache = crl_cache if crl_cache is not None or crls is not None else CrlCache()
        self.check_revocation = check_revocation
        self.check_profile = check_profile
        self.organisations = frozenset(organisations)
        self._memo: dict[tuple[Any, ...], Any] = {}
        self._urls: dict[bytes, list[str]] = {}  # CRL distribution points per certificate fingerprint
        self._crls_by_issuer: dict[int, tuple[x509.Certificate, list[x509.CertificateRevocationList]]] = {}

    # ------------------------------------------------------------------ public
    def validate(
        self,
        cert: x509.Certificate | bytes,
        purpose: Usage | str | None = None,
        at: dt.datetime | None = None,
        *,
        extra_certs: Sequence[x509.Certificate] = (),
    ) -> Verdict:
        """Validate ``cert`` (object, PEM or DER) for ``purpose`` (tls/sig/enc, None = any) at
        ``at`` (default now). ``extra_certs``: untrusted certificates that may complete the path
        (e.g. those a CMS container or TLS peer carried). Never raises for bad input."""
        at = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        usage = Usage(purpose) if purpose is not None else None  # ValueError: caller's bug
        subject: str | None = None
        try:
            if isinstance(cert, bytes | bytearray):
                try:
                    cert = load_certificate(bytes(cert))
                except LoadError as err:
                    return Verdict(False, Reason.MALFORMED, None, err.detail)
            key = (_fp(cert), tuple(sorted(_fp(c) for c in extra_certs)), usage)
            memo = self._memo.get(key)
            if memo is None:
                subject = _name(cert)
                memo = (subject, self._static(cert, usage, list(extra_certs)))
                if len(self._memo) >= _MEMO_MAX:
                    self._memo.clear()
                self._memo[key] = memo
            subject = memo[0]
            chain = self._dynamic(cert, memo[1], at)
            return Verdict(True, Reason.OK, subject, "valid", tuple(chain))
        except _Fail as f:
            return Verdict(False, f.reason, subject, f.detail)
        except PARSE_ERRORS as err:
            # cryptography parses extensions lazily: a malformed extension surfaces here.
            return Verdict(False, Reason.MALFORMED, subject, f"malformed certificate: {err}")

    # ------------------------------------------------------------------ internals
    def _dynamic(
        self,
        cert: x509.Certificate,
        static: _Fail | list[tuple[list[x509.Certificate], _Fail | None, _Fail | None]],
        at: dt.datetime,
    ) -> list[x509.Certificate]:
        """Apply the memoised time-independent outcome, then validity times and revocation
        (which change with ``at`` and with newly fetched CRLs, so they run on every call).
        Memoised paths start at the issuer: the leaf is ``cert`` (same fingerprint, so the same
        bytes), which keeps the memo from holding one parsed certificate per peer."""
        if isinstance(static, _Fail):
            raise static.fresh()
        first: _Fail | None = None
        for issuers, structure_fail, usage_fail in static:
            path = [cert, *issuers]
            try:
                if structure_fail is not None:
                    raise structure_fail.fresh()
                self._check_times(path, at)
                if usage_fail is not None:
                    raise usage_fail.fresh()
                if self.check_revocation:
                    for c, issuer in itertools.pairwise(path):
                        self._check_revocation(c, issuer, at)
                return path
            except _Fail as f:
                first = first or f
        assert first is not None
        raise first

    def _static(
        self, cert: x509.Certificate, purpose: Usage | None, extra: list[x509.Certificate]
    ) -> _Fail | list[tuple[list[x509.Certificate], _Fail | None, _Fail | None]]:
        """Paths with their time-independent outcome: (path without the leaf, algorithm/signature
        failure, profile/key-usage failure), or one failure when there is no path at all. Memoised per
        (leaf, extra certificates, purpose) by :meth:`validate`."""
        try:
            _ = cert.extensions  # force parse: malformed extensions -> ValueError -> malformed
            _check_algorithms(cert)
            paths, loop = self._paths(cert, extra)
        except _Fail as f:
            return f.fresh()  # memoised: without the traceback and its frames
        if not paths:
            issuer = cert.issuer.rfc4514_string({NameOID.SERIAL_NUMBER: "serialNumber"})
            if loop:
                return _Fail(Reason.UNKNOWN_ISSUER, f"certificate chain loop while looking for {issuer}")
            return _Fail(Reason.UNKNOWN_ISSUER, f"no trusted issuer for {issuer}")
        out: list[tuple[list[x509.Certificate], _Fail | None, _Fail | None]] = []
        for path in paths:
            structure: _Fail | None = None
            usage: _Fail | None = None
            try:
                self._check_structure(path)
            except _Fail as f:
                structure = f.fresh()
            try:
                self._check_profile_and_usage(path, purpose)
            except _Fail as f:
                usage = f.fresh()
            out.append((path[1:], structure, usage))
        return out

    def _issuer_candidates(self, cert: x509.Certificate, pool: list[x509.Certificate]) -> list[x509.Certificate]:
        aki = authority_key_id(cert)
        out = []
        for c in pool:
            if c.subject != cert.issuer:
                continue
            ski = subject_key_id(c)
            if aki is not None and ski is not None and aki != ski:
                continue
            out.append(c)
        return out

    def _paths(
        self, leaf: x509.Certificate, extra: list[x509.Certificate]
    ) -> tuple[list[list[x509.Certificate]], bool]:
        """All paths leaf -> ... -> anchor (bounded), and whether a loop was seen."""
        pool = self.anchors + self.intermediates + extra
        paths: list[list[x509.Certificate]] = []
        loop = False

        def walk(path: list[x509.Certificate], seen: set[bytes]) -> None:
            nonlocal loop
            if len(paths) >= 4:
                return
            top = path[-1]
            for cand in self._issuer_candidates(top, pool):
                fp = _fp(cand)
                if fp in self._anchor_fps:
                    paths.append([*path, cand])
                    continue
                if fp in seen:
                    loop = True
                    continue
                if len(path) >= MAX_PATH:
                    continue
                walk([*path, cand], seen | {fp})

        if _fp(leaf) in self._anchor_fps:
            raise _Fail(Reason.PROFILE_VIOLATION, "rule basicConstraints.ee: certificate is a trust anchor")
        walk([leaf], {_fp(leaf)})
        return paths, loop

    def _check_structure(self, path: list[x509.Certificate]) -> None:
        for c in path[:-1]:
            _ = c.extensions
            _check_algorithms(c)
        for c, issuer in itertools.pairwise(path):
            if not _signature_ok(c, issuer):
                raise _Fail(Reason.BAD_SIGNATURE, f"{_name(c)}: signature does not verify with {_name(issuer)}")

    @staticmethod
    def _check_times(path: list[x509.Certificate], at: dt.datetime) -> None:
        for c in path:
            if at < c.not_valid_before_utc:
                raise _Fail(Reason.NOT_YET_VALID, f"{_name(c)}: valid from {c.not_valid_before_utc.isoformat()}")
            if at > c.not_valid_after_utc:
                raise _Fail(Reason.EXPIRED, f"{_name(c)}: expired at {c.not_valid_after_utc.isoformat()}")

    def _check_profile_and_usage(self, path: list[x509.Certificate], purpose: Usage | None) -> None:
        leaf, anchor = path[0], path[-1]
        for depth, ca in enumerate(path[1:-1]):
            self._check_ca(ca, below=depth)
        self._check_ca(anchor, below=len(path) - 2, profile=False)
        for c in path:
            for ext in c.extensions:
                if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
                    raise _Fail(
                        Reason.PROFILE_VIOLATION,
                        f"rule extensions.critical: {_name(c)}: unknown critical extension {ext.oid.dotted_string}",
                    )
        if self.check_profile:
            v = check_profile(leaf, is_ca=False, organisations=self.organisations)
            if v is not None:
                raise _Fail(Reason.PROFILE_VIOLATION, f"{v}")
        else:
            bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value \
                if _has_ext(leaf, x509.BasicConstraints) else None
            if bc is not None and bc.ca:
                raise _Fail(Reason.PROFILE_VIOLATION, "rule basicConstraints.ee: end-entity certificate is a CA")
        if purpose is not None:
            problem = _key_usage_ok(leaf, purpose)
            if problem:
                raise _Fail(Reason.WRONG_KEY_USAGE, f"{_name(leaf)}: not usable for {purpose}: {problem}")

    def _check_ca(self, ca: x509.Certificate, *, below: int, profile: bool = True) -> None:
        """RFC 5280 CA checks (always) and the SM-PKI CA profile (when enabled)."""
        try:
            bc: x509.BasicConstraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
            ku: x509.KeyUsage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            raise _Fail(Reason.PROFILE_VIOLATION,
                        f"rule basicConstraints.ca: {_name(ca)} lacks BasicConstraints/KeyUsage") from None
        if not bc.ca or not ku.key_cert_sign:
            raise _Fail(Reason.PROFILE_VIOLATION, f"rule basicConstraints.ca: {_name(ca)} is not a CA")
        if bc.path_length is not None and below > bc.path_length:
            raise _Fail(Reason.PROFILE_VIOLATION, f"rule basicConstraints.pathLen: exceeded below {_name(ca)}")
        if profile and self.check_profile:
            v = check_profile(ca, is_ca=True, organisations=self.organisations)
            if v is not None:
                raise _Fail(Reason.PROFILE_VIOLATION, f"{_name(ca)}: {v}")

    def _crls_for(self, cert: x509.Certificate, issuer: x509.Certificate, at: dt.datetime) -> CheckedCrl:
        if self.static_crls is not None:
            last: CrlError | None = None
            for crl in self._static_crls_of(issuer):
                try:
                    return check_crl(crl, issuer, at)
                except CrlError as err:
                    # prefer reporting "expired" over "unavailable" when both happen
                    if last is None or err.reason == "crl_expired":
                        last = err
            raise last or CrlError("crl_unavailable", f"no CRL given for issuer {_name(issuer)}")
        fp = _fp(cert)
        urls = self._urls.get(fp)
        if urls is None:
            urls = crl_urls(cert)
            if len(self._urls) >= _MEMO_MAX:
                self._urls.clear()
            self._urls[fp] = urls
        if not urls:
            raise CrlError("crl_unavailable", f"{_name(cert)} names no CRL distribution point")
        assert self.crl_cache is not None
        errors: list[CrlError] = []
        for url in urls:
            try:
                return self.crl_cache.get(url, issuer, at)
            except CrlError as err:
                errors.append(err)
        expired = [e for e in errors if e.reason == "crl_expired"]
        raise (expired or errors)[0]

    def _static_crls_of(self, issuer: x509.Certificate) -> list[x509.CertificateRevocationList]:
        """The given CRLs named for ``issuer``, looked up once per issuer object."""
        hit = self._crls_by_issuer.get(id(issuer))
        if hit is not None and hit[0] is issuer:
            return hit[1]
        found = [crl for crl in self.static_crls or () if crl.issuer == issuer.subject]
        if len(self._crls_by_issuer) >= _MEMO_MAX:
            self._crls_by_issuer.clear()
        self._crls_by_issuer[id(issuer)] = (issuer, found)
        return found

    def _check_revocation(self, cert: x509.Certificate, issuer: x509.Certificate, at: dt.datetime) -> None:
        try:
            checked = self._crls_for(cert, issuer, at)
        except CrlError as err:
            raise _Fail(Reason(err.reason), f"{_name(cert)}: {err.detail}") from None
        when = checked.revocation_date(cert.serial_number)
        if when is not None and when <= at:
            raise _Fail(Reason.REVOKED, f"{_name(cert)}: revoked at {when.isoformat()}")


def _has_ext(cert: x509.Certificate, cls: type[x509.ExtensionType]) -> bool:
    try:
        cert.extensions.get_extension_for_class(cls)
        return True
    except x509.ExtensionNotFound:
        return False


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint, lower-case hex (the stable identity used in stores and logs)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
