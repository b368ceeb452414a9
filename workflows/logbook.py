"""Logbook readout of one gateway: every requested log from the record after the last one stored,
page by page, stored structured (level, outcome, text, time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.gateway_commands import GatewayCommandActivities as Commands
    from activities.gwa_steps import GwaSteps, LogCursorInput, StoreLogEntriesInput
    from domain.processes.types import LogbookReadoutParams
    from headend import contract as gc
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink, GatewayStepFailed

PATCH_SKIP_UNSUPPORTED = "logbook-skip-unsupported-log"
PAGE = 500
MAX_PAGES = 200  # 100,000 entries per log and run; the next run continues


@dataclass(frozen=True, kw_only=True)
class LogbookReadoutInput(GatewayProcessInput):
    params: LogbookReadoutParams = field(default_factory=LogbookReadoutParams)


@workflow.defn(name="LogbookReadout")
class LogbookReadoutWorkflow(GatewayProcessWorkflow[LogbookReadoutInput]):
    @workflow.run
    async def run(self, inp: LogbookReadoutInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: LogbookReadoutInput, link: GatewayLink) -> dict[str, Any]:
        gw = inp.gateway_id
        details: dict[str, Any] = {}
        for log in inp.params.logs:
            cursor = await domain_step(GwaSteps.find_last_logbook_record, LogCursorInput(gateway_id=gw, log=log))
            start = (cursor.last_record or 0) + 1
            read = stored = 0
            for page in range(MAX_PAGES):
                try:
                    result = await link.run(Commands.read_logbook, partial(gc.ReadLogbookInput, gateway_id=gw,
                        log=log, from_record=start, max_entries=PAGE),
                        step=self.at(f"read_{log}_log/{page}"))
                except GatewayStepFailed as err:
                    # Vendors differ in which logs they offer the GWA: note it, read the others.
                    if err.error_type == gc.ERROR_UNSUPPORTED and workflow.patched(PATCH_SKIP_UNSUPPORTED):
                        details[f"{log}_unsupported"] = True
                        break
                    raise
                if result.entries:
                    saved = await domain_step(GwaSteps.store_logbook_entries, StoreLogEntriesInput(
                        gateway_id=gw, log=log, process_id=inp.process_id, entries=result.entries))
                    read += len(result.entries)
                    stored += saved.stored
                    start = result.entries[-1].record + 1
                if not result.more or not result.entries:
                    break
            details[f"{log}_read"] = read
            details[f"{log}_new"] = stored
        return details
