"""Members of a tenant and their roles; the tenant's audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import MemberManager, StateDep, TenantReader
from api.schemas import AuditEntryOut, MemberOut, MemberUpsert, Page
from core.errors import Forbidden
from domain.audit.repository import history
from domain.iam.service import (
    UserNotFound,
    create_user,
    generate_password,
    get_user,
    grant,
    members,
    membership_of,
    revoke,
)
from domain.tenancy.service import get_tenant

router = APIRouter(prefix="/api/v1/tenants/{tenant}", tags=["members"])


@router.get("/members", response_model=list[MemberOut])
async def list_members(state: StateDep, access: TenantReader) -> list[MemberOut]:
    async with state.dbs.control_sessions() as session:
        tenant = await get_tenant(session, access.tenant.name)
        rows = await members(session, tenant)
    return [MemberOut(username=u.username, role=m.role, market_partner_id=m.market_partner_id) for u, m in rows]


@router.put("/members/{username}", response_model=MemberOut)
async def put_member(state: StateDep, access: MemberManager, username: str, body: MemberUpsert) -> MemberOut:
    """Grant ``username`` a role here. A new username is created as a user of this tenant.

    Adding an identity that already exists elsewhere needs a platform administrator: a tenant admin
    cannot pull users of other tenants into theirs.
    """
    generated = None
    async with state.dbs.control_sessions() as session, session.begin():
        tenant = await get_tenant(session, access.tenant.name)
        try:
            user = await get_user(session, username)
            if not access.caller.is_superadmin and await membership_of(session, user.id, tenant.id) is None:
                raise Forbidden("this user exists outside the tenant; ask a platform administrator",
                                code="user_exists_elsewhere")
        except UserNotFound:
            password = body.password or generate_password()
            generated = None if body.password else password
            user = await create_user(session, username, password)
        membership = await grant(session, user, tenant, body.role, market_partner_id=body.market_partner_id)
    return MemberOut(username=user.username, role=membership.role,
                     market_partner_id=membership.market_partner_id, generated_password=generated)


@router.delete("/members/{username}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_member(state: StateDep, access: MemberManager, username: str) -> None:
    async with state.dbs.control_sessions() as session, session.begin():
        tenant = await get_tenant(session, access.tenant.name)
        user = await get_user(session, username)
        await revoke(session, user, tenant)


@router.get("/audit", response_model=Page[AuditEntryOut])
async def audit_log(
    access: TenantReader,
    object_type: str | None = None,
    object_id: str | None = None,
    after: Annotated[int | None, Query(description="id of the last entry of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[AuditEntryOut]:
    async with access.transaction() as session:
        rows = await history(session, object_type=object_type, object_id=object_id, after=after, limit=limit)
    items = [AuditEntryOut.model_validate(r, from_attributes=True) for r in rows]
    return Page(items=items, next_after=str(items[-1].id) if len(items) == limit else None)
