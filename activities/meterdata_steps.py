"""Steps of meter data validation (VEE): open and close a run, validate the next batch of queued
days, count and validate the next page of series over a range. Each opens one transaction, calls
``domain.meterdata.vee.service`` and returns counts; the days themselves never travel through
Temporal. Dates are ISO strings (``YYYY-MM-DD``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from temporalio import activity

from activities.steps_common import Steps, domain_refusals
from domain.meterdata.vee import queue
from domain.meterdata.vee import service as vee
from domain.meterdata.vee.repository import SeriesFilter


@dataclass(frozen=True, kw_only=True)
class VeeCounts:
    """What a batch (or a whole run) did."""

    days: int = 0
    values: int = 0
    versions: int = 0
    findings: int = 0
    substitutes: int = 0
    missing: int = 0

    def plus(self, other: VeeCounts) -> VeeCounts:
        return VeeCounts(days=self.days + other.days, values=self.values + other.values,
                         versions=self.versions + other.versions, findings=self.findings + other.findings,
                         substitutes=self.substitutes + other.substitutes, missing=self.missing + other.missing)


def _counts(result: vee.BatchResult) -> VeeCounts:
    return VeeCounts(**result.counts())


def _day(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


@dataclass(frozen=True, kw_only=True)
class OpenRunInput:
    trigger: str  # delivery | daily | rerun
    initiator: str
    reason: str | None = None
    first_day: str | None = None
    last_day: str | None = None
    filter: SeriesFilter | None = None
    only_if_queued: bool = False  # delivery runs: no run when nothing is queued


@dataclass(frozen=True, kw_only=True)
class RunRef:
    run_id: int | None  # None: nothing queued


@dataclass(frozen=True, kw_only=True)
class QueuedBatchInput:
    run_id: int
    after_series: int | None = None
    after_day: str | None = None
    limit: int = 500


@dataclass(frozen=True, kw_only=True)
class QueuedBatch:
    taken: int
    last_series: int | None
    last_day: str | None
    counts: VeeCounts


@dataclass(frozen=True, kw_only=True)
class CountSeriesInput:
    filter: SeriesFilter = field(default_factory=SeriesFilter)


@dataclass(frozen=True, kw_only=True)
class SeriesCount:
    series: int


@dataclass(frozen=True, kw_only=True)
class SeriesPageInput:
    run_id: int
    first_day: str
    last_day: str
    filter: SeriesFilter = field(default_factory=SeriesFilter)
    after_series: int = 0
    max_days: int = 1000


@dataclass(frozen=True, kw_only=True)
class SeriesPage:
    series: int
    last_series: int | None  # None: no series left
    counts: VeeCounts


@dataclass(frozen=True, kw_only=True)
class CloseRunInput:
    run_id: int
    state: str = "completed"  # completed | failed
    totals: VeeCounts | None = None


class MeterDataSteps(Steps):
    @activity.defn
    @domain_refusals
    async def open_validation_run(self, inp: OpenRunInput) -> RunRef:
        """The run of the calling workflow (the same one on a retry or after continue-as-new)."""
        async with self._session() as session, session.begin():
            if inp.only_if_queued and not await queue.any_queued(session):
                return RunRef(run_id=None)
            run_id = await vee.open_run(session, trigger=inp.trigger, workflow_id=activity.info().workflow_id,
                                        initiator=inp.initiator, reason=inp.reason, first=_day(inp.first_day),
                                        last=_day(inp.last_day), flt=inp.filter)
        return RunRef(run_id=run_id)

    @activity.defn
    async def validate_queued_days(self, inp: QueuedBatchInput) -> QueuedBatch:
        after = (inp.after_series, dt.date.fromisoformat(inp.after_day)) \
            if inp.after_series is not None and inp.after_day else None
        async with self._session() as session, session.begin():
            batch = await vee.validate_queued(session, inp.run_id, after, inp.limit)
        return QueuedBatch(taken=batch.taken, last_series=batch.last[0] if batch.last else None,
                           last_day=batch.last[1].isoformat() if batch.last else None, counts=_counts(batch.result))

    @activity.defn
    async def count_validation_series(self, inp: CountSeriesInput) -> SeriesCount:
        async with self._session() as session, session.begin():
            return SeriesCount(series=await vee.count_series(session, inp.filter))

    @activity.defn
    async def validate_series_page(self, inp: SeriesPageInput) -> SeriesPage:
        first, last = dt.date.fromisoformat(inp.first_day), dt.date.fromisoformat(inp.last_day)
        async with self._session() as session, session.begin():
            page = await vee.validate_range_page(session, inp.run_id, inp.filter, first, last, inp.after_series,
                                                 inp.max_days)
        return SeriesPage(series=page.series, last_series=page.last_series, counts=_counts(page.result))

    @activity.defn
    async def close_validation_run(self, inp: CloseRunInput) -> None:
        totals = vee.BatchResult(**vars(inp.totals)) if inp.totals else None
        async with self._session() as session, session.begin():
            await vee.close_run(session, inp.run_id, state=inp.state, totals=totals)
