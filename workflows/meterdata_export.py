"""A meter data export (docs/mdm.md, "Export"): MSCONS to a market partner, a webhook delivery to a
billing / EDM system, or a CSV file of one series, for a period.

The workflow orchestrates only: it first sends what an earlier run recorded but did not send, then
plans batch after batch (each recorded with its content before it leaves, ``domain.meterdata.export``)
and sends each, until nothing is due. Every (series, day, version) goes to a recipient once: a batch
is found again by its key (``<workflow id>#<n>``) when a step is retried, and the items a batch
claimed are never claimed by another. A webhook delivery is retried with back-off; when the attempts
are used up the export is marked failed (visible with its last error) and the run ends ``failed``;
the next run delivers it first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.meterdata_export_steps import (
        CsvExportInput,
        FailExportInput,
        MeterDataExportSteps,
        OpenExportsInput,
        PlanExportInput,
        PlannedExport,
        SendExportInput,
    )


def export_workflow_id(recipient: str, first_day: str, last_day: str, n: int) -> str:
    """``export/<recipient>/<period>/<n>``: the n-th export run for this recipient and period."""
    period = first_day if first_day == last_day else f"{first_day}..{last_day}"
    return f"export/{recipient}/{period}/{n}"


@dataclass(frozen=True, kw_only=True)
class MeterDataExportInput:
    kind: Literal["mscons", "webhook", "csv"]
    recipient: str  # MSCONS: market partner ID; webhook: the receiver's name; CSV: who asked
    first_day: str  # ISO dates, both included
    last_day: str
    sender: str | None = None  # MSCONS: the market partner whose series are sent
    what: list[Literal["load_profiles", "readings"]] = field(default_factory=lambda: ["load_profiles"])
    batch_items: int = 1000  # (series, day or reading) per interchange or delivery
    send_attempts: int = 8
    retry_initial_s: float = 5.0
    retry_max_s: float = 600.0
    series_id: int | None = None  # CSV
    layer: Literal["raw", "validated", "final"] = "final"  # CSV
    as_of: str | None = None  # CSV: ISO time with offset


@dataclass(frozen=True, kw_only=True)
class MeterDataExportResult:
    outcome: str  # succeeded | failed
    exports: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    items: int = 0
    corrections: int = 0
    size: int = 0
    held_back: dict[str, int] = field(default_factory=dict)


_STEP_TIMEOUT = timedelta(minutes=5)
_STEP_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                          maximum_attempts=10)


async def _step(activity: Any, arg: Any) -> Any:
    return await workflow.execute_activity_method(activity, arg, start_to_close_timeout=_STEP_TIMEOUT,
                                                  retry_policy=_STEP_RETRY)


@workflow.defn(name="MeterDataExport")
class MeterDataExportWorkflow:
    def __init__(self) -> None:
        self.exports: list[int] = []
        self.sent: list[int] = []
        self.failed: list[int] = []
        self.items = self.corrections = self.size = 0
        self.held_back: dict[str, int] = {}

    @workflow.query
    def progress(self) -> MeterDataExportResult:
        return self._result("running")

    def _result(self, outcome: str) -> MeterDataExportResult:
        return MeterDataExportResult(outcome=outcome, exports=list(self.exports), sent=list(self.sent),
                                     failed=list(self.failed), items=self.items, corrections=self.corrections,
                                     size=self.size, held_back=dict(self.held_back))

    def _count(self, planned: PlannedExport) -> None:
        if planned.export_id is not None and planned.export_id not in self.exports:
            self.exports.append(planned.export_id)
            self.items += planned.items
            self.corrections += planned.corrections
            self.size += planned.size
        for reason, n in planned.held_back.items():
            self.held_back[reason] = self.held_back.get(reason, 0) + n

    @workflow.run
    async def run(self, inp: MeterDataExportInput) -> MeterDataExportResult:
        key = workflow.info().workflow_id
        if inp.kind == "csv":
            if inp.series_id is None:
                return self._result("failed")
            planned: PlannedExport = await _step(MeterDataExportSteps.write_meter_csv, CsvExportInput(
                key=f"{key}#1", series_id=inp.series_id, first_day=inp.first_day, last_day=inp.last_day,
                layer=inp.layer, as_of=inp.as_of, recipient=inp.recipient))
            self._count(planned)
            return self._result("succeeded")
        opened = await _step(MeterDataExportSteps.open_meter_exports,
                             OpenExportsInput(kind=inp.kind, recipient=inp.recipient))
        for export_id in opened.ids:
            if not await self._send(inp, export_id):
                return self._result("failed")
        n = 0
        for what in inp.what:
            cursor: str | None = None
            while True:
                n += 1
                planned = await _step(MeterDataExportSteps.plan_meter_export, PlanExportInput(
                    key=f"{key}#{n}", kind=inp.kind, what=what, recipient=inp.recipient, sender=inp.sender,
                    first_day=inp.first_day, last_day=inp.last_day, cursor=cursor, limit=inp.batch_items))
                self._count(planned)
                if planned.export_id is not None and not await self._send(inp, planned.export_id):
                    return self._result("failed")
                if planned.exhausted:
                    break
                cursor = planned.cursor
        return self._result("succeeded")

    async def _send(self, inp: MeterDataExportInput, export_id: int) -> bool:
        kind: Literal["mscons", "webhook"] = "webhook" if inp.kind == "webhook" else "mscons"
        try:
            await workflow.execute_activity_method(
                MeterDataExportSteps.send_meter_export, SendExportInput(export_id=export_id, kind=kind),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=inp.retry_initial_s), backoff_coefficient=2,
                                         maximum_interval=timedelta(seconds=inp.retry_max_s),
                                         maximum_attempts=inp.send_attempts))
        except ActivityError as err:
            cause = err.cause or err
            await _step(MeterDataExportSteps.fail_meter_export,
                        FailExportInput(export_id=export_id, error=str(cause)[:2000]))
            self.failed.append(export_id)
            return False
        if export_id not in self.sent:
            self.sent.append(export_id)
        return True
