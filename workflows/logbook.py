"""Logbook readout of one gateway: every requested log from the record after the last one stored,
page by page, stored structured (level, outcome, text, time)."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.gwa_steps import LogCursor, LogCursorInput, StoredCount, StoreLogEntriesInput
    from headend import contract as gc
    from workflows.base import GatewayProcessWorkflow, domain_step
    from workflows.common import GatewayProcessInput, GatewayProcessResult
    from workflows.gateway import GatewayLink, GatewayStepFailed

PATCH_SKIP_UNSUPPORTED = "logbook-skip-unsupported-log"
PAGE = 500
MAX_PAGES = 200  # 100,000 entries per log and run; the next run continues


@workflow.defn(name="LogbookReadout")
class LogbookReadoutWorkflow(GatewayProcessWorkflow):
    @workflow.run
    async def run(self, inp: GatewayProcessInput) -> GatewayProcessResult:
        return await self.execute(inp)

    async def steps(self, inp: GatewayProcessInput, link: GatewayLink) -> dict[str, Any]:
        gw = inp.gateway_id
        details: dict[str, Any] = {}
        for log in inp.params.get("logs", ["system", "calibration", "consumer"]):
            cursor: LogCursor = await domain_step("find_last_logbook_record", LogCursorInput(gw, log), LogCursor)
            start = (cursor.last_record or 0) + 1
            read = stored = 0
            for page in range(MAX_PAGES):
                try:
                    result = await link.run("read_logbook", lambda cid, start=start, log=log: gc.ReadLogbookInput(
                        gateway_id=gw, command_id=cid, log=log, from_record=start, max_entries=PAGE),
                        gc.LogbookResult, step=self.at(f"read_{log}_log/{page}"))
                except GatewayStepFailed as err:
                    # Vendors differ in which logs they offer the GWA: note it, read the others.
                    if err.error_type == gc.ERROR_UNSUPPORTED and workflow.patched(PATCH_SKIP_UNSUPPORTED):
                        details[f"{log}_unsupported"] = True
                        break
                    raise
                if result.entries:
                    saved: StoredCount = await domain_step("store_logbook_entries", StoreLogEntriesInput(
                        gw, log, inp.process_id, result.entries), StoredCount)
                    read += len(result.entries)
                    stored += saved.stored
                    start = result.entries[-1].record + 1
                if not result.more or not result.entries:
                    break
            details[f"{log}_read"] = read
            details[f"{log}_new"] = stored
        return details
