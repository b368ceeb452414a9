"""The SM-PKI certificate profile: building profile-conformant certificates (for the test PKI and
the test CA) and checking certificates against the profile rules (domain.md section 4).

Profile rules are named (``subject.C``, ``san.forbidden``, ...) so a ``profile_violation`` verdict
can say which rule failed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.oids import SM_PKI_POLICY

_E = TypeVar("_E", bound=x509.ExtensionType)

ORG_PRODUCTION = "SM-PKI-DE"
ORG_TEST = "SM-Test-PKI-DE"


class Role(StrEnum):
    """Who a certificate belongs to, from the CN suffix."""

    CA = "CA"
    GWA = "GWA"
    GWH = "GWH"
    EMT = "EMT"
    SMGW = "SMGW"


class Usage(StrEnum):
    """What an end-entity key is for. Every SM-PKI end entity has one certificate per usage."""

    TLS = "tls"
    SIG = "sig"
    ENC = "enc"


END_ENTITY_ROLES = (Role.GWA, Role.GWH, Role.EMT, Role.SMGW)
_SAN_REQUIRED = {Role.GWA, Role.GWH, Role.EMT}


@dataclass(frozen=True, slots=True)
class ProfileViolation:
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"rule {self.rule}: {self.detail}"


# --------------------------------------------------------------------------- building


def subject_name(common_name: str, serial_number: int | str = 1, organisation: str = ORG_TEST) -> x509.Name:
    """C=DE, O=<organisation>, CN=<common name>, SERIALNUMBER=<sequence number>."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, str(serial_number)),
        ]
    )


def _hash_for(key: ec.EllipticCurvePrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    # Root on brainpoolP384r1 signs with SHA-384, Sub-CA on brainpoolP256r1 with SHA-256.
    size = key.curve.key_size
    return hashes.SHA512() if size > 384 else hashes.SHA384() if size > 256 else hashes.SHA256()


def _policies() -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(SM_PKI_POLICY, None)])


def _crl_dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)]
    )


def build_ca_certificate(
    *,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_cert: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    crl_url: str | None,
    path_length: int | None,
    serial: int | None = None,
) -> x509.Certificate:
    """A root (``issuer_cert=None``, self-signed) or Sub-CA certificate."""
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(_policies(), critical=False)
    )
    if issuer_cert is not None:
        b = b.add_extension(_aki(issuer_cert), critical=False)
    if crl_url:
        b = b.add_extension(_crl_dp(crl_url), critical=False)
    return b.sign(issuer_key, _hash_for(issuer_key))


def _aki(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def key_usage_for(usage: Usage) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=usage in (Usage.TLS, Usage.SIG),
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=usage is Usage.ENC,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def build_end_entity_certificate(
    *,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    usage: Usage,
    role: Role,
    issuer_cert: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    crl_url: str,
    san: list[x509.GeneralName] | None = None,
    serial: int | None = None,
) -> x509.Certificate:
    """A TLS, SIG or ENC certificate for a GWA/GWH/EMT/SMGW following the SM-PKI profile.

    SAN: required for GWA/GWH/EMT (``san`` must be given), forbidden for SMGW (ignored there).
    TLS certificates also carry EKU serverAuth+clientAuth so OpenSSL's purpose check and the
    import classifier can tell TLS from SIG (both are digitalSignature only).
    """
    if role is Role.SMGW:
        san = None
    elif not san:
        raise ValueError(f"{role} certificates need a SubjectAltName")
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage_for(usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_aki(issuer_cert), critical=False)
        .add_extension(_policies(), critical=False)
        .add_extension(_crl_dp(crl_url), critical=False)
    )
    if usage is Usage.TLS:
        b = b.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, _hash_for(issuer_key))


# --------------------------------------------------------------------------- classifying


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def common_name(cert: x509.Certificate) -> str | None:
    return common_name_of(cert.subject)


def common_name_of(name: x509.Name) -> str | None:
    """The CN of a subject already read from its certificate (parsing a Name costs ~50 us)."""
    cns = _attr(name, NameOID.COMMON_NAME)
    return cns[0] if cns else None


def role_of(cert: x509.Certificate) -> Role | None:
    """The SM-PKI role from the CN suffix (``.GWA``, ``.EMT``, ...), or None."""
    return role_of_cn(common_name(cert))


def role_of_cn(cn: str | None) -> Role | None:
    """:func:`role_of` for a CN already read from the certificate."""
    if not cn or "." not in cn:
        return None
    suffix = cn.rsplit(".", 1)[1]
    try:
        return Role(suffix)
    except ValueError:
        return None


def _ext(cert: x509.Certificate, cls: type[_E]) -> x509.Extension[_E] | None:
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None


