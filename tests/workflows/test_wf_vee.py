"""Meter data validation workflows on the time-skipping server with stand-in activities: the
pending queue is worked off in bounded keyset batches (a day queued again meanwhile is left for the
next run, an empty queue opens no run), a range re-run reports its progress while it runs and
carries it across continue-as-new, a failing batch closes the run as failed, and the nightly run
validates one day once."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.meterdata_steps import (
    CloseRunInput,
    CountSeriesInput,
    OpenRunInput,
    QueuedBatch,
    QueuedBatchInput,
    RunRef,
    SeriesCount,
    SeriesPage,
    SeriesPageInput,
    VeeCounts,
)
from domain.meterdata.days import BERLIN
from domain.meterdata.vee.repository import SeriesFilter
from tests.workflows.harness import running
from workflows.meterdata_validation import (
    NightlyValidationInput,
    NightlyValidationWorkflow,
    PendingValidationInput,
    PendingValidationWorkflow,
    RangeValidationInput,
    RangeValidationWorkflow,
    daily_workflow_id,
    rerun_workflow_id,
)

DAY = "2026-03-10"


@dataclass
class VeeBook:
    """``vee_pending`` and ``vee_runs`` in memory, and series to page through."""

    queued: dict[tuple[int, str], int] = field(default_factory=dict)  # (series, day) -> enqueue stamp
    series: list[int] = field(default_factory=list)
    opened: list[OpenRunInput] = field(default_factory=list)
    closed: list[CloseRunInput] = field(default_factory=list)
    batches: list[QueuedBatchInput] = field(default_factory=list)
    pages: list[SeriesPageInput] = field(default_factory=list)
    requeue_on_first_batch: tuple[int, str] | None = None  # a delivery arriving during the first batch
    hold_pages: asyncio.Event | None = None  # pages wait for it
    page_started: asyncio.Event = field(default_factory=asyncio.Event)
    fail_page: int | None = None  # the n-th page fails for good

    def queue(self, keys: list[tuple[int, str]]) -> None:
        for k in keys:
            self.queued[k] = self.queued.get(k, 0) + 1

    @activity.defn
    async def open_validation_run(self, inp: OpenRunInput) -> RunRef:
        if inp.only_if_queued and not self.queued:
            return RunRef(run_id=None)
        self.opened.append(inp)
        return RunRef(run_id=len(self.opened))

    @activity.defn
    async def validate_queued_days(self, inp: QueuedBatchInput) -> QueuedBatch:
        self.batches.append(inp)
        after = (inp.after_series, inp.after_day) if inp.after_series is not None and inp.after_day else None
        taken = [(k, stamp) for k, stamp in sorted(self.queued.items()) if after is None or k > after][:inp.limit]
        if self.requeue_on_first_batch and len(self.batches) == 1:
            self.queue([self.requeue_on_first_batch])
        for k, stamp in taken:
            if self.queued.get(k) == stamp:  # re-queued meanwhile: stays
                del self.queued[k]
        last = taken[-1][0] if taken else None
        return QueuedBatch(taken=len(taken), last_series=last[0] if last else None, last_day=last[1] if last else None,
                           counts=VeeCounts(days=len(taken), values=96 * len(taken), versions=len(taken)))

    @activity.defn
    async def count_validation_series(self, inp: CountSeriesInput) -> SeriesCount:
        return SeriesCount(series=len(self.series))

    @activity.defn
    async def validate_series_page(self, inp: SeriesPageInput) -> SeriesPage:
        self.pages.append(inp)
        self.page_started.set()
        if self.hold_pages is not None:
            await self.hold_pages.wait()
        if self.fail_page is not None and len(self.pages) == self.fail_page:
            raise ApplicationError("database refuses (stand-in)", non_retryable=True)
        ndays = (dt.date.fromisoformat(inp.last_day) - dt.date.fromisoformat(inp.first_day)).days + 1
        page = [s for s in self.series if s > inp.after_series][:max(1, inp.max_days // ndays)]
        if not page:
            return SeriesPage(series=0, last_series=None, counts=VeeCounts())
        return SeriesPage(series=len(page), last_series=page[-1],
                          counts=VeeCounts(days=len(page) * ndays, values=96 * len(page) * ndays, versions=1))

    @activity.defn
    async def close_validation_run(self, inp: CloseRunInput) -> None:
        self.closed.append(inp)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.open_validation_run, self.validate_queued_days, self.count_validation_series,
                self.validate_series_page, self.close_validation_run]


async def test_the_queue_is_worked_off_in_keyset_batches(time_env: WorkflowEnvironment) -> None:
    book = VeeBook()
    book.queue([(s, d) for s in range(1, 121) for d in ("2026-03-09", "2026-03-10")])  # 240 days
    book.requeue_on_first_batch = (1, "2026-03-09")  # validated in batch 1 while a delivery re-queued it
    client = time_env.client
    async with running(client, book.activities()) as queue:
        result = await client.execute_workflow(PendingValidationWorkflow.run, PendingValidationInput(batch=100),
                                               id=f"vee-pending-{uuid.uuid4().hex[:6]}", task_queue=queue)
        assert result.batches == 3 and result.counts.days == 240 and result.run_id == 1
        assert [(b.after_series, b.after_day) for b in book.batches] == [(None, None), (50, "2026-03-10"),
                                                                      (100, "2026-03-10")]
        assert list(book.queued) == [(1, "2026-03-09")]  # left for the next run, not validated in a loop
        assert [(c.run_id, c.state, c.totals) for c in book.closed] == [(1, "completed", result.counts)]
        assert book.opened[0].trigger == "delivery"
        # The schedule starts it without input; the next run takes what was left.
        again = await client.execute_workflow(PendingValidationWorkflow.run, id=f"vee-pending-{uuid.uuid4().hex[:6]}",
                                              task_queue=queue)
        assert again.counts.days == 1 and not book.queued
        idle = await client.execute_workflow(PendingValidationWorkflow.run, id=f"vee-pending-{uuid.uuid4().hex[:6]}",
                                             task_queue=queue)
        assert idle.run_id is None and len(book.opened) == 2  # nothing queued: no run


async def test_a_rerun_shows_progress_and_carries_it_across_continue_as_new(time_env: WorkflowEnvironment) -> None:
    hold = asyncio.Event()
    book = VeeBook(series=list(range(1, 11)), hold_pages=hold)
    flt = SeriesFilter(obis="1-1:1.29.0")
    wid = rerun_workflow_id("2026-03-01", "2026-03-10", flt, "chain-MSB-v2")
    client = time_env.client
    async with running(client, book.activities()) as queue:
        handle = await client.start_workflow(
            RangeValidationWorkflow.run,
            RangeValidationInput(first_day="2026-03-01", last_day="2026-03-10", filter=flt, max_days=20,
                                 pages_per_run=2, reason="rule change"), id=wid, task_queue=queue)
        await asyncio.wait_for(book.page_started.wait(), 10)
        first = await handle.query(RangeValidationWorkflow.progress)
        assert (first.state, first.total_series, first.done_series, first.run_id) == ("running", 10, 0, 1)
        hold.set()
        done = await handle.result()
    assert (done.state, done.done_series, done.total_series, done.fraction) == ("completed", 10, 10, 1.0)
    assert done.counts.days == 100 and done.counts.versions == 5
    assert len(book.opened) == 1 and book.opened[0].filter == flt  # one run across continue-as-new
    assert [p.after_series for p in book.pages] == [0, 2, 4, 6, 8, 10]
    assert [(c.run_id, c.state) for c in book.closed] == [(1, "completed")]
    assert wid.startswith("vee/rerun/2026-03-01..2026-03-10/") and wid.endswith("/chain-MSB-v2")


async def test_a_failing_batch_closes_the_run_as_failed(time_env: WorkflowEnvironment) -> None:
    book = VeeBook(series=list(range(1, 6)), fail_page=2)
    client = time_env.client
    async with running(client, book.activities()) as queue:
        with pytest.raises(WorkflowFailureError):
            await client.execute_workflow(RangeValidationWorkflow.run,
                                          RangeValidationInput(first_day=DAY, last_day=DAY, max_days=2),
                                          id=f"vee-fail-{uuid.uuid4().hex[:6]}", task_queue=queue)
    assert [(c.state, c.totals and c.totals.days) for c in book.closed] == [("failed", 2)]


async def test_the_nightly_run_validates_a_day_once(time_env: WorkflowEnvironment) -> None:
    book = VeeBook(series=[1, 2, 3])
    client = time_env.client
    async with running(client, book.activities()) as queue:
        day = f"2026-03-{uuid.uuid4().int % 28 + 1:02d}"
        first = await client.execute_workflow(NightlyValidationWorkflow.run, NightlyValidationInput(day=day),
                                              id=f"vee-nightly-{uuid.uuid4().hex[:6]}", task_queue=queue)
        assert first is not None and first.counts.days == 3 and first.state == "completed"
        assert (book.opened[0].trigger, book.opened[0].first_day, book.opened[0].last_day) == ("daily", day, day)
        again = await client.execute_workflow(NightlyValidationWorkflow.run, NightlyValidationInput(day=day),
                                              id=f"vee-nightly-{uuid.uuid4().hex[:6]}", task_queue=queue)
        assert again is None and len(book.opened) == 1  # vee/daily/<day> exists: not started twice
        handle = client.get_workflow_handle(daily_workflow_id(day))
        assert (await handle.describe()).status is not None
        # Started by the schedule (no input): yesterday, the local day before the start.
        before = (await time_env.get_current_time()).astimezone(BERLIN).date()
        default = await client.execute_workflow(NightlyValidationWorkflow.run,
                                                id=f"vee-nightly-{uuid.uuid4().hex[:6]}", task_queue=queue)
        after = (await time_env.get_current_time()).astimezone(BERLIN).date()
        one = dt.timedelta(days=1)
        assert default is not None and default.first_day in {(before - one).isoformat(), (after - one).isoformat()}
