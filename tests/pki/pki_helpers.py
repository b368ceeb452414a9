"""Helpers for the PKI tests (``from tests.pki.pki_helpers import ...``)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from typer.testing import Result


def openssl(*args: str | Path, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run the openssl CLI (the independent implementation)."""
    res = subprocess.run(["openssl", *map(str, args)], input=input, capture_output=True, timeout=60)
    if check and res.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed: {res.stderr.decode(errors='replace')}")
    return res


def custom_cert(
    issuer_cert: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    cn: str,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
    usage: str = "sig",
    san: list[x509.GeneralName] | None = None,
    policy: bool = True,
    ku_critical: bool = True,
    organisation: str = "SM-Test-PKI-DE",
    serial_number_attr: str = "1",
    crl_url: str | None = "http://127.0.0.1:9/crl/subca.crl",
    ca: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    hash_alg: hashes.SHA224 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate with chosen deviations from the SM-PKI profile (for negative tests)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from pki.oids import SM_PKI_POLICY

    key = key or ec.generate_private_key(ec.BrainpoolP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number_attr),
    ])
    ku = x509.KeyUsage(
        digital_signature=usage in ("sig", "tls") and not ca, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=usage == "enc" and not ca, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(hours=1))
        .not_valid_after(not_after or now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(ku, critical=ku_critical)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert is not None:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    if policy:
        b = b.add_extension(x509.CertificatePolicies([x509.PolicyInformation(SM_PKI_POLICY, None)]), critical=False)
    if crl_url:
        b = b.add_extension(x509.CRLDistributionPoints(
            [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]), critical=False)
    if usage == "tls" and not ca:
        from cryptography.x509.oid import ExtendedKeyUsageOID

        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                            critical=False)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hash_alg or hashes.SHA256()), key


def pki_cli(*args: str | Path, input: bytes | None = None) -> Result:
    """Invoke ``gridgate pki ...`` in-process (same Typer app and exit codes as the console
    script, without paying the root CLI's import time per call)."""
    from typer.testing import CliRunner

    from gridgate.cli.pki import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input)
