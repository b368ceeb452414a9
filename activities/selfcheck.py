"""Self-check activity: proves a tenant worker reaches its own tenant database and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from activities.runtime import TenantRuntime
from domain.audit.repository import count_entries
from domain.tenancy.repository import current_database


@dataclass(frozen=True, kw_only=True)
class SelfCheckInput:
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class SelfCheckResult:
    tenant: str
    database: str
    audit_entries: int


class SelfCheckActivities:
    def __init__(self, runtime: TenantRuntime) -> None:
        self.runtime = runtime

    @activity.defn
    async def check_tenant_database(self, params: SelfCheckInput) -> SelfCheckResult:
        async with self.runtime.tenant.sessions() as session:
            database = await current_database(session)
            count = await count_entries(session)
        return SelfCheckResult(tenant=self.runtime.tenant.name, database=database, audit_entries=count)
