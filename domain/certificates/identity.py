"""The tenant's own identities with their decrypted keys: its GWA identity (for the head-end and
activities) and its EMT identities (for the MDM receiver, one per market partner).

TLS contexts need files: ``write_tls_files`` writes the certificate chain and a private key that is
itself encrypted with a fresh random password (returned, never written), into the tenant's key
folder (0700). So no plaintext private key ever touches the disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.errors import Conflict
from domain.certificates import repository as repo
from domain.certificates.models import Certificate
from domain.certificates.selection import usable
from domain.certificates.service import KEY_PURPOSE
from domain.secrets import SecretBox


class IdentityMissing(Conflict):
    code = "gwa_identity_missing"


@dataclass(frozen=True)
class TlsFiles:
    cert: Path  # leaf + Sub-CA chain, PEM
    key: Path  # PEM, encrypted with ``key_password``
    trust: Path  # trust anchors, PEM
    chain: Path  # Sub-CAs, PEM
    key_password: bytes = field(repr=False)


@dataclass(frozen=True)
class GwaIdentity:
    tenant: str
    tls_cert: x509.Certificate
    tls_key: ec.EllipticCurvePrivateKey = field(repr=False)
    sig_cert: x509.Certificate
    sig_key: ec.EllipticCurvePrivateKey = field(repr=False)
    enc_cert: x509.Certificate
    enc_key: ec.EllipticCurvePrivateKey = field(repr=False)
    chain: list[x509.Certificate]  # Sub-CAs
    trust_anchors: list[x509.Certificate]

    def write_tls_files(self, directory: Path) -> TlsFiles:
        return write_tls_files(directory, "gwa", self.tls_cert, self.tls_key, self.chain, self.trust_anchors)


def write_tls_files(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
                    chain: Sequence[x509.Certificate], trust_anchors: Sequence[x509.Certificate]) -> TlsFiles:
    """``<name>-tls-chain.pem`` (leaf + Sub-CAs), ``<name>-tls-key.pem`` (encrypted with a fresh
    password, returned in the result only), the trust anchors and Sub-CAs, into ``directory``
    (created 0700, files 0600, each replaced atomically)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = secrets.token_urlsafe(32).encode()

    def pem(certs: Sequence[x509.Certificate]) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)

    files = TlsFiles(cert=directory / f"{name}-tls-chain.pem", key=directory / f"{name}-tls-key.pem",
                     trust=directory / "trust-anchors.pem", chain=directory / "subcas.pem", key_password=password)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(password))
    for path, data in ((files.cert, pem([cert, *chain])), (files.key, key_pem), (files.trust, pem(trust_anchors)),
                       (files.chain, pem(chain))):
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        tmp.replace(path)
    return files


async def load_gwa_identity(session: AsyncSession, settings: Settings, tenant: str) -> GwaIdentity:
    """The tenant's active GWA identity with decrypted keys; IdentityMissing if none is imported."""
    rows = {c.usage: c for c in await repo.active_identity(session)}
    if set(rows) != {"tls", "sig", "enc"}:
        raise IdentityMissing(f"tenant {tenant!r} has no complete GWA identity (import TLS, SIG and ENC "
                              "certificates with their keys)")
    box = SecretBox(settings, tenant, KEY_PURPOSE)
    certs: dict[str, x509.Certificate] = {}
    keys: dict[str, ec.EllipticCurvePrivateKey] = {}
    for usage, row in rows.items():
        assert usage is not None
        certs[usage] = x509.load_der_x509_certificate(row.der)
        keys[usage] = _private_key(box, row)
    trust = await repo.active_trust(session)
    return GwaIdentity(
        tenant=tenant,
        tls_cert=certs["tls"], tls_key=keys["tls"], sig_cert=certs["sig"], sig_key=keys["sig"],
        enc_cert=certs["enc"], enc_key=keys["enc"],
        chain=[x509.load_der_x509_certificate(c.der) for c in trust if not c.is_trust_anchor],
        trust_anchors=[x509.load_der_x509_certificate(c.der) for c in trust if c.is_trust_anchor],
    )


