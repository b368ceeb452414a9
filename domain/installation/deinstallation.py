"""What deinstallation (Ausbau) changes in master data, in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.certificates.service import request_gateway_revocation
from domain.devices.service import get_gateway, transition_gateway
from domain.tariffs import service as tariffs
from domain.topology import repository as topology_repo
from domain.topology import service as topology
from domain.topology.models import GatewayConnectionPoint, MeterGateway


@dataclass(frozen=True)
class Deinstalled:
    assignments_ended: int
    profiles_ended: int
    certificates_marked: int


async def record_deinstallation(session: AsyncSession, gateway: str, by: str) -> Deinstalled:
    """End the gateway's place and its meters' LMN assignments, end its profiles in the history,
    mark its certificates for revocation and set it deinstalled. Idempotent: a repeat finds nothing
    left to end. (An assignment beginning at this very instant cannot end at it and is left.)"""
    gw = await get_gateway(session, gateway, for_update=True)
    at = await topology.db_now(session)
    ended = 0
    for kind, model in (("gateway-connection-point", GatewayConnectionPoint), ("meter-gateway", MeterGateway)):
        for aid in await topology_repo.gateway_assignments_begun_before(session, model, gw.id, at):
            await topology.end_assignment(session, kind, aid, valid_to=at)
            ended += 1
    _, profiles = await tariffs.record_profiles(session, gw.device_id, written=[], ended=[], by=by, end_all=True)
    marked = await request_gateway_revocation(session, gw.device_id)
    await transition_gateway(session, gw, "deinstalled", reason=f"deinstalled by {by}")
    return Deinstalled(assignments_ended=ended, profiles_ended=profiles, certificates_marked=marked)
