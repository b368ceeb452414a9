"""Domain steps of certificate renewal: which of a gateway's certificates are due."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from temporalio import activity

from activities.steps_common import Steps, domain_refusals
from domain.certificates.models import Certificate
from domain.devices.service import get_gateway


@dataclass(frozen=True)
class DueInput:
    gateway_id: str
    usages: list[str] = field(default_factory=lambda: ["tls", "sig", "enc"])
    renew_before_days: int = 60


@dataclass(frozen=True)
class DueCertificate:
    usage: str
    fingerprint: str
    not_after: str
    subject: str


@dataclass(frozen=True)
class DueCertificates:
    due: list[DueCertificate]
    missing: list[str]  # usages with no certificate of the gateway in the store


class RenewalSteps(Steps):
    @activity.defn(name="find_certificates_due_for_renewal")
    @domain_refusals
    async def due(self, inp: DueInput) -> DueCertificates:
        limit = dt.datetime.now(dt.UTC) + dt.timedelta(days=inp.renew_before_days)
        async with self._session() as session:
            gw = await get_gateway(session, inp.gateway_id)
            rows = (await session.scalars(select(Certificate).where(
                Certificate.owner == "gateway", Certificate.gateway_id == gw.id, Certificate.status == "active",
                Certificate.usage.in_(inp.usages)).order_by(Certificate.not_after))).all()
        newest = {c.usage: c for c in rows}  # ordered by not_after: the last one per usage wins
        due = [DueCertificate(u, c.fingerprint, c.not_after.isoformat(), c.subject)
               for u, c in sorted(newest.items()) if c.not_after <= limit or c.revocation == "revoked"]
        return DueCertificates(due, sorted(set(inp.usages) - set(newest)))

    def all(self) -> list[object]:
        return [self.due]
