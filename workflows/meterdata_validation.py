"""Meter data validation (VEE, docs/mdm.md) as workflows; they only orchestrate, the rules run in
the activities' domain calls:

* ``MeterDataValidationPending`` (schedule ``vee_pending``, every minute): validates what deliveries
  queued, in bounded batches in keyset order (a day queued again meanwhile waits for the next run).
* ``MeterDataValidationNightly`` (schedule ``vee_daily``): yesterday (local day) for every profile
  series, so a day nobody delivered for becomes a gap and is estimated; a child
  ``MeterDataValidation`` with the ID ``vee/daily/<day>`` (a day done is not started again; a
  failed one may be).
* ``MeterDataValidation``: a date range over a filter of series, page by page of series (keyset),
  writing new versions only where results differ; ``progress`` is queryable, for a CLI's bar.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.meterdata_steps import (
        CloseRunInput,
        CountSeriesInput,
        MeterDataSteps,
        OpenRunInput,
        QueuedBatchInput,
        SeriesPageInput,
        VeeCounts,
    )
    from domain.meterdata.days import BERLIN
    from domain.meterdata.vee.repository import SeriesFilter

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1),
                     maximum_attempts=10)
_SHORT = timedelta(seconds=60)
_BATCH = timedelta(minutes=10)
PAGES_PER_RUN = 500  # continue-as-new after this many pages (or when Temporal suggests it)


def rerun_workflow_id(first_day: str, last_day: str, flt: SeriesFilter, key: str) -> str:
    """The ID of a re-run: the same request (range, filter, the caller's ``key``, e.g. the chain
    version it follows or a request ID) is started once."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(flt), sort_keys=True).encode()).hexdigest()[:12]
    return f"vee/rerun/{first_day}..{last_day}/{digest}/{key}"


def daily_workflow_id(day: str) -> str:
    return f"vee/daily/{day}"


# -- after deliveries ------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class PendingValidationInput:
    batch: int = 500  # (series, day) per activity
    max_batches: int = 120  # per run; the next schedule run takes the rest


@dataclass(frozen=True, kw_only=True)
class PendingValidationResult:
    run_id: int | None
    batches: int
    counts: VeeCounts


@workflow.defn(name="MeterDataValidationPending")
class PendingValidationWorkflow:
    @workflow.run
    async def run(self, inp: PendingValidationInput | None = None) -> PendingValidationResult:
        inp = inp or PendingValidationInput()  # the schedule starts it without input
        ref = await workflow.execute_activity_method(
            MeterDataSteps.open_validation_run,
            OpenRunInput(trigger="delivery", initiator="schedule:vee_pending", only_if_queued=True),
            start_to_close_timeout=_SHORT, retry_policy=_RETRY)
        if ref.run_id is None:
            return PendingValidationResult(run_id=None, batches=0, counts=VeeCounts())
        counts, batches = VeeCounts(), 0
        after_series: int | None = None
        after_day: str | None = None
        try:
            while batches < inp.max_batches:
                batch = await workflow.execute_activity_method(
                    MeterDataSteps.validate_queued_days,
                    QueuedBatchInput(run_id=ref.run_id, after_series=after_series, after_day=after_day,
                                     limit=inp.batch),
                    start_to_close_timeout=_BATCH, retry_policy=_RETRY)
                batches += 1
                counts = counts.plus(batch.counts)
                if batch.taken < inp.batch:
                    break
                after_series, after_day = batch.last_series, batch.last_day
        except (Exception, asyncio.CancelledError):
            await _close(ref.run_id, "failed", counts)
            raise
        await _close(ref.run_id, "completed", counts)
        return PendingValidationResult(run_id=ref.run_id, batches=batches, counts=counts)


async def _close(run_id: int, state: str, totals: VeeCounts) -> None:
    await workflow.execute_activity_method(MeterDataSteps.close_validation_run,
                                           CloseRunInput(run_id=run_id, state=state, totals=totals),
                                           start_to_close_timeout=_SHORT, retry_policy=_RETRY)


