"""A caller's access to a tenant, by name (API routes) or by Temporal namespace (codec endpoint): a
tenant they are no member of looks like one that does not exist; a member without the permission is
refused with what was refused."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Databases
from core.errors import Forbidden
from domain.iam.access import access_by_name, access_by_namespace
from domain.iam.roles import Permission
from domain.iam.service import create_user, grant
from domain.tenancy.service import TenantContext, TenantNotFound, get_tenant

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def control(dbs: Databases) -> AsyncIterator[AsyncSession]:
    """A control database session rolled back after the test."""
    async with dbs.control_sessions() as s:
        await s.begin()
        try:
            yield s
        finally:
            await s.rollback()


async def test_members_get_their_role_others_the_same_404_as_for_no_tenant(control: AsyncSession,
                                                                          tenant_a: TenantContext) -> None:
    tenant = await get_tenant(control, tenant_a.name)
    auditor = await create_user(control, f"aud-{secrets.token_hex(4)}", PASSWORD)
    outsider = await create_user(control, f"out-{secrets.token_hex(4)}", PASSWORD)
    await grant(control, auditor, tenant, "auditor")

    by_name = await access_by_name(control, tenant_a.name, user_id=auditor.id, superadmin=False,
                                   permission=Permission.TENANT_READ)
    assert (by_name.tenant.id, by_name.role, by_name.market_partner_id) == (tenant.id, "auditor", None)
    by_ns = await access_by_namespace(control, tenant_a.namespace, user_id=auditor.id, superadmin=False,
                                      permission=Permission.TENANT_READ)
    assert by_ns.tenant.id == tenant.id and Permission.PROCESS_WRITE not in by_ns.permissions
    root = await access_by_namespace(control, tenant_a.namespace, user_id=outsider.id, superadmin=True,
                                     permission=Permission.PROCESS_WRITE)
    assert root.role is None and root.permissions == frozenset(Permission)

    with pytest.raises(TenantNotFound, match=f"tenant '{tenant_a.name}' not found"):
        await access_by_name(control, tenant_a.name, user_id=outsider.id, superadmin=False,
                             permission=Permission.TENANT_READ)
    with pytest.raises(TenantNotFound, match="tenant 'no-such' not found"):
        await access_by_name(control, "no-such", user_id=auditor.id, superadmin=False,
                             permission=Permission.TENANT_READ)
    with pytest.raises(TenantNotFound, match=f"namespace '{tenant_a.namespace}' not found"):
        await access_by_namespace(control, tenant_a.namespace, user_id=outsider.id, superadmin=False,
                                  permission=Permission.TENANT_READ)


async def test_a_member_without_the_permission_is_told_what_was_refused(control: AsyncSession,
                                                                        tenant_a: TenantContext) -> None:
    auditor = await create_user(control, f"aud-{secrets.token_hex(4)}", PASSWORD)
    await grant(control, auditor, await get_tenant(control, tenant_a.name), "auditor")
    with pytest.raises(Forbidden, match="role 'auditor' lacks permission 'process:write'") as caught:
        await access_by_name(control, tenant_a.name, user_id=auditor.id, superadmin=False,
                             permission=Permission.PROCESS_WRITE)
    assert caught.value.code == "permission_denied"
    with pytest.raises(Forbidden) as told:
        await access_by_namespace(control, tenant_a.namespace, user_id=auditor.id, superadmin=False,
                                  permission=Permission.PROCESS_WRITE, denied="writing needs more")
    assert told.value.message == "writing needs more"
