"""Certificate revocation lists: building them (test CA), checking them (issuer, signature,
freshness), fetching them from distribution points over HTTP with a cache that holds each CRL until
its nextUpdate, and a refresh function that can run as an activity.

Fail closed: a CRL that is missing, unfetchable, badly signed or past nextUpdate never lets a
certificate through; the caller gets ``crl_unavailable`` or ``crl_expired``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.loader import PARSE_ERRORS, write_atomic
from pki.oids import ECDSA_WITH_SHA
from pki.profile import authority_key_id, crl_urls, subject_key_id

CRL_UNAVAILABLE = "crl_unavailable"
CRL_EXPIRED = "crl_expired"
# After a failed fetch, do not hit the distribution point again for this long (many
# validations in a burst must not become many HTTP requests to a dead CA).
NEGATIVE_CACHE_SECONDS = 30.0
MAX_CRL_BYTES = 20 * 1024 * 1024


class CrlError(Exception):
    """No usable CRL. ``reason`` is ``crl_unavailable`` or ``crl_expired``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    serial: int
    date: dt.datetime
    reason: x509.ReasonFlags | None = None


def build_crl(
    *,
    issuer_cert: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    revoked: Iterable[RevokedEntry],
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
) -> x509.CertificateRevocationList:
    """A full CRL with CRLNumber and AKI, signed with the CA's hash (SHA-384 for P384 keys)."""
    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    for r in revoked:
        rb = x509.RevokedCertificateBuilder().serial_number(r.serial).revocation_date(r.date)
        if r.reason is not None and r.reason is not x509.ReasonFlags.unspecified:
            rb = rb.add_extension(x509.CRLReason(r.reason), critical=False)
        b = b.add_revoked_certificate(rb.build())
    h = hashes.SHA384() if issuer_key.curve.key_size > 256 else hashes.SHA256()
    return b.sign(issuer_key, h)


@dataclass
class CheckedCrl:
    """A CRL whose signature was verified against ``issuer_key_id``, with a fast serial index."""

    crl: x509.CertificateRevocationList
    next_update: dt.datetime
    revoked: dict[int, dt.datetime] = field(default_factory=dict)

    def revocation_date(self, serial: int) -> dt.datetime | None:
        return self.revoked.get(serial)


def _crl_id(crl: x509.CertificateRevocationList) -> bytes:
    return hashlib.sha256(crl.tbs_certlist_bytes + crl.signature).digest()


_checked: dict[tuple[bytes, bytes], CheckedCrl] = {}
_checked_lock = threading.Lock()
_CHECKED_MAX = 256
_by_identity: dict[tuple[int, int], tuple[x509.CertificateRevocationList, x509.Certificate, CheckedCrl]] = {}


def check_crl(crl: x509.CertificateRevocationList, issuer: x509.Certificate, at: dt.datetime) -> CheckedCrl:
    """Verify that ``crl`` was issued and signed by ``issuer`` and is fresh at ``at``.

    Raises :class:`CrlError`. The signature result is cached per (CRL, issuer key) because the
    same CRL is checked for every certificate of its CA.
    """
    # Fast path: the same CRL object checked against the same issuer object (the common case
    # inside one Validator) needs no hashing at all. Strong references keep ids from being reused.
    fast = _by_identity.get((id(crl), id(issuer)))
    if fast is not None and fast[0] is crl and fast[1] is issuer:
        checked = fast[2]
        if checked.next_update < at:
            raise CrlError(CRL_EXPIRED, f"CRL of {_name(issuer.subject)} expired at {checked.next_update.isoformat()}")
        return checked
    try:
        issuer_spki = issuer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key = (_crl_id(crl), issuer_spki)
    except PARSE_ERRORS as err:
        raise CrlError(CRL_UNAVAILABLE, f"CRL unreadable: {err}") from None
    with _checked_lock:
        known = _checked.get(key)
    if known is not None:
        checked = known
    else:
        checked = _verify_crl(crl, issuer)
        with _checked_lock:
            if len(_checked) >= _CHECKED_MAX:
                _checked.pop(next(iter(_checked)))
            _checked[key] = checked
    with _checked_lock:
        if len(_by_identity) >= _CHECKED_MAX:
            _by_identity.pop(next(iter(_by_identity)))
        _by_identity[(id(crl), id(issuer))] = (crl, issuer, checked)
    if checked.next_update < at:
        who = _name(issuer.subject)
        raise CrlError(CRL_EXPIRED, f"CRL of {who} expired at {checked.next_update.isoformat()}")
    return checked


def _name(name: x509.Name) -> str:
    return name.rfc4514_string({NameOID.SERIAL_NUMBER: "serialNumber"})


