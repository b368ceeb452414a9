"""Two tenants with the same gateway-shaped rows cannot see each other's data through any route.

Both tenants get rows with identical keys (the same gateway ID) and a tenant-specific marker. Every
tenant-scoped GET route is then called as tenant A's admin: A's marker may show, B's never. And A's
admin asking for B's paths gets 404, whatever the route.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

import httpx

from activities.runtime import TenantRuntime
from api.app import iter_api_routes
from core.context import set_actor
from domain.audit.repository import record
from domain.tenancy.service import TenantContext

if TYPE_CHECKING:
    from fastapi import FastAPI

    from core.config import Settings
    from core.db import Databases
    from tests.conftest import UserFactory

GATEWAY_ID = "EEMH0116909060"


async def _seed(tenant: TenantContext, marker: str) -> None:
    """The same gateway (same DIN 43849 ID) in both tenants; only the marker differs."""
    from domain.devices.schemas import GatewayCreate
    from domain.devices.service import create_gateway

    set_actor(f"seed:{marker}")
    async with tenant.sessions() as session, session.begin():
        await create_gateway(session, GatewayCreate(device_id=GATEWAY_ID, device_type="emh-casa",
                                                    network_segment=marker[:60], state="in_operation"))
        record(session, "note", "gateway", GATEWAY_ID, {"note": {"old": None, "new": marker}})


def _tenant_get_routes(app: FastAPI) -> list[str]:
    return sorted({p for m, p, _ in iter_api_routes(app) if m == "GET" and p.startswith("/api/v1/tenants/{tenant}")})


def _fill(template: str, tenant: str) -> str:
    path = template.replace("{tenant}", tenant)
    return re.sub(r"\{[^}]+\}", GATEWAY_ID, path)


async def test_tenants_cannot_see_each_other_through_any_route(
    app: FastAPI,
    api: httpx.AsyncClient,
    make_user: UserFactory,
    tenant_a: TenantContext,
    tenant_b: TenantContext,
) -> None:
    marker_a, marker_b = f"ONLY-IN-ALPHA-{secrets.token_hex(4)}", f"ONLY-IN-BETA-{secrets.token_hex(4)}"
    await _seed(tenant_a, marker_a)
    await _seed(tenant_b, marker_b)
    admin_a = await make_user(tenant="alpha", role="admin")
    admin_b = await make_user(tenant="beta", role="admin")

    routes = _tenant_get_routes(app)
    assert routes, "no tenant-scoped routes found"
    seen_a = False
    for template in routes:
        own = await api.get(_fill(template, "alpha"), headers=admin_a.headers)
        assert own.status_code < 500, f"{template}: {own.status_code} {own.text[:200]}"
        assert marker_b not in own.text, f"{template} leaks tenant beta's data to alpha"
        seen_a = seen_a or marker_a in own.text
        foreign = await api.get(_fill(template, "beta"), headers=admin_a.headers)
        assert foreign.status_code == 404, f"{template}: alpha's admin got {foreign.status_code} on beta"
        assert marker_b not in foreign.text
    assert seen_a, "alpha's own data should be visible through at least one route"

    # And the other way round, through the audit route that shows both markers' rows.
    own_b = await api.get("/api/v1/tenants/beta/audit", headers=admin_b.headers)
    assert marker_b in own_b.text and marker_a not in own_b.text


async def test_activities_reach_only_their_own_tenant_database(
    settings: Settings,
    dbs: Databases,
    tenant_a: TenantContext,
    tenant_b: TenantContext,
) -> None:
    from activities.selfcheck import SelfCheckActivities, SelfCheckInput

    for tenant in (tenant_a, tenant_b):
        runtime = TenantRuntime(settings=settings, dbs=dbs, tenant=tenant)
        result = await SelfCheckActivities(runtime).check_tenant_database(SelfCheckInput())
        assert result.database == tenant.db_name and result.tenant == tenant.name
