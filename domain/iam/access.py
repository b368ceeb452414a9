"""A caller's access to one tenant: the tenant they name (by name or by Temporal namespace), their
membership there and the permissions of its role. A tenant the caller is no member of looks exactly
like one that does not exist (404, never 403)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Forbidden
from domain.iam import repository as repo
from domain.iam.roles import Permission, permissions_for
from domain.tenancy import repository as tenants
from domain.tenancy.models import Tenant
from domain.tenancy.service import TenantNotFound


@dataclass(frozen=True)
class TenantGrant:
    tenant: Tenant
    role: str | None  # None for a superadmin who is no member
    permissions: frozenset[Permission]
    market_partner_id: str | None  # the EMT a machine client acts for


async def _grant(session: AsyncSession, tenant: Tenant | None, user_id: int, superadmin: bool, unknown: str
                 ) -> TenantGrant:
    membership = None
    if tenant is not None and not superadmin:
        membership = await repo.membership(session, user_id, tenant.id)
    if tenant is None or (membership is None and not superadmin):
        raise TenantNotFound(unknown)
    role = membership.role if membership else None
    return TenantGrant(tenant=tenant, role=role, permissions=permissions_for(role, superadmin=superadmin),
                       market_partner_id=membership.market_partner_id if membership else None)


def _require(grant: TenantGrant, permission: Permission, denied: str | None) -> TenantGrant:
    if permission not in grant.permissions:
        raise Forbidden(denied or f"role {grant.role!r} lacks permission {permission.value!r}",
                        code="permission_denied")
    return grant


async def access_by_name(session: AsyncSession, name: str, *, user_id: int, superadmin: bool,
                         permission: Permission) -> TenantGrant:
    """The caller's grant in tenant ``name`` if it holds ``permission`` (else 404 or 403)."""
    grant = await _grant(session, await tenants.by_name(session, name), user_id, superadmin,
                         f"tenant {name!r} not found")
    return _require(grant, permission, None)


async def access_by_namespace(session: AsyncSession, namespace: str, *, user_id: int, superadmin: bool,
                              permission: Permission, denied: str | None = None) -> TenantGrant:
    """The caller's grant in the tenant of Temporal ``namespace`` if it holds ``permission`` (else
    404 or 403; ``denied`` says what the 403 refused)."""
    grant = await _grant(session, await tenants.by_namespace(session, namespace), user_id, superadmin,
                         f"namespace {namespace!r} not found")
    return _require(grant, permission, denied)
