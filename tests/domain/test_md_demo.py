"""The demo tenant of ``make run``: a realistic fleet, derived from the shared demo ID scheme,
seeded again without duplicates."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from core.config import Settings
from core.db import Databases
from core.ids import demo_gateway_id, demo_meter_count, demo_meter_id
from core.temporal_clients import TemporalClients
from domain.demo import DEMO_GRID_OPERATOR, DEMO_SUPPLIER, demo_meter_mk0, seed_demo_fleet
from domain.devices.models import Gateway, Meter
from domain.devices.service import get_gateway, meter_mk0
from domain.filters import count
from domain.secrets import SecretBox
from domain.topology.service import gateway_topology
from tests.conftest import TenantFactory


async def test_demo_fleet_is_complete_consistent_and_idempotent(tenant_factory: TenantFactory,
                                                                settings: Settings) -> None:
    tenant = await tenant_factory("mddemo")
    box = SecretBox(settings, tenant.name)
    async with tenant.sessions() as session, session.begin():
        await seed_demo_fleet(session, 8, box=box)
    async with tenant.sessions() as session, session.begin():
        await seed_demo_fleet(session, 12, box=box)  # grows; what exists stays as it is
        assert await session.scalar(select(func.count()).select_from(Gateway)) == 12
        meters = sum(demo_meter_count(i) for i in range(12))
        assert await session.scalar(select(func.count()).select_from(Meter)) == meters
        assert await count(session, "gateway", "state = in_operation and meter_count >= 1") == 12
        assert await count(session, "gateway", "manufacturer = Theben") == 4
        assert await count(session, "meter", "grid_area = DEMO-SUED") > 0

        gw0 = await get_gateway(session, demo_gateway_id(0))
        topology = await gateway_topology(session, gw0)
        assert [m.device_id for m in topology.meters] == sorted(demo_meter_id(0, s) for s in range(2))
        assert all(m.metering_points and m.metering_points[0].market_locations for m in topology.meters)
        assert {p.mp_id for p in topology.market_partners} == {DEMO_GRID_OPERATOR.mp_id, DEMO_SUPPLIER.mp_id}
        assert await meter_mk0(session, box, demo_meter_id(0, 0)) == bytes.fromhex(demo_meter_mk0(demo_meter_id(0, 0)))


async def test_make_run_bootstrap_seeds_the_fleet_before_the_demo_pki(settings: Settings, dbs: Databases,
                                                                      temporal_clients: TemporalClients,
                                                                      tmp_path: Path) -> None:
    from sqlalchemy import text

    from domain.tenancy.service import resolve
    from operations.bootstrap import ensure_demo

    small = settings.model_copy(update={"demo_tenant": "mdboot", "demo_fleet_size": 3, "var_dir": tmp_path})
    await ensure_demo(small, dbs, temporal_clients)
    await ensure_demo(small, dbs, temporal_clients)  # a second `make run` adds nothing
    tenant = await resolve(dbs, "mdboot")
    async with tenant.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Gateway)) == 3
        linked = await session.scalar(text(
            "SELECT count(DISTINCT gateway_id) FROM certificates WHERE gateway_id IS NOT NULL"))
        assert linked == 3  # the PKI found the gateways the fleet seed created
