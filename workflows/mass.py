"""The mass process: one workflow per gateway under a parent that keeps a bounded sliding window of
running children, pauses, resumes and cancels on signals, pauses itself when too many fail, and
continues as new long before its history grows large. The target list stays in the database; the
history only ever holds the small window in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.processes import CancelPendingInput, NextTargetsInput, ProcessActivities, ProcessStateInput
    from domain.processes.ids import gateway_workflow_id
    from workflows.base import bookkeeping
    from workflows.common import (
        TARGET_FINISHED_SIGNAL,
        MassProcessInput,
        MassProcessResult,
        PauseRequest,
        Progress,
        TargetFinished,
        search_attributes,
    )
    from workflows.processes import PROCESS_WORKFLOWS

FETCH_BATCH = 200
# Version marker: before it, a signal handled while an iteration awaited (e.g. a cancel arriving
# during a child's start) was missed until the next signal, so a cancel waited for the child.
PATCH_SIGNALS_DURING_ITERATION = "mass-signals-during-iteration"
# Version marker: before it, the failure rate after a resume still counted the failures that had
# paused the process, so it paused again at once.
PATCH_RATE_SINCE_RESUME = "mass-failure-rate-since-resume"


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


@dataclass
class MassProcessState:
    """What a run changes: the window in flight, the cursor, counters, pause and cancel. Carried
    across continue-as-new in the fields of the same names of :class:`MassProcessInput`."""

    cursor: int
    in_flight: dict[int, str] = field(default_factory=dict)  # seq -> gateway
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    paused: bool = False
    pause_reason: str | None = None
    cancel_requested: bool = False
    runs: int = 0
    rate_base_succeeded: int = 0
    rate_base_failed: int = 0

    @classmethod
    def of(cls, inp: MassProcessInput) -> MassProcessState:
        return cls(**{f.name: getattr(inp, f.name) for f in dataclasses.fields(cls)})

    def carried(self, inp: MassProcessInput) -> MassProcessInput:
        """The input of the next run: the same process, this state."""
        return dataclasses.replace(inp, **dataclasses.asdict(self))


@workflow.defn(name="MassProcess")
class MassProcessWorkflow:
    # The state is set before any handler runs: after continue-as-new, children still in flight
    # signal the new run, and the SDK delivers signals already buffered before ``run`` starts.
    @workflow.init
    def __init__(self, inp: MassProcessInput) -> None:
        self.inp = inp
        self.s = MassProcessState.of(inp)  # set before any signal handler runs
        self.exhausted = False
        self.starts_this_run = 0
        self.dirty = 0  # bumps on every signal, to wake the main loop

    # -- signals and queries -------------------------------------------------------------------
    @workflow.signal(name=TARGET_FINISHED_SIGNAL)
    def target_finished(self, done: TargetFinished) -> None:
        if self.s.in_flight.pop(done.seq, None) is None:
            return  # duplicate or late signal
        if done.outcome == "succeeded":
            self.s.succeeded += 1
        elif done.outcome == "cancelled":
            self.s.cancelled += 1
        else:
            self.s.failed += 1
        self.dirty += 1

    @workflow.signal
    def pause(self, request: PauseRequest) -> None:
        if not self.s.cancel_requested:
            self.s.paused, self.s.pause_reason = True, request.reason
            self.dirty += 1

    @workflow.signal
    def resume(self) -> None:
        if not self.s.cancel_requested:
            self.s.paused, self.s.pause_reason = False, None
            self.s.rate_base_succeeded, self.s.rate_base_failed = self.s.succeeded, self.s.failed
            self.dirty += 1

    @workflow.signal
    def cancel(self) -> None:
        self.s.cancel_requested = True
        self.dirty += 1

    @workflow.query
    def progress(self) -> Progress:
        s = self.s
        return Progress(process_id=self.inp.process_id, state=self._state(), started=s.cursor,
                        running=len(s.in_flight), succeeded=s.succeeded, failed=s.failed, cancelled=s.cancelled,
                        pause_reason=s.pause_reason)

    def _state(self) -> str:
        if self.s.cancel_requested:
            return "cancelled"
        return "paused" if self.s.paused else "running"

    # -- main loop -----------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: MassProcessInput) -> MassProcessResult:
        s = self.s  # built by @workflow.init from the same input
        last_state = None if s.runs == 0 else self._state()
        s.runs += 1
        while True:
            # Signals handled while this iteration awaits (a child start, a fetch) must wake the
            # wait below, so what they changed is compared from here, not from after the awaits.
            seen_at_top = self.dirty
            state = self._state()
            if state != last_state and state != "cancelled":
                await self._mirror(state, s.pause_reason)
                last_state = state
            if s.cancel_requested:
                return await self._cancel()
            if not s.paused and not self.exhausted and len(s.in_flight) < inp.concurrency:
                await self._start_more()
            if self.exhausted and not s.in_flight:
                break
            self._check_failure_rate()
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(s.carried(inp))
            seen = seen_at_top if workflow.patched(PATCH_SIGNALS_DURING_ITERATION) else self.dirty

            def something_to_do(seen: int = seen) -> bool:
                return self.dirty != seen or (not s.paused and not self.exhausted
                                              and len(s.in_flight) < inp.concurrency)

            await workflow.wait_condition(something_to_do)
        final = "completed"
        await self._mirror(final, None)
        return MassProcessResult(process_id=inp.process_id, state=final, succeeded=s.succeeded, failed=s.failed,
                                 cancelled=s.cancelled)

    async def _start_more(self) -> None:
        s, inp = self.s, self.inp
        room = inp.concurrency - len(s.in_flight)
        batch = await bookkeeping(ProcessActivities.next_process_targets, NextTargetsInput(
            process_id=inp.process_id, after_seq=s.cursor, limit=min(room, FETCH_BATCH)))
        if not batch.targets:
            self.exhausted = True
            return
        parent_id = workflow.info().workflow_id
        child = PROCESS_WORKFLOWS[inp.process_type]
        starts = []
        for target in batch.targets:
            s.in_flight[target.seq] = target.gateway_id
            s.cursor = target.seq
            starts.append(workflow.start_child_workflow(
                child.run,
                child.input_for(process_id=inp.process_id, seq=target.seq, gateway_id=target.gateway_id,
                                process_type=inp.process_type, params=inp.params, parent_workflow_id=parent_id,
                                initiator_ref=inp.initiator_ref, connect_timeout_s=inp.connect_timeout_s,
                                attempts=inp.attempts),
                id=gateway_workflow_id(inp.process_type, target.gateway_id, inp.process_id),
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=search_attributes(inp.process_type, inp.process_id, inp.initiator_ref,
                                                    target.gateway_id),
            ))
        # Started together: one workflow task for the whole batch, not one per child.
        for outcome in await asyncio.gather(*starts, return_exceptions=True):
            # Already started by an earlier run before continue-as-new: its signal will come.
            if isinstance(outcome, BaseException) and not isinstance(outcome, WorkflowAlreadyStartedError):
                raise outcome
            if not isinstance(outcome, BaseException):
                # Outcomes arrive by signal; take the handle's result off the books so a failed
                # child is not reported as an "exception never retrieved".
                outcome.add_done_callback(_consume)
        self.starts_this_run += len(starts)

    def _check_failure_rate(self) -> None:
        s, inp = self.s, self.inp
        if s.paused:
            return
        ok, bad, since = s.succeeded, s.failed, ""
        if workflow.patched(PATCH_RATE_SINCE_RESUME) and (s.rate_base_succeeded or s.rate_base_failed):
            ok, bad, since = ok - s.rate_base_succeeded, bad - s.rate_base_failed, " since the last resume"
        done = ok + bad
        if done < inp.failure_min_samples or not done:
            return
        rate = bad / done
        if rate > inp.failure_threshold:
            s.paused = True
            s.pause_reason = (f"paused automatically: {bad} of {done} gateways failed{since} ({rate:.0%}), "
                              f"above the threshold of {inp.failure_threshold:.0%}")
            self.dirty += 1

    def _should_continue_as_new(self) -> bool:
        return self.starts_this_run >= self.inp.starts_per_run or workflow.info().is_continue_as_new_suggested()

    async def _mirror(self, state: str, reason: str | None) -> None:
        await bookkeeping(ProcessActivities.set_process_state, ProcessStateInput(
            process_id=self.inp.process_id, state=state, pause_reason=reason))

    async def _cancel(self) -> MassProcessResult:
        s, inp = self.s, self.inp
        for seq, gateway in list(s.in_flight.items()):
            handle = workflow.get_external_workflow_handle(
                gateway_workflow_id(inp.process_type, gateway, inp.process_id))
            try:
                await handle.cancel()
            except Exception:  # already finished: its signal is on the way
                workflow.logger.info("child of seq %s already closed", seq)
        # Children record "cancelled" themselves and signal; wait for them (bounded).
        with suppress(asyncio.TimeoutError):
            await workflow.wait_condition(lambda: not s.in_flight, timeout=timedelta(minutes=5))
        unreported = sorted(s.in_flight)
        s.in_flight.clear()
        res = await bookkeeping(ProcessActivities.cancel_pending_targets, CancelPendingInput(
            process_id=inp.process_id, unreported=unreported))
        s.cancelled += res.count
        await self._mirror("cancelled", None)
        return MassProcessResult(process_id=inp.process_id, state="cancelled", succeeded=s.succeeded, failed=s.failed,
                                 cancelled=s.cancelled)