def _private_key(box: SecretBox, row: Certificate) -> ec.EllipticCurvePrivateKey:
    assert row.private_key is not None
    key = serialization.load_pem_private_key(box.decrypt(row.private_key, row.fingerprint), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@dataclass(frozen=True)
class KeyPair:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)


def _pair(box: SecretBox, row: Certificate) -> KeyPair:
    return KeyPair(x509.load_der_x509_certificate(row.der), _private_key(box, row))


@dataclass(frozen=True)
class EmtIdentity:
    """An EMT identity of the tenant: what the MDM receiver needs to act for market partner
    ``market_partner``. ``tls`` and ``sig``: the valid certificate of that usage that is valid the
    longest; ``enc``: every valid ENC certificate with its key, that one first (a gateway may
    still encrypt for the previous one after a renewal). ``fingerprint`` changes whenever one of
    these certificates or the tenant's trust does."""

    tenant: str
    market_partner: str
    tls: KeyPair
    sig: KeyPair
    enc: tuple[KeyPair, ...]
    chain: list[x509.Certificate]  # Sub-CAs
    trust_anchors: list[x509.Certificate]
    fingerprint: str

    def write_tls_files(self, directory: Path) -> TlsFiles:
        return write_tls_files(directory, "emt", self.tls.cert, self.tls.key, self.chain, self.trust_anchors)


async def load_emt_identities(session: AsyncSession, settings: Settings, tenant: str, now: dt.datetime | None = None,
                              *, known: Mapping[str, EmtIdentity] | None = None) -> dict[str, EmtIdentity]:
    """The tenant's EMT identities by market partner ID, keys decrypted: the market partners with a
    usable (active, not revoked, within validity) TLS, SIG and ENC certificate imported with its key
    (``import_emt_identity``). A market partner lacking one of them is not an identity (yet).
    ``known``: identities loaded before; one whose certificates are unchanged is returned as it
    was, without decrypting its keys again (a receiver polls)."""
    now = now or dt.datetime.now(dt.UTC)
    by_partner: dict[str, list[Certificate]] = {}
    for row, mp_id in await repo.active_emt_with_keys(session):
        if usable(row, now):
            by_partner.setdefault(mp_id, []).append(row)
    if not by_partner:
        return {}
    trust = await repo.active_trust(session)
    trust_fps = [c.fingerprint for c in trust if not c.is_trust_anchor] + [c.fingerprint for c in trust
                                                                           if c.is_trust_anchor]
    box: SecretBox | None = None
    chain: list[x509.Certificate] | None = None
    anchors: list[x509.Certificate] = []
    found: dict[str, EmtIdentity] = {}
    for mp_id, rows in by_partner.items():
        newest_first = sorted(rows, key=lambda c: (c.not_after, c.id), reverse=True)
        chosen = {u: [c for c in newest_first if c.usage == u] for u in ("tls", "sig", "enc")}
        if not all(chosen.values()):
            continue
        used = [chosen["tls"][0], chosen["sig"][0], *chosen["enc"]]
        fingerprint = hashlib.sha256("|".join([c.fingerprint for c in used] + trust_fps).encode()).hexdigest()
        before = (known or {}).get(mp_id)
        if before is not None and before.fingerprint == fingerprint:
            found[mp_id] = before
            continue
        if box is None or chain is None:
            box = SecretBox(settings, tenant, KEY_PURPOSE)
            chain = [x509.load_der_x509_certificate(c.der) for c in trust if not c.is_trust_anchor]
            anchors = [x509.load_der_x509_certificate(c.der) for c in trust if c.is_trust_anchor]
        found[mp_id] = EmtIdentity(tenant=tenant, market_partner=mp_id, tls=_pair(box, chosen["tls"][0]),
                                   sig=_pair(box, chosen["sig"][0]), enc=tuple(_pair(box, c) for c in chosen["enc"]),
                                   chain=chain, trust_anchors=anchors, fingerprint=fingerprint)
    return found
