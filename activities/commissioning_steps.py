"""Domain steps of a gateway's lifecycle processes: is the master data complete enough to commission
it, moving it to in operation / faulty, and everything deinstallation changes in master data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from temporalio import activity

from activities.steps_common import Steps, domain_refusals, gateway_certificate_problems, refusal
from activities.tariff_steps import ProfilePlanInput, RolloutPlan, build_plan
from domain.certificates.service import request_gateway_revocation
from domain.devices.models import Meter
from domain.devices.service import get_gateway, transition_gateway
from domain.tariffs import service as tariffs
from domain.topology import service as topology
from domain.topology.models import GatewayConnectionPoint, MeterGateway, MeterMeteringPoint
from domain.topology.repository import valid_at


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
        """Everything commissioning needs from master data, or a refusal listing what is missing:
        installed at a connection point, meters with metering points and MK0, valid certificates of
        the gateway, the GWA and every EMT it will deliver to."""
        now = dt.datetime.now(dt.UTC)
        async with self._session() as session:
            gw = await get_gateway(session, inp.gateway_id)
            problems: list[str] = []
            if gw.state != "installed":
                problems.append(f"the gateway is {gw.state}, not installed")
            at = await topology.db_now(session)
            if await session.scalar(select(GatewayConnectionPoint.id).where(
                    GatewayConnectionPoint.gateway_id == gw.id, valid_at(GatewayConnectionPoint, at))) is None:
                problems.append("not installed at a connection point")
            meters = (await session.execute(
                select(Meter.device_id, Meter.mk0_ciphertext.is_not(None), MeterMeteringPoint.id)
                .join(MeterGateway, (MeterGateway.meter_id == Meter.id) & valid_at(MeterGateway, at))
                .outerjoin(MeterMeteringPoint, (MeterMeteringPoint.meter_id == Meter.id)
                           & valid_at(MeterMeteringPoint, at))
                .where(MeterGateway.gateway_id == gw.id))).all()
            if not meters:
                problems.append("no meter assigned")
            for meter, has_key in sorted({(m, k) for m, k, _ in meters}):
                if not any(mm is not None for m2, _, mm in meters if m2 == meter):
                    problems.append(f"meter {meter} measures no metering point")
                if not has_key:
                    problems.append(f"meter {meter} has no MK0 for LMN pairing")
            problems += await gateway_certificate_problems(session, gw.id, now)
            plan = await build_plan(session, ProfilePlanInput(gateway_id=inp.gateway_id, write_all=True,
                                                              with_gwa_certificates=True), now)
        problems += plan.problems
        if problems:
            raise refusal("master_data_incomplete", "master data incomplete: " + "; ".join(problems))
        return plan

    @activity.defn
    @domain_refusals
    async def move_gateway_to_state(self, inp: TransitionInput) -> str:
        """Lifecycle transition with the reason in the audit log; staying in the state is a no-op."""
        async with self._session() as session, session.begin():
            gw = await get_gateway(session, inp.gateway_id, for_update=True)
            await transition_gateway(session, gw, inp.state, reason=inp.reason[:500])
            return gw.state

    @activity.defn
    @domain_refusals
    async def record_deinstallation(self, inp: GatewayRef) -> DeinstallationDone:
        """End the gateway's place and its meters' LMN assignments, end its profiles in the history,
        mark its certificates for revocation and set it deinstalled: one transaction, idempotent."""
        by = activity.info().workflow_id or ""
        async with self._session() as session, session.begin():
            gw = await get_gateway(session, inp.gateway_id, for_update=True)
            at = await topology.db_now(session)
            ended = 0
            for kind, model in (("gateway-connection-point", GatewayConnectionPoint), ("meter-gateway", MeterGateway)):
                ids = (await session.scalars(select(model.id).where(model.gateway_id == gw.id, valid_at(model, at),
                                                                    model.valid_from < at))).all()
                for aid in ids:
                    await topology.end_assignment(session, kind, aid, valid_to=at)
                    ended += 1
            _, profiles = await tariffs.record_profiles(session, gw.device_id, written=[], ended=[], by=by,
                                                        end_all=True)
            marked = await request_gateway_revocation(session, gw.device_id)
            await transition_gateway(session, gw, "deinstalled", reason=f"deinstalled by {by}")
        return DeinstallationDone(assignments_ended=ended, profiles_ended=profiles, certificates_marked=marked)