def _verify_crl(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> CheckedCrl:
    who = _name(issuer.subject)
    try:
        if crl.issuer != issuer.subject:
            raise CrlError(CRL_UNAVAILABLE, f"CRL issuer {_name(crl.issuer)} is not {who}")
        aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier \
            if _has(crl, x509.AuthorityKeyIdentifier) else None
        ski = subject_key_id(issuer)
        if aki is not None and ski is not None and aki != ski:
            raise CrlError(CRL_UNAVAILABLE, f"CRL authority key id does not match {who}")
        algo = ECDSA_WITH_SHA.get(crl.signature_algorithm_oid.dotted_string)
        pub = issuer.public_key()
        if algo is None or not isinstance(pub, ec.EllipticCurvePublicKey):
            raise CrlError(CRL_UNAVAILABLE, f"CRL of {who} uses a forbidden signature algorithm")
        try:
            pub.verify(crl.signature, crl.tbs_certlist_bytes, ec.ECDSA(algo))
        except InvalidSignature:
            raise CrlError(CRL_UNAVAILABLE, f"CRL signature does not verify with the key of {who}") from None
        for ext in crl.extensions:
            if isinstance(ext.value, x509.DeltaCRLIndicator):
                raise CrlError(CRL_UNAVAILABLE, "delta CRLs are not supported")
            if isinstance(ext.value, x509.IssuingDistributionPoint):
                idp = ext.value
                if idp.only_contains_user_certs or idp.only_contains_ca_certs or idp.only_some_reasons \
                        or idp.indirect_crl or idp.only_contains_attribute_certs:
                    raise CrlError(CRL_UNAVAILABLE, "partitioned/indirect CRLs are not supported")
            elif ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
                raise CrlError(CRL_UNAVAILABLE, f"CRL has unknown critical extension {ext.oid.dotted_string}")
        next_update = crl.next_update_utc
        if next_update is None:
            raise CrlError(CRL_UNAVAILABLE, f"CRL of {who} has no nextUpdate")
        revoked: dict[int, dt.datetime] = {}
        for r in crl:
            if _entry_reason(r) is x509.ReasonFlags.remove_from_crl:
                continue
            revoked[r.serial_number] = r.revocation_date_utc
    except CrlError:
        raise
    except ValueError as err:  # malformed extensions or entries
        raise CrlError(CRL_UNAVAILABLE, f"CRL of {who} is malformed: {err}") from None
    return CheckedCrl(crl=crl, next_update=next_update, revoked=revoked)


def _has(crl: x509.CertificateRevocationList, cls: type[x509.ExtensionType]) -> bool:
    try:
        crl.extensions.get_extension_for_class(cls)
        return True
    except x509.ExtensionNotFound:
        return False


def _entry_reason(r: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return r.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def parse_crl(data: bytes) -> x509.CertificateRevocationList:
    """DER or PEM CRL; ValueError when it is neither."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


# --------------------------------------------------------------------------- fetching and caching


@dataclass
class _Entry:
    crl: x509.CertificateRevocationList
    fetched_at: float


class CrlCache:
    """CRLs by distribution point URL, fetched over HTTP on demand and kept until nextUpdate.

    Thread-safe. With ``directory`` the fetched CRLs are also written there (one DER file per URL)
    and read back on a cold start, so a refresh activity in one process serves validators in
    another.
    """

    def __init__(self, *, directory: Path | None = None, timeout: float = 5.0) -> None:
        self.directory = directory
        self.timeout = timeout
        self._entries: dict[str, _Entry] = {}
        self._failed_at: dict[str, float] = {}
        self._lock = threading.Lock()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def _path(self, url: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".crl")

    def put(self, url: str, crl: x509.CertificateRevocationList) -> None:
        with self._lock:
            self._entries[url] = _Entry(crl, time.monotonic())
            self._failed_at.pop(url, None)
        path = self._path(url)
        if path is not None:
            write_atomic(path, crl.public_bytes(serialization.Encoding.DER))

    def cached(self, url: str) -> x509.CertificateRevocationList | None:
        with self._lock:
            entry = self._entries.get(url)
        if entry is not None:
            return entry.crl
        path = self._path(url)
        if path is not None and path.exists():
            try:
                crl = x509.load_der_x509_crl(path.read_bytes())
            except (OSError, ValueError):
                return None
            with self._lock:
                self._entries.setdefault(url, _Entry(crl, time.monotonic()))
            return crl
        return None

    def urls(self) -> list[str]:
        """Distribution points this cache holds a CRL for (what a periodic refresh renews)."""
        with self._lock:
            return list(self._entries)

    def invalidate(self, url: str | None = None) -> None:
        """Forget one URL (or all): the next lookup fetches."""
        with self._lock:
            if url is None:
                self._entries.clear()
                self._failed_at.clear()
            else:
                self._entries.pop(url, None)
                self._failed_at.pop(url, None)

    def fetch(self, url: str) -> x509.CertificateRevocationList:
        """GET the CRL at ``url`` (no signature check here). Raises CrlError(crl_unavailable)."""
        try:
            resp = httpx.get(url, timeout=self.timeout, follow_redirects=False)
        except httpx.HTTPError as err:
            raise CrlError(CRL_UNAVAILABLE, f"CRL fetch {url} failed: {type(err).__name__}") from None
        return _parse_response(url, resp)

    def get(self, url: str, issuer: x509.Certificate, at: dt.datetime) -> CheckedCrl:
        """A checked CRL for ``url`` fresh at ``at``: cached one, else fetched. Fail closed."""
        cached = self.cached(url)
        stale_error: CrlError | None = None
        if cached is not None:
            try:
                return check_crl(cached, issuer, at)
            except CrlError as err:
                stale_error = err
        with self._lock:
            failed_at = self._failed_at.get(url)
        if failed_at is not None and time.monotonic() - failed_at < NEGATIVE_CACHE_SECONDS:
            raise stale_error or CrlError(CRL_UNAVAILABLE, f"CRL {url} unavailable (recent fetch failed)")
        try:
            crl = self.fetch(url)
            checked = check_crl(crl, issuer, at)
        except CrlError as err:
            with self._lock:
                self._failed_at[url] = time.monotonic()
            # A stale cached CRL that could not be refreshed is reported as expired.
            if stale_error is not None and stale_error.reason == CRL_EXPIRED and err.reason == CRL_UNAVAILABLE:
                raise CrlError(CRL_EXPIRED, f"{stale_error.detail}; refresh failed: {err.detail}") from None
            raise
        self.put(url, crl)
        return checked

    async def refresh(
        self,
        issuers: Sequence[x509.Certificate],
        urls: Iterable[str] | None = None,
        *,
        at: dt.datetime | None = None,
    ) -> RefreshReport:
        """Fetch ``urls`` (default: the URLs already in this cache) and keep each CRL that
        verifies against one of ``issuers``. Never raises for a single bad URL; see the report.
        """
        at = at or dt.datetime.now(dt.UTC)
        targets = sorted(set(urls if urls is not None else self.urls()))
        report = RefreshReport()
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            results = await asyncio.gather(*(client.get(u) for u in targets), return_exceptions=True)
        for url, res in zip(targets, results, strict=True):
            try:
                if isinstance(res, BaseException):
                    raise CrlError(CRL_UNAVAILABLE, f"CRL fetch {url} failed: {type(res).__name__}")
                crl = _parse_response(url, res)
                issuer = _issuer_for(crl, issuers)
                if issuer is None:
                    raise CrlError(CRL_UNAVAILABLE, f"no known issuer for CRL at {url}")
                checked = check_crl(crl, issuer, at)
            except CrlError as err:
                report.failed[url] = f"{err.reason}: {err.detail}"
                with self._lock:
                    self._failed_at[url] = time.monotonic()
                continue
            self.put(url, crl)
            report.refreshed[url] = checked.next_update
        return report


@dataclass
class RefreshReport:
    """Result of :meth:`CrlCache.refresh`: URL -> nextUpdate, URL -> error."""

    refreshed: dict[str, dt.datetime] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def _parse_response(url: str, resp: httpx.Response) -> x509.CertificateRevocationList:
    if resp.status_code != 200:
        raise CrlError(CRL_UNAVAILABLE, f"CRL fetch {url}: HTTP {resp.status_code}")
    if len(resp.content) > MAX_CRL_BYTES:
        raise CrlError(CRL_UNAVAILABLE, f"CRL at {url} is too large")
    try:
        return parse_crl(resp.content)
    except ValueError:
        raise CrlError(CRL_UNAVAILABLE, f"CRL at {url} is not a CRL") from None


def _issuer_for(crl: x509.CertificateRevocationList, issuers: Sequence[x509.Certificate]) -> x509.Certificate | None:
    for cert in issuers:
        if cert.subject == crl.issuer:
            return cert
    return None


def crl_urls_for(certs: Iterable[x509.Certificate]) -> list[str]:
    """All distinct CRL distribution point URLs of ``certs`` (input for a refresh run)."""
    seen: dict[str, None] = {}
    for c in certs:
        for u in crl_urls(c):
            seen.setdefault(u, None)
    return list(seen)


async def refresh_crls(
    cache: CrlCache,
    certificates: Sequence[x509.Certificate],
    *,
    at: dt.datetime | None = None,
) -> RefreshReport:
    """Refresh the CRLs of every distribution point named in ``certificates`` plus those already
    cached, verifying each against the CA certificates among ``certificates``. The function a
    scheduled CRL-refresh activity calls with the tenant's trust store (anchors, Sub-CAs and
    known end-entity certificates: the Sub-CA's CRL URL is only named in certificates it issued)."""
    cas = [c for c in certificates if _is_ca(c)]
    return await cache.refresh(cas, [*crl_urls_for(certificates), *cache.urls()], at=at)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


__all__ = [
    "CRL_EXPIRED",
    "CRL_UNAVAILABLE",
    "CheckedCrl",
    "CrlCache",
    "CrlError",
    "RefreshReport",
    "RevokedEntry",
    "authority_key_id",
    "build_crl",
    "check_crl",
    "crl_urls_for",
    "parse_crl",
    "refresh_crls",
]
