"""A bench-side workaround for a defect of ``workflows/mass.py`` (reported, not fixed here).

After ``continue_as_new``, children still in flight signal ``target_finished`` to the new run. The
SDK delivers signals that are already there before the run method starts, so the handler meets
``self.s is None``, its ``assert`` fails the workflow task, and every retry fails the same way:
the mass process stops for good after its first continue-as-new while children were in flight
(with 1,000 starts per run, any process of more than 1,000 gateways). This subclass only sets the
state in ``__init__`` (``@workflow.init``), which is the proposed fix; ``bench/process_worker.py``
registers it in place of ``MassProcessWorkflow`` when ``process_bench.py --mass-fix`` is given.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.common import MassProcessInput, MassProcessResult
    from workflows.mass import MassProcessWorkflow


@workflow.defn(name="MassProcess")
class MassProcessStateInInit(MassProcessWorkflow):
    @workflow.init
    def __init__(self, inp: MassProcessInput) -> None:
        super().__init__()
        self.s = inp

    @workflow.run
    async def run(self, inp: MassProcessInput) -> MassProcessResult:
        return await super().run(inp)
