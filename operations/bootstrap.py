"""Bringing a database to the code's schema, and the demo tenant of ``make run``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from sqlalchemy import select

from core.config import Settings
from core.db import Databases, ensure_control_database_sync
from core.ids import demo_gateway_id
from core.temporal_clients import TemporalClients
from domain import migrate
from domain.certificates.demo import provision_demo_pki
from domain.demo import seed_demo_tenant
from domain.devices.repository import set_missing_wakeup_addresses
from domain.iam.models import User
from domain.iam.service import create_user, generate_password, grant
from domain.processes import repository as process_repo
from domain.processes import service as process_service
from domain.tenancy.models import Tenant
from domain.tenancy.service import context_for, migrate_all_tenants, resolve
from mdm.config import MdmSettings
from operations import processes
from operations.tenants import create_tenant

log = structlog.get_logger(__name__)

DEMO_ADMIN = "admin"


async def migrate_everything(dbs: Databases) -> list[str]:
    """Create the control database if needed and upgrade it and every tenant database."""
    created = await asyncio.to_thread(ensure_control_database_sync, dbs.url)
    if created:
        log.info("control_database.created", database=dbs.control_db)
    await migrate.upgrade("control", dbs.url)
    return await migrate_all_tenants(dbs)


@dataclass(frozen=True)
class DemoInfo:
    tenant: str
    username: str
    password: str | None  # only when the user was created now: printed once


async def ensure_demo(settings: Settings, dbs: Databases, clients: TemporalClients) -> DemoInfo:
    """The demo tenant with a platform administrator who is admin of it. Idempotent."""
    name = settings.demo_tenant
    async with dbs.control_sessions() as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = await create_tenant(dbs, settings, await clients.root(), name, display_name="Demo utility")
    password = None
    async with dbs.control_sessions() as session, session.begin():
        user = await session.scalar(select(User).where(User.username == DEMO_ADMIN))
        if user is None:
            password = generate_password()
            user = await create_user(session, DEMO_ADMIN, password, superadmin=True)
            tenant = await session.merge(tenant)
            await grant(session, user, tenant, "admin")
    ctx = context_for(dbs, tenant)
    mdm = MdmSettings()
    await seed_demo_tenant(settings, ctx, endpoint_of=lambda mp_id: mdm.endpoint(name, mp_id))
    # Last, after the fleet exists, so gateway certificates link to their gateway records.
    await provision_demo_pki(settings, ctx, settings.demo_fleet_size)
    return DemoInfo(tenant=name, username=DEMO_ADMIN, password=password)


async def point_demo_wakeups(settings: Settings, dbs: Databases, address: str) -> None:
    """Demo gateways without a wake-up address get ``address`` (the simulator's UDP socket)."""
    tenant = await resolve(dbs, settings.demo_tenant)
    ids = [demo_gateway_id(i) for i in range(settings.demo_fleet_size)]
    async with tenant.sessions() as session, session.begin():
        await set_missing_wakeup_addresses(session, ids, address)


async def start_demo_rollout(settings: Settings, dbs: Databases, clients: TemporalClients) -> str | None:
    """Bring the demo gateways' evaluation profiles to the demo TAF orders once, so they start
    delivering meter data to the MDM: a profile rollout over every gateway in operation, unless one
    was started before (a second ``make run`` finds it). Returns the process id started now."""
    tenant = await resolve(dbs, settings.demo_tenant)
    async with tenant.sessions() as session:
        earlier = (await session.scalars(process_repo.listing(type_="profile_rollout", limit=1))).first()
    if earlier is not None:
        return None
    process = await processes.start(
        tenant, await clients.for_namespace(tenant.namespace), settings.temporal_task_queue, "profile_rollout",
        process_service.Target(filter="state = in_operation"), {}, "demo: evaluation profiles for the demo TAF orders",
        processes.Initiator(username="gridgate up", ref="system:demo"),
        process_service.StartOptions(concurrency=25, skip_busy=True))
    log.info("demo.rollout_started", process=process.id, gateways=process.total)
    return process.id
