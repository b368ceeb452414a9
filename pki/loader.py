"""Reading and writing certificates, private keys and CRLs (PEM or DER, single or bundle).

Every reader raises :class:`LoadError` with reason ``malformed`` on bad input, never a parser
traceback. Private keys are written with mode 0600 and are never logged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_KEY_LABELS = {b"PRIVATE KEY", b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"RSA PRIVATE KEY"}
# Everything cryptography raises for bad encodings: InvalidVersion and UnsupportedAlgorithm are
# not ValueErrors.
PARSE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    UnsupportedAlgorithm,
)


class LoadError(ValueError):
    """Unreadable or unparseable input. ``reason`` is ``malformed`` (or ``unreadable`` for I/O)."""

    def __init__(self, detail: str, reason: str = "malformed") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class Bundle:
    """What a PEM/DER blob contained, in input order."""

    certificates: list[x509.Certificate] = field(default_factory=list)
    private_keys: list[PrivateKeyTypes] = field(default_factory=list)
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise LoadError(f"cannot read {path}: {err.strerror}", reason="unreadable") from None


def _is_pem(data: bytes) -> bool:
    return b"-----BEGIN " in data[:4096] or data.lstrip().startswith(b"-----BEGIN")


def parse_bundle(data: bytes, password: bytes | None = None) -> Bundle:
    """Split PEM (any number of blocks) or one DER object into certificates, keys and CRLs.

    DER input is tried as certificate, then CRL, then PKCS#8/SEC1 private key. Unknown PEM block
    types are a ``malformed`` error (better to refuse than silently drop part of an import).
    """
    bundle = Bundle()
    if _is_pem(data):
        blocks = list(_PEM_BLOCK.finditer(data))
        if not blocks:
            raise LoadError("PEM armour without a complete block")
        for m in blocks:
            label, block = m.group(1), m.group(0)
            try:
                if label in (b"CERTIFICATE", b"X509 CERTIFICATE"):
                    bundle.certificates.append(x509.load_pem_x509_certificate(block))
                elif label == b"X509 CRL":
                    bundle.crls.append(x509.load_pem_x509_crl(block))
                elif label in _KEY_LABELS:
                    bundle.private_keys.append(
                        serialization.load_pem_private_key(block, password=password)
                    )
                else:
                    raise LoadError(f"unsupported PEM block {label.decode(errors='replace')!r}")
            except LoadError:
                raise
            except PARSE_ERRORS as err:
                # Key parse errors can mention the key type but never key material.
                raise LoadError(f"bad PEM block {label.decode(errors='replace')!r}: {err}") from None
        return bundle
    if not data:
        raise LoadError("empty input")
    try:
        bundle.certificates.append(x509.load_der_x509_certificate(data))
        return bundle
    except PARSE_ERRORS:
        pass
    try:
        bundle.crls.append(x509.load_der_x509_crl(data))
        return bundle
    except PARSE_ERRORS:
        pass
    try:
        bundle.private_keys.append(serialization.load_der_private_key(data, password=password))
        return bundle
    except PARSE_ERRORS:
        pass
    raise LoadError("input is neither PEM nor a DER certificate, CRL or private key")


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """All certificates in ``data``; at least one, else ``malformed``."""
    certs = parse_bundle(data).certificates
    if not certs:
        raise LoadError("no certificate found")
    return certs


def load_certificate(data: bytes) -> x509.Certificate:
    """The first certificate in ``data`` (PEM or DER)."""
    return load_certificates(data)[0]


def load_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    crls = parse_bundle(data).crls
    if not crls:
        raise LoadError("no CRL found")
    return crls


def load_private_key(data: bytes, password: bytes | None = None) -> PrivateKeyTypes:
    try:
        keys = parse_bundle(data, password=password).private_keys
    except LoadError as err:
        raise LoadError(f"private key: {err.detail}", err.reason) from None
    if not keys:
        raise LoadError("no private key found")
    return keys[0]


def load_ec_private_key(data: bytes, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    key = load_private_key(data, password)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise LoadError("private key is not an EC key")
    return key


def cert_file(path: str | os.PathLike[str]) -> x509.Certificate:
    return load_certificate(read_bytes(path))


def certs_file(paths: Iterable[str | os.PathLike[str]]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for p in paths:
        out.extend(load_certificates(read_bytes(p)))
    return out


def key_file(path: str | os.PathLike[str], password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    return load_ec_private_key(read_bytes(path), password)


def crls_file(paths: Iterable[str | os.PathLike[str]]) -> list[x509.CertificateRevocationList]:
    out: list[x509.CertificateRevocationList] = []
    for p in paths:
        out.extend(load_crls(read_bytes(p)))
    return out


def key_to_pem(key: PrivateKeyTypes, password: bytes | None = None) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def cert_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def certs_to_pem(certs: Sequence[x509.Certificate]) -> bytes:
    return b"".join(cert_to_pem(c) for c in certs)


def write_private_key(path: Path, key: PrivateKeyTypes, password: bytes | None = None) -> None:
    """Write a PKCS#8 PEM key created with mode 0600 (no window where it is world-readable)."""
    data = key_to_pem(key, password)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to an existing file
        os.write(fd, data)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temp file + rename so concurrent readers (the test CA) never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
