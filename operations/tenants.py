"""Creating a tenant with everything it runs on: the domain's part (database, key folder, registry
row) plus its Temporal namespace and the cyclic schedules in it, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from temporalio.client import Client

from core import temporal
from core.codec import data_converter
from core.config import Settings
from core.db import Databases
from domain.tenancy import service as tenancy
from domain.tenancy.models import Tenant
from domain.tenancy.service import TenantContext, TenantStep, Undo
from operations import schedules

log = structlog.get_logger(__name__)


def namespace_step(settings: Settings, root: Client) -> TenantStep:
    """The tenant's Temporal namespace with the project's search attributes (deleted on undo when
    this step created it)."""

    async def create(tenant: TenantContext) -> Undo | None:
        created = await temporal.ensure_namespace(root, tenant.namespace, settings.temporal_namespace_retention_days)
        log.info("tenant.namespace_ready", tenant=tenant.name, namespace=tenant.namespace, created=created)
        if not created:
            return None

        async def undo() -> None:
            await temporal.delete_namespace(root, tenant.namespace)

        return undo

    return create


def schedules_step(settings: Settings, root: Client) -> TenantStep:
    """The tenant's cyclic processes (time sync, logbook readout, CRL refresh) as Temporal
    Schedules, with the tenant's payload encryption (they go with the namespace on undo)."""

    async def create(tenant: TenantContext) -> Undo | None:
        client = Client(root.service_client, namespace=tenant.namespace,
                        data_converter=data_converter(settings.resolved_secret("master_key"), tenant.namespace))
        await schedules.ensure(client, settings.temporal_task_queue)
        return None

    return create


async def create_tenant(dbs: Databases, settings: Settings, root: Client, name: str, *, display_name: str = "",
                        also: Sequence[TenantStep] = ()) -> Tenant:
    """Tenant ``name`` with database, keys, namespace and schedules, then ``also`` (e.g. the demo's
    data); a failure anywhere undoes everything."""
    return await tenancy.create_tenant(dbs, settings, name, display_name=display_name,
                                       steps=[namespace_step(settings, root), schedules_step(settings, root), *also])
