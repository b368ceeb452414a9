"""The tenant's own GWA identity, decrypted for use by the head-end and activities.

TLS contexts need files: ``GwaIdentity.write_tls_files`` writes the certificate chain and a
private key that is itself encrypted with a fresh random password (returned, never written), into
the tenant's key folder (0700). So no plaintext private key ever touches the disk.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.errors import Conflict
from domain.certificates import repository as repo
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
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        password = secrets.token_urlsafe(32).encode()

        def pem(certs: list[x509.Certificate]) -> bytes:
            return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)

        files = TlsFiles(cert=directory / "gwa-tls-chain.pem", key=directory / "gwa-tls-key.pem",
                         trust=directory / "trust-anchors.pem", chain=directory / "subcas.pem",
                         key_password=password)
        key_pem = self.tls_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.BestAvailableEncryption(password))
        for path, data in ((files.cert, pem([self.tls_cert, *self.chain])), (files.key, key_pem),
                           (files.trust, pem(self.trust_anchors)), (files.chain, pem(self.chain))):
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
        assert usage is not None and row.private_key is not None
        certs[usage] = x509.load_der_x509_certificate(row.der)
        key = serialization.load_pem_private_key(box.decrypt(row.private_key, row.fingerprint), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        keys[usage] = key
    trust = await repo.active_trust(session)
    return GwaIdentity(
        tenant=tenant,
        tls_cert=certs["tls"], tls_key=keys["tls"], sig_cert=certs["sig"], sig_key=keys["sig"],
        enc_cert=certs["enc"], enc_key=keys["enc"],
        chain=[x509.load_der_x509_certificate(c.der) for c in trust if not c.is_trust_anchor],
        trust_anchors=[x509.load_der_x509_certificate(c.der) for c in trust if c.is_trust_anchor],
    )
