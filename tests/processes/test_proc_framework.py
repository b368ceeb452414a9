"""The process machinery: validation before anything starts, frozen targets, conflicts, outcomes,
automatic pause on failures, resume, cancel, retry of the failed subset.

The gateways of this module are genuinely unreachable (their wake-up address has no listener, and
no simulator speaks for them), so each fails with reason ``unreachable``, whether or not a head-end
runs in the session. The fleet tests drive the same machinery to success.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.helpers import error_code

if TYPE_CHECKING:
    from core.config import Settings
    from core.temporal_clients import TemporalClients
    from domain.tenancy.service import TenantContext
    from tests.conftest import ApiUser, UserFactory
    from tests.processes.conftest import GatewayFactory

FAST = {"connect_timeout_s": 1, "attempts": 1}


async def _wait(api: httpx.AsyncClient, headers: dict[str, str], pid: str, until: Callable[[Any], bool],
                timeout: float = 90) -> Any:
    body: Any = None
    for _ in range(int(timeout * 4)):
        body = (await api.get(f"/api/v1/tenants/procs/processes/{pid}", headers=headers)).json()
        if until(body):
            return body
        await asyncio.sleep(0.25)
    raise AssertionError(f"process did not get there: {body}")


@pytest.fixture(scope="module")
async def operator(make_user: UserFactory, procs: TenantContext) -> ApiUser:
    return await make_user(tenant="procs", role="operator")


async def test_bad_starts_are_refused_before_anything_runs(api: httpx.AsyncClient, operator: ApiUser,
                                                           make_gateways: GatewayFactory, procs: TenantContext) -> None:
    (in_stock,) = await make_gateways(1, state="in_stock")
    url = "/api/v1/tenants/procs/processes"
    cases = [
        ({"type": "teleport", "target": {"gateway_ids": [in_stock]}, "reason": "x-ray"}, 400, "unknown_process_type"),
        ({"type": "time_sync", "target": {"gateway_ids": []}, "reason": "sync"}, 400, "empty_target"),
        ({"type": "time_sync", "target": {"filter": "device_id = 'EZZZ0000000000'"}, "reason": "sync"}, 400,
         "empty_target"),
        ({"type": "time_sync", "target": {"filter": "state = in_operation and ("}, "reason": "sync"}, 400,
         "invalid_filter"),
        ({"type": "time_sync", "target": {"gateway_ids": ["EEMH9999999999"]}, "reason": "sync"}, 400,
         "unknown_gateways"),
        ({"type": "time_sync", "target": {"gateway_ids": ["nonsense"]}, "reason": "sync"}, 400, "invalid_gateway_id"),
        ({"type": "time_sync", "target": {"gateway_ids": [in_stock]}, "reason": "sync"}, 409, "wrong_lifecycle_state"),
        ({"type": "time_sync", "target": {"gateway_ids": [in_stock]}, "params": {"correct_above_ms": -1},
          "reason": "sync"}, 400, "invalid_params"),
        ({"type": "logbook_readout", "target": {"gateway_ids": [in_stock]}, "params": {"logs": ["diary"]},
          "reason": "read"}, 400, "invalid_params"),
        ({"type": "time_sync", "target": {"gateway_ids": [in_stock], "filter": "x = 1"}, "reason": "sync"}, 422,
         "validation_error"),
    ]
    before = len((await api.get(f"{url}?limit=200", headers=operator.headers)).json()["items"])
    for body, status, code in cases:
        response = await api.post(url, json=body, headers=operator.headers)
        assert response.status_code == status and error_code(response) == code, (body, response.text)
    after = len((await api.get(f"{url}?limit=200", headers=operator.headers)).json()["items"])
    assert after == before  # nothing was stored for any refused start


async def test_unreachable_gateways_fail_pause_the_process_and_resume_and_retry_work(
    api: httpx.AsyncClient, operator: ApiUser, make_gateways: GatewayFactory, procs: TenantContext
) -> None:
    ids = await make_gateways(6, segment="A12")
    body = {"type": "time_sync", "target": {"filter": f"device_id in ({', '.join(ids)})"},
            "reason": "monthly clock check", "options": {**FAST, "concurrency": 2, "failure_min_samples": 2,
                                                         "failure_threshold": 0.5}}
    started = await api.post("/api/v1/tenants/procs/processes", json=body, headers=operator.headers)
    assert started.status_code == 202, started.text
    pid = started.json()["id"]
    assert started.json()["counts"]["total"] == 6 and started.json()["target"]["filter"].startswith("device_id in")

    # The same gateways cannot be in a second process at the same time.
    clash = await api.post("/api/v1/tenants/procs/processes", json={**body, "target": {"gateway_ids": ids[:1]}},
                           headers=operator.headers)
    assert clash.status_code == 409 and error_code(clash) == "gateway_busy"

    paused = await _wait(api, operator.headers, pid, lambda b: b["state"] == "paused")
    assert "failed" in paused["pause_reason"] and paused["counts"]["failed"] >= 2
    assert paused["counts"]["pending"] >= 1  # it stopped starting new gateways
    failed = (await api.get(f"/api/v1/tenants/procs/processes/{pid}/targets?state=failed",
                            headers=operator.headers)).json()["items"]
    assert failed and all(t["error_type"] == "unreachable" for t in failed)
    assert all(t["workflow_id"] == f"time_sync/{t['gateway_id']}/{pid}" for t in failed)

    resumed = await api.post(f"/api/v1/tenants/procs/processes/{pid}/resume", headers=operator.headers)
    assert resumed.status_code == 202
    # Each resume lets the next window run; the threshold pauses it again until all are done.
    done = None
    for _ in range(6):
        done = await _wait(api, operator.headers, pid, lambda b: b["state"] in ("paused", "completed"))
        if done["state"] == "completed":
            break
        await api.post(f"/api/v1/tenants/procs/processes/{pid}/resume", headers=operator.headers)
    assert done and done["state"] == "completed" and done["counts"]["failed"] == 6 and done["finished_at"]

    again = await api.post(f"/api/v1/tenants/procs/processes/{pid}/cancel", headers=operator.headers)
    assert again.status_code == 409 and error_code(again) == "process_state_conflict"

    retry = await api.post(f"/api/v1/tenants/procs/processes/{pid}/retry-failed",
                           json={"reason": "second try", "options": FAST}, headers=operator.headers)
    assert retry.status_code == 202, retry.text
    assert retry.json()["counts"]["total"] == 6 and retry.json()["target"]["retry_of"] == pid
    await api.post(f"/api/v1/tenants/procs/processes/{retry.json()['id']}/cancel", headers=operator.headers)
    await _wait(api, operator.headers, retry.json()["id"], lambda b: b["state"] == "cancelled")


async def test_cancel_stops_pending_gateways_and_auditors_cannot_steer(
    api: httpx.AsyncClient, operator: ApiUser, make_user: UserFactory, make_gateways: GatewayFactory,
    procs: TenantContext
) -> None:
    ids = await make_gateways(5)
    body = {"type": "logbook_readout", "target": {"gateway_ids": ids}, "reason": "audit request 4711",
            "options": {"connect_timeout_s": 30, "attempts": 1, "concurrency": 1}}
    started = await api.post("/api/v1/tenants/procs/processes", json=body, headers=operator.headers)
    assert started.status_code == 202
    pid = started.json()["id"]
    auditor = await make_user(tenant="procs", role="auditor")
    assert (await api.post(f"/api/v1/tenants/procs/processes/{pid}/cancel", headers=auditor.headers)).status_code == 403
    seen = (await api.get(f"/api/v1/tenants/procs/processes/{pid}", headers=auditor.headers)).json()
    assert seen["reason"] == "audit request 4711" and seen["initiator"] == operator.username

    cancelled = await api.post(f"/api/v1/tenants/procs/processes/{pid}/cancel", headers=operator.headers)
    assert cancelled.status_code == 202
    final = await _wait(api, operator.headers, pid, lambda b: b["state"] == "cancelled")
    # The one in flight is cancelled too (not recorded as a failure), and nothing is left pending.
    assert final["counts"]["cancelled"] == 5 and final["counts"]["pending"] == 0 and final["counts"]["running"] == 0
    # The gateways are free again.
    again = await api.post("/api/v1/tenants/procs/processes", json={**body, "options": FAST}, headers=operator.headers)
    assert again.status_code == 202
    await api.post(f"/api/v1/tenants/procs/processes/{again.json()['id']}/cancel", headers=operator.headers)


async def test_long_processes_continue_as_new_and_abnormal_ends_show_as_failed(
    api: httpx.AsyncClient, operator: ApiUser, make_gateways: GatewayFactory, procs: TenantContext,
    temporal_clients: TemporalClients
) -> None:
    ids = await make_gateways(7)
    body = {"type": "time_sync", "target": {"gateway_ids": ids}, "reason": "long run",
            "options": {**FAST, "concurrency": 2, "starts_per_run": 2, "failure_threshold": 1}}
    started = await api.post("/api/v1/tenants/procs/processes", json=body, headers=operator.headers)
    pid = started.json()["id"]
    done = await _wait(api, operator.headers, pid, lambda b: b["state"] == "completed")
    assert done["counts"]["failed"] == 7  # every gateway once, across the runs
    client = await temporal_clients.for_namespace(procs.namespace)
    runs = [wf async for wf in client.list_workflows(f"WorkflowId = 'mass/{pid}'")]
    assert len(runs) >= 4, "the mass workflow did not continue as new"
    assert sum(1 for wf in runs if wf.status and wf.status.name == "CONTINUED_AS_NEW") == len(runs) - 1

    # A mass workflow that dies (here: terminated by hand) leaves the process failed, not running.
    more = await make_gateways(2)
    started = await api.post("/api/v1/tenants/procs/processes", headers=operator.headers, json={
        **body, "target": {"gateway_ids": more}, "options": {"connect_timeout_s": 30, "attempts": 1}})
    pid = started.json()["id"]
    await client.get_workflow_handle(f"mass/{pid}").terminate("operator pulled the plug")
    failed = await _wait(api, operator.headers, pid, lambda b: b["state"] == "failed")
    assert failed["finished_at"]


async def test_signals_that_arrive_before_a_run_starts_are_not_lost(
    api: httpx.AsyncClient, operator: ApiUser, make_gateways: GatewayFactory, procs: TenantContext, settings: Settings,
    temporal_clients: TemporalClients
) -> None:
    """After continue-as-new, children still in flight signal the new run before its first workflow
    task; the SDK hands such buffered signals to their handlers before ``run``. Signal-with-start puts
    a signal in exactly that place, deterministically: the process must start paused by it, not fail
    its workflow task over and over."""
    from domain.processes import service
    from domain.processes.ids import mass_workflow_id
    from workflows.common import MassProcessInput, PauseRequest
    from workflows.mass import MassProcessWorkflow

    ids = await make_gateways(3)
    async with procs.sessions() as session, session.begin():
        process = await service.start(session, "time_sync", service.Target(gateway_ids=ids), None,
                                      "buffered signal check", operator.username)
    client = await temporal_clients.for_namespace(procs.namespace)
    handle = await client.start_workflow(
        MassProcessWorkflow.run,
        MassProcessInput(process_id=process.id, process_type=process.type, params=dict(process.params),
                         concurrency=process.concurrency, failure_threshold=process.failure_threshold,
                         failure_min_samples=process.failure_min_samples, initiator_ref="test",
                         connect_timeout_s=1, attempts=1),
        id=mass_workflow_id(process.id), task_queue=settings.temporal_task_queue,
        start_signal="pause", start_signal_args=[PauseRequest(reason="held before the first task")])
    held = await _wait(api, operator.headers, process.id, lambda b: b["state"] == "paused")
    progress = await handle.query(MassProcessWorkflow.progress)
    assert (progress.state, progress.running) == ("paused", 0)
    assert progress.pause_reason == "held before the first task"
    assert held["counts"]["pending"] == 3
    await handle.signal(MassProcessWorkflow.resume)
    done = await _wait(api, operator.headers, process.id, lambda b: b["state"] == "completed")
    assert done["counts"]["failed"] == 3