def usage_of(cert: x509.Certificate) -> Usage | None:
    """TLS, SIG or ENC from KeyUsage/EKU: keyAgreement -> ENC; EKU with TLS purposes -> TLS;
    digitalSignature otherwise -> SIG."""
    ku = _ext(cert, x509.KeyUsage)
    if ku is None:
        return None
    kuv = ku.value
    if kuv.key_agreement:
        return Usage.ENC
    if not kuv.digital_signature:
        return None
    eku = _ext(cert, x509.ExtendedKeyUsage)
    if eku is not None:
        purposes = set(eku.value)
        if purposes & {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}:
            return Usage.TLS
    return Usage.SIG


def is_self_signed_name(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


# --------------------------------------------------------------------------- checking


def check_profile(
    cert: x509.Certificate,
    *,
    is_ca: bool,
    organisations: frozenset[str] = frozenset({ORG_PRODUCTION, ORG_TEST}),
) -> ProfileViolation | None:
    """The first SM-PKI profile rule ``cert`` breaks, or None.

    Key usage per purpose is not a profile rule here (the validator reports it as
    ``wrong_key_usage``); basic constraints of CA certificates are (``basicConstraints.ca``).
    """
    if cert.version is not x509.Version.v3:
        return ProfileViolation("version", "certificate is not X.509 v3")
    name = cert.subject
    if _attr(name, NameOID.COUNTRY_NAME) != ["DE"]:
        return ProfileViolation("subject.C", "subject C must be DE")
    orgs = _attr(name, NameOID.ORGANIZATION_NAME)
    if len(orgs) != 1 or orgs[0] not in organisations:
        return ProfileViolation("subject.O", f"subject O must be one of {sorted(organisations)}")
    serials = _attr(name, NameOID.SERIAL_NUMBER)
    if len(serials) != 1 or not serials[0].isdigit():
        return ProfileViolation("subject.serialNumber", "subject SERIALNUMBER must be numeric")
    role = role_of(cert)
    if is_ca and role is not Role.CA:
        return ProfileViolation("subject.CN", "CA common name must end in .CA")
    if not is_ca and role not in END_ENTITY_ROLES:
        return ProfileViolation("subject.CN", "end-entity common name must end in .GWA/.GWH/.EMT/.SMGW")

    ku = _ext(cert, x509.KeyUsage)
    if ku is None or not ku.critical:
        return ProfileViolation("keyUsage.critical", "KeyUsage must be present and critical")
    bc = _ext(cert, x509.BasicConstraints)
    if bc is None or not bc.critical:
        return ProfileViolation("basicConstraints.critical", "BasicConstraints must be present and critical")
    if is_ca and not (bc.value.ca and ku.value.key_cert_sign):
        return ProfileViolation("basicConstraints.ca", "issuer is not a CA (cA flag / keyCertSign)")
    if not is_ca and (bc.value.ca or ku.value.key_cert_sign):
        return ProfileViolation("basicConstraints.ee", "end-entity certificate must not be a CA")

    pol = _ext(cert, x509.CertificatePolicies)
    if pol is None or not any(p.policy_identifier == SM_PKI_POLICY for p in pol.value):
        return ProfileViolation("certificatePolicies", f"policy {SM_PKI_POLICY.dotted_string} missing")
    if _ext(cert, x509.SubjectKeyIdentifier) is None:
        return ProfileViolation("subjectKeyIdentifier", "SubjectKeyIdentifier missing")
    self_signed = is_self_signed_name(cert)
    if not self_signed:
        aki = _ext(cert, x509.AuthorityKeyIdentifier)
        if aki is None or aki.value.key_identifier is None:
            return ProfileViolation("authorityKeyIdentifier", "AuthorityKeyIdentifier missing")
        if not crl_urls(cert):
            return ProfileViolation("crlDistributionPoints", "no HTTP CRL distribution point")
    if not is_ca:
        san = _ext(cert, x509.SubjectAlternativeName)
        if role in _SAN_REQUIRED and san is None:
            return ProfileViolation("san.required", f"SubjectAltName required for {role}")
        if role is Role.SMGW and san is not None:
            return ProfileViolation("san.forbidden", "SubjectAltName forbidden for SMGW")
    return None


def crl_urls(cert: x509.Certificate) -> list[str]:
    """HTTP(S) URLs of the CRL distribution points."""
    ext = _ext(cert, x509.CRLDistributionPoints)
    if ext is None:
        return []
    urls: list[str] = []
    for dp in ext.value:
        for gn in dp.full_name or []:
            if isinstance(gn, x509.UniformResourceIdentifier) and gn.value.lower().startswith(("http://", "https://")):
                urls.append(gn.value)
    return urls


def subject_key_id(cert: x509.Certificate) -> bytes | None:
    ext = _ext(cert, x509.SubjectKeyIdentifier)
    return ext.value.digest if ext is not None else None


def authority_key_id(cert: x509.Certificate) -> bytes | None:
    ext = _ext(cert, x509.AuthorityKeyIdentifier)
    return ext.value.key_identifier if ext is not None else None
