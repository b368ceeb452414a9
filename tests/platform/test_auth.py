"""Who is calling: tokens, roles, and the 401/403/404 rules of the API."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
import jwt
import pytest

from domain.iam.models import User
from domain.iam.service import issue_token
from domain.tenancy.service import TenantContext
from tests.helpers import error_code

if TYPE_CHECKING:
    from fastapi import FastAPI

    from core.db import Databases
    from tests.conftest import UserFactory


async def test_login_returns_an_expiring_bearer_token(
    api: httpx.AsyncClient, make_user: UserFactory, tenant_a: TenantContext
) -> None:
    user = await make_user(tenant="alpha", role="auditor")
    response = await api.post("/api/v1/auth/token", data={"username": user.username, "password": user.password})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_at"]
    me = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == {
        "username": user.username,
        "is_superadmin": False,
        "tenants": [{"tenant": "alpha", "role": "auditor"}],
    }


async def test_wrong_password_and_unknown_user_look_the_same(api: httpx.AsyncClient, make_user: UserFactory) -> None:
    user = await make_user(tenant=None)
    wrong = await api.post("/api/v1/auth/token", data={"username": user.username, "password": "nope-nope-nope"})
    unknown = await api.post("/api/v1/auth/token", data={"username": "nobody-here", "password": "nope-nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert error_code(wrong) == error_code(unknown) == "invalid_credentials"
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


async def test_missing_form_fields_are_a_4xx_with_reason(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/auth/token", data={"username": "x"})
    assert response.status_code == 422
    assert error_code(response) == "validation_error"


@pytest.mark.parametrize("header", ["Bearer garbage", "Bearer ", "Basic Zm9vOmJhcg==", "Bearer a.b.c"])
async def test_malformed_tokens_are_401(api: httpx.AsyncClient, header: str, tenant_a: TenantContext) -> None:
    response = await api.get("/api/v1/tenants/alpha/members", headers={"Authorization": header})
    assert response.status_code == 401
    assert error_code(response) in {"invalid_token", "not_authenticated"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_expired_and_foreign_tokens_are_refused(api: httpx.AsyncClient, app: FastAPI, make_user: UserFactory,
                                                      dbs: Databases) -> None:
    user = await make_user(tenant="alpha", role="admin")
    async with dbs.control_sessions() as session:
        from sqlalchemy import select

        row = await session.scalar(select(User).where(User.username == user.username))
    assert row is not None
    secret = app.state.gridgate.token_secret
    expired = issue_token(row, secret, timedelta(seconds=-120)).access_token
    response = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and error_code(response) == "token_expired"

    forged = issue_token(row, b"another-secret-of-sufficient-length-000", timedelta(minutes=5)).access_token
    response = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and error_code(response) == "invalid_token"

    none_alg = jwt.encode(
        {"sub": str(row.id), "aud": "gridgate-api", "exp": 4102444800, "iat": 0}, key="", algorithm="none"
    )
    response = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {none_alg}"})
    assert response.status_code == 401


async def test_roles_grant_exactly_their_permissions(
    api: httpx.AsyncClient, make_user: UserFactory, tenant_a: TenantContext
) -> None:
    auditor = await make_user(tenant="alpha", role="auditor")
    operator = await make_user(tenant="alpha", role="operator")
    admin = await make_user(tenant="alpha", role="admin")
    emt = await make_user(tenant="alpha", role="emt", market_partner_id="9900000000003")

    for who in (auditor, operator, admin):
        assert (await api.get("/api/v1/tenants/alpha/audit", headers=who.headers)).status_code == 200
    # The EMT machine client reads nothing but its own readout endpoints.
    denied = await api.get("/api/v1/tenants/alpha/audit", headers=emt.headers)
    assert denied.status_code == 403 and error_code(denied) == "permission_denied"

    body = {"role": "auditor"}
    for who in (auditor, operator, emt):
        response = await api.put("/api/v1/tenants/alpha/members/new-person-x", json=body, headers=who.headers)
        assert response.status_code == 403, who.username
    created = await api.put("/api/v1/tenants/alpha/members/new-person-x", json=body, headers=admin.headers)
    assert created.status_code == 200 and created.json()["generated_password"]


async def test_non_member_gets_404_indistinguishable_from_unknown_tenant(
    api: httpx.AsyncClient, make_user: UserFactory, tenant_a: TenantContext, tenant_b: TenantContext
) -> None:
    outsider = await make_user(tenant="beta", role="admin")
    hidden = await api.get("/api/v1/tenants/alpha/members", headers=outsider.headers)
    missing = await api.get("/api/v1/tenants/no-such-tenant/members", headers=outsider.headers)
    assert hidden.status_code == missing.status_code == 404
    assert error_code(hidden) == error_code(missing) == "tenant_not_found"
    assert hidden.json()["error"]["message"].replace("alpha", "X") == missing.json()["error"]["message"].replace(
        "no-such-tenant", "X"
    )
    tenants = await api.get("/api/v1/tenants", headers=outsider.headers)
    assert [t["name"] for t in tenants.json()] == ["beta"]


async def test_tenant_admin_cannot_pull_users_of_other_tenants(
    api: httpx.AsyncClient, make_user: UserFactory, tenant_a: TenantContext, tenant_b: TenantContext
) -> None:
    admin_a = await make_user(tenant="alpha", role="admin")
    user_b = await make_user(tenant="beta", role="operator")
    response = await api.put(
        f"/api/v1/tenants/alpha/members/{user_b.username}", json={"role": "admin"}, headers=admin_a.headers
    )
    assert response.status_code == 403 and error_code(response) == "user_exists_elsewhere"


async def test_platform_routes_need_a_superadmin(api: httpx.AsyncClient, make_user: UserFactory) -> None:
    admin = await make_user(tenant="alpha", role="admin")
    response = await api.post("/api/v1/tenants", json={"name": "sneaky"}, headers=admin.headers)
    assert response.status_code == 403
    root = await make_user(superadmin=True)
    invalid = await api.post("/api/v1/tenants", json={"name": "Not Valid"}, headers=root.headers)
    assert invalid.status_code == 400 and error_code(invalid) == "invalid_tenant_name"
    dup = await api.post("/api/v1/users", json={"username": admin.username}, headers=root.headers)
    assert dup.status_code == 409 and error_code(dup) == "user_exists"
    weak = await api.post("/api/v1/users", json={"username": "weak-one", "password": "short"}, headers=root.headers)
    assert weak.status_code == 400 and error_code(weak) == "weak_password"


async def test_writes_record_who_and_when(api: httpx.AsyncClient, make_user: UserFactory, dbs: Databases) -> None:
    root = await make_user(superadmin=True)
    response = await api.post("/api/v1/users", json={"username": "audited-user"}, headers=root.headers)
    assert response.status_code == 201
    from sqlalchemy import select

    from domain.audit.models import PlatformAuditEntry

    async with dbs.control_sessions() as session:
        user = await session.scalar(select(User).where(User.username == "audited-user"))
        entry = await session.scalar(select(PlatformAuditEntry).where(PlatformAuditEntry.object_id == "audited-user"))
    assert user is not None and entry is not None
    assert user.created_by == f"user:{root.username}" and user.created_at is not None
    assert entry.actor == f"user:{root.username}" and entry.action == "create" and entry.request_id
