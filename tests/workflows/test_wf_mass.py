"""The mass process on the time-skipping server: it pauses itself when too many gateways fail and
counts only what came after a resume; a cancel waits for the children a bounded time; it continues
as new with children in flight and still counts every one of them."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.processes.ids import mass_workflow_id
from tests.workflows.harness import running
from tests.workflows.standins import HeadendNode, ProcessBook, gateways
from workflows.common import MassProcessInput, MassProcessResult
from workflows.mass import MassProcessWorkflow


def _input(process_id: str, *, concurrency: int = 1, starts_per_run: int = 1000) -> MassProcessInput:
    return MassProcessInput(process_id=process_id, process_type="time_sync", params={}, initiator_ref="test",
                            concurrency=concurrency, failure_threshold=0.7, failure_min_samples=3,
                            connect_timeout_s=10.0, attempts=1, starts_per_run=starts_per_run)


async def _start(client: Client, queue: str, inp: MassProcessInput
                 ) -> WorkflowHandle[MassProcessWorkflow, MassProcessResult]:
    return await client.start_workflow(MassProcessWorkflow.run, inp, id=mass_workflow_id(inp.process_id),
                                       task_queue=queue)


async def test_too_many_failures_pause_it_and_a_resume_counts_only_what_follows(time_env: WorkflowEnvironment) -> None:
    """20 gateways, the first 5 reject: after 3 of 3 failed (above 70 %) the process pauses itself;
    after the resume 2 more fail among 3 (67 %, below the threshold), and it completes."""
    fleet = gateways(20)
    book = ProcessBook(gateways=fleet)
    node = HeadendNode(failing=set(fleet[:5]))
    client = time_env.client
    pid = f"p-pause-{uuid.uuid4().hex[:6]}"
    async with running(client, book.activities(), [node.ensure_gateway_connected],
                       [node.measure_clock_offset]) as queue:
        handle = await _start(client, queue, _input(pid))
        await asyncio.wait_for(book.paused.wait(), 60)
        progress = await handle.query(MassProcessWorkflow.progress)
        assert (progress.state, progress.failed, progress.succeeded) == ("paused", 3, 0)
        assert progress.pause_reason and "3 of 3 gateways failed" in progress.pause_reason
        await handle.signal(MassProcessWorkflow.resume)
        result = await handle.result()
    assert result == MassProcessResult(process_id=pid, state="completed", succeeded=15, failed=5, cancelled=0)
    assert [s for s, _ in book.states] == ["running", "paused", "running", "completed"]


async def test_cancel_waits_for_children_five_minutes_at_most(time_env: WorkflowEnvironment) -> None:
    """Children that cannot record their outcome (the database is gone) never report back: the
    cancel gives up after five minutes of workflow time and cancels their targets itself."""
    fleet = gateways(6)
    book = ProcessBook(gateways=fleet, outcomes_blocked=True)
    hold = asyncio.Event()
    node = HeadendNode(hold=hold)
    client = time_env.client
    pid = f"p-cancel-{uuid.uuid4().hex[:6]}"
    async with running(client, book.activities(), [node.ensure_gateway_connected],
                       [node.measure_clock_offset]) as queue:
        handle = await _start(client, queue, _input(pid, concurrency=3))
        for _ in range(3):  # the three children in flight are at their command (held)
            await asyncio.wait_for(node.arrived.get(), 60)
        started = await time_env.get_current_time()
        await handle.signal(MassProcessWorkflow.cancel)
        hold.set()
        result = await handle.result()
        waited = await time_env.get_current_time() - started
        book.outcomes_blocked = False  # let the abandoned children finish their bookkeeping
    assert result.state == "cancelled" and result.cancelled == 6
    assert sorted(book.cancelled_unreported) == [1, 2, 3]
    assert waited.total_seconds() >= 300


async def test_continue_as_new_with_children_in_flight_counts_them_all(time_env: WorkflowEnvironment) -> None:
    """Three starts per run, two in flight: the children that finish after a continue-as-new signal
    the new run, and every one of the 9 gateways is counted once."""
    fleet = gateways(9)
    book = ProcessBook(gateways=fleet)
    node = HeadendNode(delay_s=0.3)
    client = time_env.client
    pid = f"p-can-{uuid.uuid4().hex[:6]}"
    async with running(client, book.activities(), [node.ensure_gateway_connected],
                       [node.measure_clock_offset]) as queue:
        handle = await _start(client, queue, _input(pid, concurrency=2, starts_per_run=3))
        result = await handle.result()
        runs = await _runs(client, mass_workflow_id(pid), handle.first_execution_run_id)
    assert result == MassProcessResult(process_id=pid, state="completed", succeeded=9, failed=0, cancelled=0)
    assert len(book.outcomes) == 9
    assert len(runs) >= 3  # 9 gateways at 3 starts per run


async def _runs(client: Client, workflow_id: str, run_id: str | None) -> list[str]:
    """The run IDs of a workflow's chain of continue-as-new, from the first."""
    chain: list[str] = []
    while run_id:
        chain.append(run_id)
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        last = history.events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.HasField("workflow_execution_continued_as_new_event_attributes") else None)
    return chain
