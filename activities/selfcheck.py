"""Self-check activity: proves a tenant worker reaches its own tenant database and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from temporalio import activity

from activities.runtime import TenantRuntime
from domain.audit.models import AuditEntry


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
            database = await session.scalar(text("SELECT current_database()"))
            count = await session.scalar(select(func.count()).select_from(AuditEntry))
        return SelfCheckResult(tenant=self.runtime.tenant.name, database=str(database), audit_entries=int(count or 0))
