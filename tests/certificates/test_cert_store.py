"""The tenant's certificate store: validated imports, keys encrypted at rest, listing, revocation."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from domain.certificates.identity import load_gwa_identity
from domain.certificates.models import Certificate
from domain.tenancy.service import TenantContext
from pki.testpki import Entity, TestPki
from tests.helpers import error_code

if TYPE_CHECKING:
    from core.config import Settings
    from tests.conftest import ApiUser, TenantFactory, UserFactory


def _pem(*paths: Path) -> str:
    return "".join(p.read_text() for p in paths)


def _entity_pem(entity: Entity, *, keys: bool) -> str:
    parts = []
    for usage in ("tls", "sig", "enc"):
        cred = entity.credential(usage)
        parts.append(cred.cert_path.read_text())
        if keys:
            parts.append(cred.key_path.read_text())
    return "".join(parts)


@pytest.fixture(scope="module")
async def certs_tenant(tenant_factory: TenantFactory) -> TenantContext:
    return await tenant_factory("certs")


@pytest.fixture(scope="module")
async def admin(make_user: UserFactory, certs_tenant: TenantContext) -> ApiUser:
    return await make_user(tenant="certs", role="admin")


@pytest.fixture(scope="module")
async def trusted(api: httpx.AsyncClient, admin: ApiUser, test_pki: TestPki) -> None:
    body = {"pem": _pem(test_pki.root_path, test_pki.subca_path)}
    response = await api.post("/api/v1/tenants/certs/certificates/trust", json=body, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert sorted(c["is_trust_anchor"] for c in response.json()["imported"]) == [False, True]


async def test_trust_import_is_idempotent_and_refuses_end_entities(
    api: httpx.AsyncClient, admin: ApiUser, trusted: None, test_pki: TestPki
) -> None:
    again = await api.post("/api/v1/tenants/certs/certificates/trust",
                           json={"pem": _pem(test_pki.root_path, test_pki.subca_path)}, headers=admin.headers)
    assert again.status_code == 200 and again.json() == {"imported": [], "unchanged": 2}
    leaf = await api.post("/api/v1/tenants/certs/certificates/trust",
                          json={"pem": test_pki.gwa.tls.cert_path.read_text()}, headers=admin.headers)
    assert leaf.status_code == 400 and error_code(leaf) == "not_a_ca"


async def test_identity_import_stores_keys_encrypted_and_loads_them_back(
    api: httpx.AsyncClient, admin: ApiUser, trusted: None, test_pki: TestPki, settings: Settings,
    certs_tenant: TenantContext,
) -> None:
    response = await api.post("/api/v1/tenants/certs/certificates/identity",
                              json={"pem": _entity_pem(test_pki.gwa, keys=True)}, headers=admin.headers)
    assert response.status_code == 200, response.text
    imported = response.json()["imported"]
    assert sorted(c["usage"] for c in imported) == ["enc", "sig", "tls"]
    assert all(c["has_private_key"] and c["role"] == "GWA" for c in imported)
    assert "PRIVATE KEY" not in response.text

    async with certs_tenant.sessions() as session:
        rows = (await session.scalars(select(Certificate).where(Certificate.owner == "identity"))).all()
        assert rows and all(r.private_key and b"PRIVATE KEY" not in r.private_key for r in rows)
        identity = await load_gwa_identity(session, settings, "certs")
    for usage in ("tls", "sig", "enc"):
        expected = test_pki.gwa.credential(usage).key.private_numbers().private_value
        assert getattr(identity, f"{usage}_key").private_numbers().private_value == expected
        assert getattr(identity, f"{usage}_cert") == test_pki.gwa.credential(usage).cert
    assert identity.trust_anchors == [test_pki.root] and identity.chain == [test_pki.subca]

    files = identity.write_tls_files(certs_tenant.keys_dir / "tls")
    assert b"ENCRYPTED" in files.key.read_bytes()
    assert oct(files.key.stat().st_mode)[-3:] == "600"
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=files.key_password)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.private_numbers() == identity.tls_key.private_numbers()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"pem": "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"}, "malformed"),
        ({"der_base64": base64.b64encode(b"\x30\x82\x01\x00garbage").decode()}, "malformed"),
        ({"pem": "hello"}, "malformed"),
    ],
)
async def test_garbage_is_rejected_with_a_reason_code(api: httpx.AsyncClient, admin: ApiUser, trusted: None,
                                                      body: dict[str, str], code: str) -> None:
    response = await api.post("/api/v1/tenants/certs/certificates/emt", json=body, headers=admin.headers)
    assert response.status_code == 400 and error_code(response) == code


async def test_identity_without_keys_or_of_the_wrong_role_is_rejected_and_nothing_stored(
    api: httpx.AsyncClient, admin: ApiUser, trusted: None, test_pki: TestPki, certs_tenant: TenantContext
) -> None:
    async with certs_tenant.sessions() as session:
        before = len((await session.scalars(select(Certificate))).all())
    no_keys = await api.post("/api/v1/tenants/certs/certificates/identity",
                             json={"pem": _entity_pem(test_pki.gwa, keys=False)}, headers=admin.headers)
    assert no_keys.status_code == 400 and error_code(no_keys) == "key_missing"
    emt = next(iter(test_pki.emts.values()))
    wrong = await api.post("/api/v1/tenants/certs/certificates/identity",
                           json={"pem": _entity_pem(emt, keys=True)}, headers=admin.headers)
    assert wrong.status_code == 400 and error_code(wrong) == "wrong_role"
    neither = await api.post("/api/v1/tenants/certs/certificates/identity", json={}, headers=admin.headers)
    assert neither.status_code == 422
    async with certs_tenant.sessions() as session:
        assert len((await session.scalars(select(Certificate))).all()) == before


async def test_a_certificate_of_an_unknown_ca_is_rejected(api: httpx.AsyncClient, admin: ApiUser, trusted: None,
                                                          tmp_path: Path) -> None:
    from pki.testpki import init_test_pki

    foreign = init_test_pki(tmp_path / "foreign")
    emt = next(iter(foreign.emts.values()))
    response = await api.post("/api/v1/tenants/certs/certificates/emt",
                              json={"pem": _entity_pem(emt, keys=False)}, headers=admin.headers)
    assert response.status_code == 400 and error_code(response) == "unknown_issuer"


async def test_emt_and_gateway_certificates_list_with_expiry_and_revocation(
    api: httpx.AsyncClient, admin: ApiUser, make_user: UserFactory, trusted: None, test_pki: TestPki
) -> None:
    emt = next(iter(test_pki.emts.values()))
    imported = await api.post("/api/v1/tenants/certs/certificates/emt",
                              json={"pem": _entity_pem(emt, keys=False)}, headers=admin.headers)
    assert imported.status_code == 200, imported.text
    with_key = await api.post("/api/v1/tenants/certs/certificates/emt",
                              json={"pem": _entity_pem(emt, keys=True)}, headers=admin.headers)
    assert with_key.status_code == 400 and error_code(with_key) == "key_not_allowed"

    auditor = await make_user(tenant="certs", role="auditor")
    listed = await api.get("/api/v1/tenants/certs/certificates?owner=emt", headers=auditor.headers)
    assert listed.status_code == 200
    rows = listed.json()["items"]
    assert {r["usage"] for r in rows} == {"tls", "sig", "enc"}
    assert all(r["days_left"] > 300 and r["revocation"] == "unknown" for r in rows)
    soon = await api.get("/api/v1/tenants/certs/certificates?expiring_within_days=30", headers=auditor.headers)
    assert soon.json()["items"] == []
    later = await api.get("/api/v1/tenants/certs/certificates?owner=emt&expiring_within_days=3650",
                          headers=auditor.headers)
    assert len(later.json()["items"]) == 3
    forbidden = await api.post("/api/v1/tenants/certs/certificates/emt", json={"pem": "x"}, headers=auditor.headers)
    assert forbidden.status_code == 403

    fingerprint = rows[0]["fingerprint"]
    pem = await api.get(f"/api/v1/tenants/certs/certificates/{fingerprint}/pem", headers=auditor.headers)
    assert x509.load_pem_x509_certificate(pem.text.encode())


async def test_revocation_check_marks_revoked_certificates_and_revoked_ones_cannot_be_imported(
    api: httpx.AsyncClient, admin: ApiUser, trusted: None, test_pki: TestPki, certs_tenant: TenantContext
) -> None:
    from domain.certificates import service

    one = test_pki.issue_gateway(f"ETST02{secrets.randbelow(10**8):08d}")
    two = test_pki.issue_gateway(f"ETST02{secrets.randbelow(10**8):08d}")
    async with certs_tenant.sessions() as session, session.begin():
        for gw in (one, two):
            await service.import_gateway(session, certs_tenant, _entity_pem(gw, keys=False).encode())
    test_pki.revoke(one.tls.cert)

    check = await api.post("/api/v1/tenants/certs/certificates/revocation-check", headers=admin.headers)
    assert check.status_code == 200, check.text
    assert check.json()["failed"] == {} and check.json()["revoked"] >= 1
    revoked = await api.get("/api/v1/tenants/certs/certificates?revocation=revoked", headers=admin.headers)
    assert [r["common_name"] for r in revoked.json()["items"]] == [f"{one.name}.SMGW"]

    three = test_pki.issue_gateway(f"ETST02{secrets.randbelow(10**8):08d}")
    test_pki.revoke(three.sig.cert)
    await api.post("/api/v1/tenants/certs/certificates/revocation-check", headers=admin.headers)
    async with certs_tenant.sessions() as session:
        with pytest.raises(service.CertificateRejected) as err:
            await service.import_gateway(session, certs_tenant, _entity_pem(three, keys=False).encode())
    assert err.value.code == "revoked"
