"""Dependencies every router uses: the app's state, the caller, and per-route permission checks.

A route states what it needs with exactly one of:

* ``Annotated[TenantAccess, Depends(require(Permission.X))]`` for ``/api/v1/tenants/{tenant}/...``:
  resolves the tenant from the path, 404 if it does not exist or the caller is no member, 403 if
  the caller's role lacks X. The tenant's database is only reachable through the returned access.
* ``Annotated[Caller, Depends(require_platform(Permission.PLATFORM_ADMIN))]`` for platform routes.
* ``CurrentCaller`` for routes any authenticated caller may use.

``tests/api/test_route_protection.py`` walks every registered route to prove it has one of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from core.config import Settings
from core.context import set_actor
from core.db import Databases
from core.errors import Forbidden, Unauthorized
from core.temporal_clients import TemporalClients
from domain.iam.access import access_by_name
from domain.iam.models import User
from domain.iam.roles import Permission, permissions_for
from domain.iam.service import decode_token
from domain.tenancy.service import TenantContext, context_for

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


D = TypeVar("D", bound=Callable[..., Any])


def mark_dependency(dependency: D, **markers: object) -> D:
    """Attributes on a dependency function that ``tests/platform/test_route_protection.py`` reads
    (``gridgate_permission``, ``gridgate_auth``)."""
    vars(dependency).update(markers)
    return dependency


@dataclass
class AppState:
    settings: Settings
    dbs: Databases
    temporal: TemporalClients
    token_secret: bytes


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.gridgate
    return state


StateDep = Annotated[AppState, Depends(get_state)]


@dataclass(frozen=True)
class Caller:
    user_id: int
    username: str
    is_superadmin: bool


async def current_caller(state: StateDep, token: Annotated[str | None, Depends(oauth2_scheme)]) -> Caller:
    if not token:
        raise Unauthorized("a bearer token is required", code="not_authenticated")
    user_id = decode_token(token, state.token_secret)
    async with state.dbs.control_sessions() as session:
        user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized("the token's user no longer exists or is disabled", code="invalid_token")
    set_actor(f"user:{user.username}")
    structlog.contextvars.bind_contextvars(user=user.username)
    return Caller(user_id=user.id, username=user.username, is_superadmin=user.is_superadmin)


CurrentCaller = Annotated[Caller, Depends(current_caller)]


@dataclass(frozen=True)
class TenantAccess:
    """A caller's access to one tenant: the tenant's resources and what the caller may do there."""

    tenant: TenantContext
    caller: Caller
    role: str | None
    permissions: frozenset[Permission]
    market_partner_id: str | None
    temporal: TemporalClients

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session on this tenant's database in one transaction, committed on success."""
        async with self.tenant.sessions() as session, session.begin():
            yield session

    async def temporal_client(self) -> Client:
        return await self.temporal.for_namespace(self.tenant.namespace)


TenantDependency = Callable[..., Coroutine[Any, Any, TenantAccess]]


def require(permission: Permission) -> TenantDependency:
    """Dependency for tenant-scoped routes that need ``permission`` in the path's tenant."""

    async def tenant_access(
        state: StateDep,
        caller: CurrentCaller,
        tenant: Annotated[str, Path(description="tenant name", max_length=63)],
    ) -> TenantAccess:
        async with state.dbs.control_sessions() as session:
            grant = await access_by_name(session, tenant, user_id=caller.user_id, superadmin=caller.is_superadmin,
                                         permission=permission)
        structlog.contextvars.bind_contextvars(tenant=grant.tenant.name)
        return TenantAccess(
            tenant=context_for(state.dbs, grant.tenant), caller=caller, role=grant.role,
            permissions=grant.permissions, market_partner_id=grant.market_partner_id, temporal=state.temporal,
        )

    return mark_dependency(tenant_access, gridgate_permission=permission)


def require_platform(permission: Permission) -> Callable[..., Coroutine[Any, Any, Caller]]:
    """Dependency for platform routes (outside any tenant), e.g. creating tenants."""

    async def platform_access(caller: CurrentCaller) -> Caller:
        if permission not in permissions_for(None, superadmin=caller.is_superadmin):
            raise Forbidden(f"permission {permission.value!r} is reserved to platform administrators",
                            code="permission_denied")
        return caller

    return mark_dependency(platform_access, gridgate_permission=permission)


# Shorthands for the common tenant permissions.
TenantReader = Annotated[TenantAccess, Depends(require(Permission.TENANT_READ))]
MasterDataWriter = Annotated[TenantAccess, Depends(require(Permission.MASTERDATA_WRITE))]
ProcessWriter = Annotated[TenantAccess, Depends(require(Permission.PROCESS_WRITE))]
CertificateWriter = Annotated[TenantAccess, Depends(require(Permission.CERTIFICATES_WRITE))]
MemberManager = Annotated[TenantAccess, Depends(require(Permission.MEMBERS_MANAGE))]
EmtClient = Annotated[TenantAccess, Depends(require(Permission.EMT_READOUT))]
MeterDataReader = Annotated[TenantAccess, Depends(require(Permission.METERDATA_READ))]
MeterDataWriter = Annotated[TenantAccess, Depends(require(Permission.METERDATA_WRITE))]
PlatformAdmin = Annotated[Caller, Depends(require_platform(Permission.PLATFORM_ADMIN))]
