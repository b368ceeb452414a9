"""Platform administration: tenants and users (superadmin), the tenant list of the caller."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select

from api.deps import CurrentCaller, PlatformAdmin, StateDep, TenantReader
from api.schemas import TenantCreate, TenantOut, UserCreate, UserCreated, UserOut
from domain.iam.models import User
from domain.iam.service import create_user, generate_password, tenants_of
from domain.tenancy.models import Tenant
from domain.tenancy.service import get_tenant
from operations.tenants import create_tenant

router = APIRouter(prefix="/api/v1", tags=["platform"])


def _tenant_out(t: Tenant) -> TenantOut:
    return TenantOut(name=t.name, display_name=t.display_name, namespace=t.namespace,
                     created_at=t.created_at, created_by=t.created_by)


@router.get("/tenants", response_model=list[TenantOut])
async def list_my_tenants(state: StateDep, caller: CurrentCaller) -> list[TenantOut]:
    """Tenants the caller belongs to (all of them for a superadmin)."""
    async with state.dbs.control_sessions() as session:
        user = await session.get(User, caller.user_id)
        assert user is not None
        return [_tenant_out(t) for t, _ in await tenants_of(session, user)]


@router.post("/tenants", response_model=TenantOut, status_code=status.HTTP_201_CREATED)
async def create(state: StateDep, _: PlatformAdmin, body: TenantCreate) -> TenantOut:
    client = await state.temporal.root()
    tenant = await create_tenant(state.dbs, state.settings, client, body.name, display_name=body.display_name)
    return _tenant_out(tenant)


@router.get("/tenants/{tenant}", response_model=TenantOut)
async def get(state: StateDep, access: TenantReader) -> TenantOut:
    async with state.dbs.control_sessions() as session:
        return _tenant_out(await get_tenant(session, access.tenant.name))


@router.get("/users", response_model=list[UserOut])
async def list_users(state: StateDep, _: PlatformAdmin) -> list[UserOut]:
    async with state.dbs.control_sessions() as session:
        users = (await session.scalars(select(User).order_by(User.username))).all()
    return [UserOut(username=u.username, is_superadmin=u.is_superadmin, is_active=u.is_active,
                    created_at=u.created_at) for u in users]


@router.post("/users", response_model=UserCreated, status_code=status.HTTP_201_CREATED)
async def add_user(state: StateDep, _: PlatformAdmin, body: UserCreate) -> UserCreated:
    password = body.password or generate_password()
    async with state.dbs.control_sessions() as session, session.begin():
        user = await create_user(session, body.username, password, superadmin=body.superadmin)
    return UserCreated(username=user.username, is_superadmin=user.is_superadmin, is_active=user.is_active,
                       created_at=user.created_at, generated_password=None if body.password else password)
