"""A tenant is its own database, namespace and key folder, created all or nothing."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from core import temporal
from core.config import Settings
from core.db import Databases, database_exists, tenant_db_name
from core.errors import InvalidInput
from core.temporal_clients import TemporalClients
from domain.tenancy.models import Tenant
from domain.tenancy.service import TenantContext, TenantExists, namespace_of
from operations.tenants import create_tenant

if TYPE_CHECKING:
    from temporalio.client import Client


async def test_tenant_gets_database_namespace_search_attributes_and_private_key_folder(
    tenant_a: TenantContext, dbs: Databases, settings: Settings, temporal_clients: TemporalClients
) -> None:
    assert tenant_a.db_name == tenant_db_name(dbs.control_db, "alpha")
    assert await database_exists(dbs.url, tenant_a.db_name)
    root = await temporal_clients.root()
    assert await temporal.namespace_exists(root, tenant_a.namespace)
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    attrs = await root.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=tenant_a.namespace)
    )
    assert set(temporal.SEARCH_ATTRIBUTES) <= set(attrs.custom_attributes)
    assert tenant_a.keys_dir.is_dir()
    assert stat.S_IMODE(tenant_a.keys_dir.stat().st_mode) == 0o700
    # The cyclic processes come with the tenant.
    client = await temporal_clients.for_namespace(tenant_a.namespace)
    names = sorted([s.id async for s in await client.list_schedules()])
    assert names == ["crl_refresh", "logbook_readout", "time_sync", "vee_daily", "vee_pending"]


async def test_creating_an_existing_tenant_is_a_clear_error(
    tenant_a: TenantContext, dbs: Databases, settings: Settings, temporal_clients: TemporalClients
) -> None:
    with pytest.raises(TenantExists) as err:
        await create_tenant(dbs, settings, await temporal_clients.root(), "alpha")
    assert err.value.code == "tenant_exists"


@pytest.mark.parametrize("name", ["A", "a", "Alpha", "1abc", "ab_c", "a" * 32, "-ab", "", "ab c", "démo"])
async def test_invalid_tenant_names_are_refused(
    name: str, dbs: Databases, settings: Settings, temporal_clients: TemporalClients
) -> None:
    with pytest.raises(InvalidInput) as err:
        await create_tenant(dbs, settings, await temporal_clients.root(), name)
    assert err.value.code == "invalid_tenant_name"


async def test_failure_half_way_leaves_nothing_half_created(
    dbs: Databases, settings: Settings, temporal_clients: TemporalClients
) -> None:
    root = await temporal_clients.root()
    name = "half-made"

    async def explode(_: TenantContext) -> None:
        raise RuntimeError("disk full while creating schedules")

    with pytest.raises(RuntimeError):
        await create_tenant(dbs, settings, root, name, also=[explode])

    assert not await database_exists(dbs.url, tenant_db_name(dbs.control_db, name))
    assert not (settings.keys_path / name).exists()
    assert not await _namespace_active(root, namespace_of(settings, name))
    async with dbs.control_sessions() as session:
        assert await session.scalar(select(Tenant).where(Tenant.name == name)) is None

    # And the name is free again: a retry succeeds.
    tenant = await create_tenant(dbs, settings, root, name)
    assert tenant.name == name


async def _namespace_active(client: Client, namespace: str) -> bool:
    """Deleted namespaces may linger briefly in state DELETED; only a registered one counts."""
    from temporalio.api.enums.v1 import NamespaceState
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.service import RPCError

    try:
        desc = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
    except RPCError:
        return False
    return desc.namespace_info.state == NamespaceState.NAMESPACE_STATE_REGISTERED