# -- over a range ----------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class RangeValidationInput:
    first_day: str  # YYYY-MM-DD, local market days
    last_day: str
    filter: SeriesFilter = field(default_factory=SeriesFilter)
    trigger: str = "rerun"  # rerun | daily
    initiator: str = "operator"
    reason: str | None = None
    max_days: int = 1000  # (series, day) per activity
    pages_per_run: int = PAGES_PER_RUN
    # Carried across continue-as-new:
    run_id: int | None = None
    after_series: int = 0
    total_series: int | None = None
    done_series: int = 0
    counts: VeeCounts = field(default_factory=VeeCounts)


@dataclass(frozen=True, kw_only=True)
class RangeProgress:
    run_id: int | None
    state: str  # starting | running | completed | failed
    first_day: str
    last_day: str
    total_series: int | None
    done_series: int
    counts: VeeCounts

    @property
    def fraction(self) -> float:
        return self.done_series / self.total_series if self.total_series else 0.0


@workflow.defn(name="MeterDataValidation")
class RangeValidationWorkflow:
    @workflow.init
    def __init__(self, inp: RangeValidationInput) -> None:
        self.inp = inp
        self.state = "starting"
        self.run_id = inp.run_id
        self.total = inp.total_series
        self.done = inp.done_series
        self.after = inp.after_series
        self.counts = inp.counts

    @workflow.query
    def progress(self) -> RangeProgress:
        return RangeProgress(run_id=self.run_id, state=self.state, first_day=self.inp.first_day,
                             last_day=self.inp.last_day, total_series=self.total, done_series=self.done,
                             counts=self.counts)

    @workflow.run
    async def run(self, inp: RangeValidationInput) -> RangeProgress:
        if self.run_id is None:
            ref = await workflow.execute_activity_method(
                MeterDataSteps.open_validation_run,
                OpenRunInput(trigger=inp.trigger, initiator=inp.initiator, reason=inp.reason,
                             first_day=inp.first_day, last_day=inp.last_day, filter=inp.filter),
                start_to_close_timeout=_SHORT, retry_policy=_RETRY)
            self.run_id = ref.run_id
        assert self.run_id is not None
        if self.total is None:
            counted = await workflow.execute_activity_method(
                MeterDataSteps.count_validation_series, CountSeriesInput(filter=inp.filter),
                start_to_close_timeout=_SHORT, retry_policy=_RETRY)
            self.total = counted.series
        self.state = "running"
        pages = 0
        try:
            while True:
                page = await workflow.execute_activity_method(
                    MeterDataSteps.validate_series_page,
                    SeriesPageInput(run_id=self.run_id, first_day=inp.first_day, last_day=inp.last_day,
                                    filter=inp.filter, after_series=self.after, max_days=inp.max_days),
                    start_to_close_timeout=_BATCH, retry_policy=_RETRY)
                if page.last_series is None:
                    break
                self.after = page.last_series
                self.done += page.series
                self.counts = self.counts.plus(page.counts)
                pages += 1
                if pages >= inp.pages_per_run or workflow.info().is_continue_as_new_suggested():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(dataclasses.replace(
                        inp, run_id=self.run_id, after_series=self.after, total_series=self.total,
                        done_series=self.done, counts=self.counts))
        except (Exception, asyncio.CancelledError):
            self.state = "failed"
            await _close(self.run_id, "failed", self.counts)
            raise
        await _close(self.run_id, "completed", self.counts)
        self.state = "completed"
        self.total = max(self.total or 0, self.done)
        return self.progress()


# -- nightly ---------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class NightlyValidationInput:
    day: str | None = None  # default: yesterday (local day of the workflow's start)
    max_days: int = 1000


@workflow.defn(name="MeterDataValidationNightly")
class NightlyValidationWorkflow:
    @workflow.run
    async def run(self, inp: NightlyValidationInput | None = None) -> RangeProgress | None:
        inp = inp or NightlyValidationInput()  # the schedule starts it without input
        day = inp.day or (workflow.now().astimezone(BERLIN).date() - timedelta(days=1)).isoformat()
        try:
            return await workflow.execute_child_workflow(
                RangeValidationWorkflow.run,
                RangeValidationInput(first_day=day, last_day=day, trigger="daily", initiator="schedule:vee_daily",
                                     max_days=inp.max_days),
                id=daily_workflow_id(day), id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY)
        except WorkflowAlreadyStartedError:
            workflow.logger.info("day %s is being validated or was validated already", day)
            return None
