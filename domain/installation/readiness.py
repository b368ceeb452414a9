"""Is a gateway's master data complete enough to commission it?"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from domain.certificates.selection import gateway_certificate_problems
from domain.devices.service import get_gateway
from domain.tariffs.rollout import MasterDataIncomplete, Rollout, plan_rollout
from domain.topology import repository as topology
from domain.topology.service import db_now


def meter_problems(meters: list[tuple[str, bool, int | None]]) -> list[str]:
    """``meters``: (meter ID, has an MK0, metering point assignment or None) per metering point."""
    if not meters:
        return ["no meter assigned"]
    problems = []
    for meter, has_key in sorted({(m, k) for m, k, _ in meters}):
        if not any(mm is not None for m2, _, mm in meters if m2 == meter):
            problems.append(f"meter {meter} measures no metering point")
        if not has_key:
            problems.append(f"meter {meter} has no MK0 for LMN pairing")
    return problems


async def check_commissioning_readiness(session: AsyncSession, gateway: str, now: dt.datetime) -> Rollout:
    """Everything commissioning writes to the gateway, or a refusal (``master_data_incomplete``)
    listing what is missing: installed at a connection point, meters with metering points and MK0,
    valid certificates of the gateway, the GWA and every EMT it will deliver to."""
    gw = await get_gateway(session, gateway)
    problems: list[str] = []
    if gw.state != "installed":
        problems.append(f"the gateway is {gw.state}, not installed")
    at = await db_now(session)
    if await topology.connection_point_assignment(session, gw.id, at) is None:
        problems.append("not installed at a connection point")
    problems += meter_problems(list(await topology.meters_with_keys_and_metering_points(session, gw.id, at)))
    problems += await gateway_certificate_problems(session, gw.id, now)
    rollout = await plan_rollout(session, gateway, now, write_all=True, with_gwa_certificates=True)
    problems += rollout.problems
    if problems:
        raise MasterDataIncomplete("master data incomplete: " + "; ".join(problems))
    return rollout
