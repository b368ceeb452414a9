"""Cyclic processes, started by the tenant's Temporal Schedules: a scheduled mass process (time
sync, logbook readout over a filter) and the CRL refresh."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.schedule_steps import RevocationSummary, ScheduledProcessInput, ScheduleSteps
    from domain.processes.ids import mass_workflow_id
    from workflows.base import bookkeeping
    from workflows.common import MassProcessInput, MassProcessResult, search_attributes
    from workflows.mass import MassProcessWorkflow


@workflow.defn(name="ScheduledProcess")
class ScheduledProcessWorkflow:
    @workflow.run
    async def run(self, inp: ScheduledProcessInput) -> MassProcessResult | None:
        start = await bookkeeping(ScheduleSteps.freeze_scheduled_process, inp)
        if start.process_id is None:
            workflow.logger.info("schedule %s: nothing to do (%s)", inp.schedule, start.why)
            return None
        initiator = f"schedule:{inp.schedule}"
        return await workflow.execute_child_workflow(
            MassProcessWorkflow.run,
            MassProcessInput(process_id=start.process_id, process_type=inp.process_type, params=start.params,
                             concurrency=start.concurrency, failure_threshold=start.failure_threshold,
                             failure_min_samples=start.failure_min_samples, initiator_ref=initiator),
            id=mass_workflow_id(start.process_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=search_attributes(inp.process_type, start.process_id, initiator),
        )


@workflow.defn(name="CrlRefresh")
class CrlRefreshWorkflow:
    @workflow.run
    async def run(self) -> RevocationSummary:
        return await workflow.execute_activity_method(ScheduleSteps.refresh_certificate_revocation,
                                                      start_to_close_timeout=timedelta(minutes=10))
