"""Domain steps of a gateway's lifecycle processes: is the master data complete enough to commission
it, moving it to in operation / faulty, and everything deinstallation changes in master data
(the rules: ``domain/installation``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from temporalio import activity

from activities.steps_common import Steps, domain_refusals
from activities.tariff_steps import RolloutPlan, rollout_plan
from domain.devices.service import transition_gateway
from domain.installation.deinstallation import record_deinstallation
from domain.installation.readiness import check_commissioning_readiness


@dataclass(frozen=True, kw_only=True)
class GatewayRef:
    gateway_id: str


@dataclass(frozen=True, kw_only=True)
class TransitionInput:
    gateway_id: str
    state: str  # in_operation | faulty | deinstalled
    reason: str


@dataclass(frozen=True, kw_only=True)
class DeinstallationDone:
    assignments_ended: int
    profiles_ended: int
    certificates_marked: int


class CommissioningSteps(Steps):
    @activity.defn
    @domain_refusals
    async def check_commissioning_readiness(self, inp: GatewayRef) -> RolloutPlan:
        """Everything commissioning needs from master data, or a refusal listing what is missing."""
        async with self._session() as session:
            rollout = await check_commissioning_readiness(session, inp.gateway_id, dt.datetime.now(dt.UTC))
        return rollout_plan(rollout)

    @activity.defn
    @domain_refusals
    async def move_gateway_to_state(self, inp: TransitionInput) -> str:
        """Lifecycle transition with the reason in the audit log; staying in the state is a no-op."""
        async with self._session() as session, session.begin():
            gw = await transition_gateway(session, inp.gateway_id, inp.state, reason=inp.reason[:500])
            return gw.state

    @activity.defn
    @domain_refusals
    async def record_deinstallation(self, inp: GatewayRef) -> DeinstallationDone:
        """One transaction, idempotent."""
        async with self._session() as session, session.begin():
            done = await record_deinstallation(session, inp.gateway_id, by=activity.info().workflow_id or "")
        return DeinstallationDone(assignments_ended=done.assignments_ended, profiles_ended=done.profiles_ended,
                                  certificates_marked=done.certificates_marked)
