"""Tenant self-check: a workflow with one activity, used by operators and tests to prove that a
tenant's namespace is served by a worker bound to that tenant's database."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.selfcheck import SelfCheckActivities, SelfCheckInput, SelfCheckResult


@workflow.defn(name="TenantSelfCheck")
class TenantSelfCheckWorkflow:
    @workflow.run
    async def run(self, params: SelfCheckInput) -> SelfCheckResult:
        return await workflow.execute_activity_method(
            SelfCheckActivities.check_tenant_database, params, start_to_close_timeout=timedelta(seconds=30))
