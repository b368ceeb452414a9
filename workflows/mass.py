"""The mass process: one workflow per gateway under a parent that keeps a bounded sliding window of
running children, pauses, resumes and cancels on signals, pauses itself when too many fail, and
continues as new long before its history grows large. The target list stays in the database; the
history only ever holds the small window in flight.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.processes import (
        CancelPendingInput,
        CountResult,
        NextTargetsInput,
        NextTargetsResult,
        ProcessStateInput,
    )
    from domain.processes.ids import gateway_workflow_id
    from workflows.base import bookkeeping
    from workflows.common import (
        GatewayProcessInput,
        MassProcessInput,
        MassProcessResult,
        PauseRequest,
        Progress,
        TargetFinished,
        search_attributes,
    )

FETCH_BATCH = 200
# Version marker: before it, a signal handled while an iteration awaited (e.g. a cancel arriving
# during a child's start) was missed until the next signal, so a cancel waited for the child.
PATCH_SIGNALS_DURING_ITERATION = "mass-signals-during-iteration"
# Version marker: before it, the failure rate after a resume still counted the failures that had
# paused the process, so it paused again at once.
PATCH_RATE_SINCE_RESUME = "mass-failure-rate-since-resume"


def _consume(task: asyncio.Future[object]) -> None:
    if not task.cancelled():
        task.exception()


@workflow.defn(name="MassProcess")
class MassProcessWorkflow:
    # The state is set before any handler runs: after continue-as-new, children still in flight
    # signal the new run, and the SDK delivers signals already buffered before ``run`` starts.
    @workflow.init
    def __init__(self, inp: MassProcessInput) -> None:
        self.s: MassProcessInput = inp  # set before any signal handler runs
        self.exhausted = False
        self.starts_this_run = 0
        self.dirty = 0  # bumps on every signal, to wake the main loop

    # -- signals and queries -------------------------------------------------------------------
    @workflow.signal(name="target_finished")
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
        return Progress(self.s.process_id, self._state(), self.s.cursor, len(self.s.in_flight), self.s.succeeded,
                        self.s.failed, self.s.cancelled, self.s.pause_reason)

    def _state(self) -> str:
        if self.s.cancel_requested:
            return "cancelled"
        return "paused" if self.s.paused else "running"

    # -- main loop -----------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: MassProcessInput) -> MassProcessResult:
        s = self.s  # the same object @workflow.init received
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
            if not s.paused and not self.exhausted and len(s.in_flight) < s.concurrency:
                await self._start_more()
            if self.exhausted and not s.in_flight:
                break
            self._check_failure_rate()
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(s)
            seen = seen_at_top if workflow.patched(PATCH_SIGNALS_DURING_ITERATION) else self.dirty

            def something_to_do(seen: int = seen) -> bool:
                return self.dirty != seen or (not s.paused and not self.exhausted
                                              and len(s.in_flight) < s.concurrency)

            await workflow.wait_condition(something_to_do)
        final = "completed"
        await self._mirror(final, None)
        return MassProcessResult(s.process_id, final, s.succeeded, s.failed, s.cancelled)

    async def _start_more(self) -> None:
        s = self.s
        room = s.concurrency - len(s.in_flight)
        batch = await bookkeeping("next_process_targets",
                                  NextTargetsInput(s.process_id, s.cursor, min(room, FETCH_BATCH)), NextTargetsResult)
        if not batch.targets:
            self.exhausted = True
            return
        parent_id = workflow.info().workflow_id
        starts = []
        for target in batch.targets:
            s.in_flight[target.seq] = target.gateway_id
            s.cursor = target.seq
            starts.append(workflow.start_child_workflow(
                s.workflow_type,
                GatewayProcessInput(s.process_id, target.seq, target.gateway_id, s.process_type, s.params,
                                    parent_workflow_id=parent_id, initiator_ref=s.initiator_ref,
                                    connect_timeout_s=s.connect_timeout_s, attempts=s.attempts),
                id=gateway_workflow_id(s.process_type, target.gateway_id, s.process_id),
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=search_attributes(s.process_type, s.process_id, s.initiator_ref,
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
        s = self.s
        if s.paused:
            return
        ok, bad, since = s.succeeded, s.failed, ""
        if workflow.patched(PATCH_RATE_SINCE_RESUME) and (s.rate_base_succeeded or s.rate_base_failed):
            ok, bad, since = ok - s.rate_base_succeeded, bad - s.rate_base_failed, " since the last resume"
        done = ok + bad
        if done < s.failure_min_samples or not done:
            return
        rate = bad / done
        if rate > s.failure_threshold:
            s.paused = True
            s.pause_reason = (f"paused automatically: {bad} of {done} gateways failed{since} ({rate:.0%}), "
                              f"above the threshold of {s.failure_threshold:.0%}")
            self.dirty += 1

    def _should_continue_as_new(self) -> bool:
        return self.starts_this_run >= self.s.starts_per_run or workflow.info().is_continue_as_new_suggested()

    async def _mirror(self, state: str, reason: str | None) -> None:
        await bookkeeping("set_process_state", ProcessStateInput(self.s.process_id, state, reason))

    async def _cancel(self) -> MassProcessResult:
        s = self.s
        for seq, gateway in list(s.in_flight.items()):
            handle = workflow.get_external_workflow_handle(gateway_workflow_id(s.process_type, gateway, s.process_id))
            try:
                await handle.cancel()
            except Exception:  # already finished: its signal is on the way
                workflow.logger.info("child of seq %s already closed", seq)
        # Children record "cancelled" themselves and signal; wait for them (bounded).
        with suppress(asyncio.TimeoutError):
            await workflow.wait_condition(lambda: not s.in_flight, timeout=timedelta(minutes=5))
        unreported = sorted(s.in_flight)
        s.in_flight.clear()
        res = await bookkeeping("cancel_pending_targets", CancelPendingInput(s.process_id, unreported), CountResult)
        s.cancelled += res.count
        await self._mirror("cancelled", None)
        return MassProcessResult(s.process_id, "cancelled", s.succeeded, s.failed, s.cancelled)
