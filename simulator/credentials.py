"""Key material of the simulated fleet, all from the test SM-PKI (``pki.testpki``).

* Each gateway's TLS/SIG/ENC triple lives in the test PKI (``smgw/<ID>/``); missing ones are
  issued on start. Keys are loaded lazily and cached (LRU), TLS contexts are built per connection
  (about 35 KB each), so 10,000 idle gateways hold no TLS state at all.
* The GWA a gateway trusts: the test PKI's GWA (its SIG certificate verifies wake-ups; its TLS
  certificate must be the head-end's, role GWA).
* Manufacturers (GWH) that sign firmware images: one SIG certificate per vendor, issued by the
  test PKI's Sub-CA into ``<state>/manufacturers/<FLAG>/`` (the test PKI has no GWH entities).
* Renewed own keys (``request_certificate_signing`` + ``install_certificates``, docs/protocol.md
  10.4) replace the test PKI's credential of that usage (:meth:`FleetCredentials.use_own`); the
  fleet registers them from the gateway states on start. A renewed TLS pair is written to
  ``<state>/creds/<ID>/tls-<sha256 prefix>.{crt,key}`` for the TLS context.
* Fault material: a second TLS certificate per gateway that the Sub-CA has revoked
  (``<state>/creds/<ID>/revoked-tls.*``) and a certificate from a foreign test PKI
  (``<state>/foreign-pki``), used by the faults ``revoked_certificate`` / ``foreign_certificate``.
"""

from __future__ import annotations

import functools
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from pki import tls
from pki.loader import cert_file, cert_to_pem, key_file, write_atomic, write_private_key
from pki.profile import Role, Usage, subject_name
from pki.testpki import TestPki, init_test_pki
from pki.validation import Validator
from simulator.vendors import Vendor

CONTEXT_CACHE = 512


@dataclass(frozen=True)
class KeyPair:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


