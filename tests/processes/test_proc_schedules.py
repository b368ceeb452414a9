"""Cyclic processes: every tenant gets its schedules; operators change interval, pause, and run now."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx

from tests.helpers import error_code

if TYPE_CHECKING:
    from core.temporal_clients import TemporalClients
    from domain.tenancy.service import TenantContext
    from tests.conftest import UserFactory


async def _schedules(api: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    for _ in range(80):  # the worker creates them when it starts serving the tenant
        response = await api.get("/api/v1/tenants/procs/schedules", headers=headers)
        if response.status_code == 200:
            return response.json()
        await asyncio.sleep(0.25)
    raise AssertionError(response.text)


async def test_schedules_exist_change_and_run(api: httpx.AsyncClient, make_user: UserFactory, procs: TenantContext,
                                              temporal_clients: TemporalClients) -> None:
    operator = await make_user(tenant="procs", role="operator")
    auditor = await make_user(tenant="procs", role="auditor")
    listed = {s["name"]: s for s in await _schedules(api, auditor.headers)}
    assert set(listed) == {"time_sync", "logbook_readout", "crl_refresh", "vee_pending", "vee_daily"}
    assert listed["time_sync"]["interval_s"] == 86400 and not listed["time_sync"]["paused"]
    assert listed["time_sync"]["filter"] == "state = in_operation"

    change = {"interval_s": 3600, "paused": True, "filter": "state = in_operation and segment = A12"}
    changed = await api.patch("/api/v1/tenants/procs/schedules/time_sync", headers=operator.headers, json=change)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["interval_s"] == 3600 and body["paused"] and body["filter"].endswith("segment = A12")
    audit = await api.get("/api/v1/tenants/procs/audit?object_type=schedule&object_id=time_sync",
                          headers=auditor.headers)
    assert audit.json()["items"][0]["changes"]["interval_s"] == {"old": 86400, "new": 3600}

    bad = await api.patch("/api/v1/tenants/procs/schedules/time_sync", headers=operator.headers,
                          json={"filter": "segment = ("})
    assert bad.status_code == 400 and error_code(bad) == "invalid_filter"
    unknown = await api.patch("/api/v1/tenants/procs/schedules/coffee", headers=operator.headers, json={})
    assert unknown.status_code == 404 and error_code(unknown) == "schedule_not_found"
    denied = await api.patch("/api/v1/tenants/procs/schedules/time_sync", headers=auditor.headers, json={})
    assert denied.status_code == 403

    # Run the CRL refresh now: a real workflow in the tenant's namespace refreshes revocation.
    run = await api.post("/api/v1/tenants/procs/schedules/crl_refresh/trigger", headers=operator.headers)
    assert run.status_code == 202
    client = await temporal_clients.for_namespace(procs.namespace)
    for _ in range(120):
        recent = [wf async for wf in client.list_workflows("WorkflowType = 'CrlRefresh'")]
        if recent and recent[0].status and recent[0].status.name == "COMPLETED":
            break
        await asyncio.sleep(0.25)
    assert recent and recent[0].status and recent[0].status.name == "COMPLETED"
