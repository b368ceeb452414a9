"""How a workflow reaches a gateway: ensure_gateway_connected on task queue ``headend`` names the
node, the command runs on that node's own task queue; every exchange is in the communication
history, visible through the API."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from headend import contract as M
from tests.headend.conftest import GATEWAYS, TENANT, HeSim, HeTenant

if TYPE_CHECKING:
    import httpx

    from core.temporal_clients import TemporalClients
    from headend.service import HeadendService
    from tests.conftest import UserFactory


@workflow.defn(sandboxed=False)
class ReadInfoThroughTheNode:
    @workflow.run
    async def run(self, gateway_id: str) -> list[str]:
        where = await workflow.execute_activity(
            "ensure_gateway_connected", M.EnsureConnectedInput(gateway_id=gateway_id, command_id="wf-ensure"),
            task_queue=M.TASK_QUEUE, result_type=M.EnsureConnectedResult,
            start_to_close_timeout=timedelta(seconds=60), retry_policy=RetryPolicy(maximum_attempts=3))
        info = await workflow.execute_activity(
            "read_device_info", M.ReadDeviceInfoInput(gateway_id=gateway_id, command_id="wf-info"),
            task_queue=where.task_queue, result_type=M.DeviceInfoResult,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=["rejected", "unsupported"]))
        return [where.node_id, where.task_queue, info.vendor]


async def test_workflow_reaches_gateway_through_node_queue(sim: HeSim, headend: HeadendService,
                                                           temporal_clients: TemporalClients, he_tenant: HeTenant,
                                                           api: httpx.AsyncClient, make_user: UserFactory) -> None:
    gid = GATEWAYS[2]
    client = await temporal_clients.for_namespace(he_tenant.ctx.namespace)
    queue = f"he-test-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[ReadInfoThroughTheNode]):
        result = await client.execute_workflow(ReadInfoThroughTheNode.run, gid, id=f"he-route-{uuid.uuid4()}",
                                               task_queue=queue, execution_timeout=timedelta(seconds=90))
    assert result == ["n1", "headend-n1", "PPC"]

    await headend.node.store.flush()
    user = await make_user(tenant=TENANT, role="operator")
    r = await api.get(f"/api/v1/tenants/{TENANT}/gateways/{gid}/communications", headers=user.headers,
                      params={"limit": 500})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    info = [i for i in items if i["command"] == "read_device_info" and i["direction"] == "out"]
    assert info and info[0]["status"] == 200 and info[0]["result"] == "ok"
    assert info[0]["correlation_id"].startswith("uuid:") and info[0]["bytes_in"] > 0 and info[0]["node_id"] == "n1"
    ids = [i["id"] for i in items]
    assert ids == sorted(ids, reverse=True)
    page = await api.get(f"/api/v1/tenants/{TENANT}/gateways/{gid}/communications", headers=user.headers,
                         params={"limit": 1})
    assert page.json()["next_after"] == str(page.json()["items"][0]["id"])

    r = await api.get(f"/api/v1/tenants/{TENANT}/gateways/{gid}/connection", headers=user.headers)
    assert r.json()["connected"] is True and r.json()["node_id"] == "n1"
    r = await api.get(f"/api/v1/tenants/{TENANT}/gateways/not-a-gateway/communications", headers=user.headers)
    assert r.status_code == 400
    r = await api.get(f"/api/v1/tenants/{TENANT}/gateways/{gid}/communications")
    assert r.status_code == 401