class FleetCredentials:
    def __init__(self, pki_dir: Path, state_dir: Path, *, group: str = tls.DEFAULT_GROUP) -> None:
        self.pki = TestPki(pki_dir)
        self.state_dir = state_dir
        self.group = group
        self._validator: Validator | None = None
        self._crl_stamp: tuple[float, ...] = ()
        self._lock = threading.Lock()
        self._contexts: dict[tuple[str, str], ssl.SSLContext] = {}
        self._own: dict[tuple[str, str], KeyPair] = {}  # (gateway, usage) -> renewed active credential
        self._own_tls: dict[str, tuple[Path, Path]] = {}  # gateway -> renewed TLS cert/key files

    # -- the GWA side
    @functools.cached_property
    def gwa_sig_cert(self) -> x509.Certificate:
        return self.pki.gwa.sig.cert

    @functools.cached_property
    def gwa_enc_cert(self) -> x509.Certificate:
        return self.pki.gwa.enc.cert

    def validator(self) -> Validator:
        """The SM-PKI validator of the gateways, with the CRLs on disk (reloaded when they change)."""
        stamp = tuple(self.pki.crl_path(n).stat().st_mtime for n in ("root", "subca"))
        if self._validator is None or stamp != self._crl_stamp:
            self._validator = self.pki.validator()
            self._crl_stamp = stamp
        return self._validator

    # -- gateways
    def ensure_gateways(self, gateway_ids: list[str]) -> list[str]:
        """Issue the triples missing from the test PKI; returns the IDs that were issued."""
        missing = [g for g in gateway_ids if not self.pki.gateway(g).exists]
        if missing:
            self.pki.issue_gateways(gateway_ids=missing)
        return missing

    def tls_paths(self, gateway_id: str, variant: str = "normal") -> tuple[Path, Path, list[Path]]:
        """(cert, key, intermediates) for a gateway's TLS client context; ``variant`` is
        ``normal``, ``revoked`` or ``foreign``."""
        if variant == "revoked":
            cert, key = self._revoked_tls(gateway_id)
            return cert, key, [self.pki.subca_path]
        if variant == "foreign":
            foreign = self._foreign_pki()
            ent = foreign.issue_gateway(gateway_id)
            return ent.tls.cert_path, ent.tls.key_path, [foreign.subca_path]
        own = self._own_tls.get(gateway_id)
        if own is not None:
            return own[0], own[1], [self.pki.subca_path]
        ent = self.pki.gateway(gateway_id)
        return ent.tls.cert_path, ent.tls.key_path, [self.pki.subca_path]

    def client_context(self, gateway_id: str, variant: str = "normal") -> ssl.SSLContext:
        """A TLS client context; the last few hundred are kept (about 35 KB each), so a gateway
        that reconnects soon (Notify after a command, reboot, cyclic contact) skips ~1.5 ms of
        PEM parsing. A connection keeps its context alive anyway while it is open."""
        key = (gateway_id, variant)
        ctx = self._contexts.pop(key, None)
        if ctx is None:
            cert, keyfile, inter = self.tls_paths(gateway_id, variant)
            ctx = tls.client_context(cert, keyfile, [self.pki.root_path], intermediates=inter, group=self.group)
        self._contexts[key] = ctx
        while len(self._contexts) > CONTEXT_CACHE:
            self._contexts.pop(next(iter(self._contexts)))
        return ctx

    def keys(self, gateway_id: str, usage: str) -> KeyPair:
        """The gateway's active certificate and key of ``usage``: a renewed one, else the test PKI's."""
        own = self._own.get((gateway_id, usage))
        return own if own is not None else self._pki_keys(gateway_id, usage)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one instance per process
    def _pki_keys(self, gateway_id: str, usage: str) -> KeyPair:
        cred = self.pki.gateway(gateway_id).credential(Usage(usage))
        return KeyPair(cert_file(cred.cert_path), key_file(cred.key_path))

    def use_own(self, gateway_id: str, usage: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        """Make a renewed certificate and key the gateway's active ones for ``usage`` (TLS: from the
        next connection on)."""
        if usage == "tls":
            import hashlib

            from cryptography.hazmat.primitives import serialization

            sha = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
            d = self.state_dir / "creds" / gateway_id
            cert_path, key_path = d / f"tls-{sha[:16]}.crt", d / f"tls-{sha[:16]}.key"
            with self._lock:
                if not cert_path.exists() or not key_path.exists():
                    d.mkdir(parents=True, exist_ok=True, mode=0o700)
                    write_private_key(key_path, key)
                    write_atomic(cert_path, cert_to_pem(cert))
            self._own_tls[gateway_id] = (cert_path, key_path)
            self._contexts.pop((gateway_id, "normal"), None)
        self._own[(gateway_id, usage)] = KeyPair(cert, key)

    def _revoked_tls(self, gateway_id: str) -> tuple[Path, Path]:
        d = self.state_dir / "creds" / gateway_id
        cert_path, key_path = d / "revoked-tls.crt", d / "revoked-tls.key"
        with self._lock:
            if not cert_path.exists():
                d.mkdir(parents=True, exist_ok=True)
                key = ec.generate_private_key(ec.BrainpoolP256R1())
                subject = self.pki.gateway(gateway_id).tls.cert.subject
                cert = self.pki.issue_certificate(subject=subject, public_key=key.public_key(), usage=Usage.TLS,
                                                  role=Role.SMGW)
                write_private_key(key_path, key)
                write_atomic(cert_path, cert_to_pem(cert))
                self.pki.revoke(cert)
        return cert_path, key_path

    def _foreign_pki(self) -> TestPki:
        d = self.state_dir / "foreign-pki"
        with self._lock:
            if not (d / "pki.json").exists():
                if d.exists():
                    for p in sorted(d.rglob("*"), reverse=True):
                        p.unlink() if p.is_file() else p.rmdir()
                init_test_pki(d)
        return TestPki(d)

    # -- manufacturers
    @functools.lru_cache(maxsize=16)  # noqa: B019
    def manufacturer(self, vendor: Vendor) -> KeyPair:
        """The vendor's GWH SIG certificate and key (issued by the test Sub-CA on first use)."""
        d = self.state_dir / "manufacturers" / vendor.flag
        cert_path, key_path = d / "sig.crt", d / "sig.key"
        with self._lock:
            if not cert_path.exists():
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
                key = ec.generate_private_key(ec.BrainpoolP256R1())
                cert = self.pki.issue_certificate(
                    subject=subject_name(vendor.manufacturer_cn, 1, self.pki.config.organisation),
                    public_key=key.public_key(), usage=Usage.SIG, role=Role.GWH,
                    san=[x509.DNSName(f"{vendor.flag.lower()}.gwh.gridgate.test")],
                )
                write_private_key(key_path, key)
                write_atomic(cert_path, cert_to_pem(cert))
        return KeyPair(cert_file(cert_path), key_file(key_path))


def pki_exists(pki_dir: Path) -> bool:
    return (pki_dir / "pki.json").exists()


def ensure_pki(pki_dir: Path) -> TestPki:
    """Open the test PKI, creating it when the directory holds none (standalone simulator)."""
    if pki_exists(pki_dir):
        return TestPki(pki_dir)
    pki_dir.mkdir(parents=True, exist_ok=True)
    if any(pki_dir.iterdir()):
        raise FileExistsError(f"{pki_dir} exists but is not a test PKI")
    return init_test_pki(os.fspath(pki_dir))


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@functools.lru_cache(maxsize=256)
def load_private_key_pem(pem: str) -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an EC private key")
    return key


def with_key_identifier(template: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """A throw-away certificate that carries ``key``'s SubjectKeyIdentifier: CMS names a recipient by
    the SKI of its certificate, and a pending ENC key has no certificate at the gateway yet."""
    import datetime as dt

    from cryptography.hazmat.primitives import hashes

    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(template.subject).issuer_name(template.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(minutes=5))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
