"""The worker serves each tenant's namespace with activities bound to that tenant's database."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

from activities.selfcheck import SelfCheckInput, SelfCheckResult
from core.temporal_clients import TemporalClients
from domain.tenancy.service import TenantContext
from worker import TenantWorkers

if TYPE_CHECKING:
    from core.config import Settings
    from core.db import Databases


async def test_each_namespace_is_served_by_its_own_tenant_worker(
    settings: Settings,
    dbs: Databases,
    temporal_clients: TemporalClients,
    tenant_a: TenantContext,
    tenant_b: TenantContext,
) -> None:
    task_queue = f"selfcheck-{uuid.uuid4().hex[:8]}"
    local = settings.model_copy(update={"temporal_task_queue": task_queue})
    workers = TenantWorkers(local, dbs, temporal_clients)
    await workers.sync()
    try:
        assert {"alpha", "beta"} <= set(workers.workers)
        results = {}
        for tenant in (tenant_a, tenant_b):
            client = await temporal_clients.for_namespace(tenant.namespace)
            results[tenant.name] = await client.execute_workflow(
                "TenantSelfCheck",
                SelfCheckInput(note="test"),
                id=f"selfcheck/{uuid.uuid4().hex}",
                task_queue=task_queue,
                result_type=SelfCheckResult,
            )
        assert results["alpha"].database == tenant_a.db_name
        assert results["beta"].database == tenant_b.db_name
        # A workflow started in alpha's namespace is invisible in beta's.
        alpha_client = await temporal_clients.for_namespace(tenant_a.namespace)
        handle = await alpha_client.start_workflow(
            "TenantSelfCheck",
            SelfCheckInput(),
            id="selfcheck/only-alpha",
            task_queue=task_queue,
        )
        await handle.result()
        beta_client = await temporal_clients.for_namespace(tenant_b.namespace)
        listed = [wf.id async for wf in beta_client.list_workflows("WorkflowId = 'selfcheck/only-alpha'")]
        assert listed == []
    finally:
        await asyncio.wait_for(workers.shutdown(), 30)
