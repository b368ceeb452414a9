"""Process fixtures: a tenant of its own, gateways in master data, and the real worker."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

import pytest

from core.config import Settings
from core.db import Databases
from core.ids import DeviceId
from core.procs import free_port
from domain.devices.schemas import GatewayCreate
from domain.devices.service import create_gateway
from domain.tenancy.service import TenantContext

if TYPE_CHECKING:
    from tests.conftest import ApiUser, TenantFactory, UserFactory
    from tests.fleet import Fleet
    from tests.simulator.emt_stub import Delivery, EmtStub
    from worker import TenantWorkers

_serials = itertools.count(20_000_000)


@pytest.fixture(scope="module")
async def procs(tenant_factory: TenantFactory, gridgate_worker: TenantWorkers) -> TenantContext:
    return await tenant_factory("procs")


class GatewayFactory(Protocol):
    """The ``make_gateways`` fixture."""

    async def __call__(self, n: int, state: str = "in_operation", segment: str | None = None) -> list[str]: ...


@pytest.fixture
def make_gateways(procs: TenantContext) -> GatewayFactory:
    """``await make_gateways(n, state="in_operation")`` -> their IDs (unique per call)."""

    async def make(n: int, state: str = "in_operation", segment: str | None = None) -> list[str]:
        ids = [str(DeviceId("E", "EMH", 7, next(_serials))) for _ in range(n)]
        # Wake-ups go to a port nobody listens on: with or without a head-end in the session, these
        # gateways are genuinely unreachable.
        nobody = f"127.0.0.1:{free_port()}"
        async with procs.sessions() as session, session.begin():
            for gid in ids:
                await create_gateway(session, GatewayCreate(device_id=gid, device_type="emh-casa", state=state,
                                                            network_segment=segment, wakeup_address=nobody))
        return ids

    return make


# -- a simulated fleet for end-to-end process tests (tests/fleet.py) ----------------------------

FLEET_TENANT = "fleet"


@pytest.fixture(scope="package")
async def fleet(settings: Settings, dbs: Databases, tenant_factory: TenantFactory, gridgate_worker: TenantWorkers,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    """Demo master data, test PKI, head-end node and simulator for tenant ``fleet`` (48 gateways;
    tests take distinct ones with ``fleet.take``). Package scope: the head-end node and simulator
    stop when the process tests are done, before other areas' tests run."""
    from tests.fleet import start_fleet, stop_fleet

    built = await start_fleet(settings, dbs, tenant_factory, tmp_path_factory.mktemp("fleet"), tenant=FLEET_TENANT,
                              size=48)
    try:
        yield built
    finally:
        await stop_fleet(built)


@pytest.fixture(scope="package")
async def fleet_operator(make_user: UserFactory, fleet: Fleet) -> ApiUser:
    return await make_user(tenant=FLEET_TENANT, role="operator")


@pytest.fixture(scope="package")
async def emt_receivers(fleet: Fleet) -> AsyncIterator[dict[str, EmtStub]]:
    """Meter data receivers of the two demo EMTs (tests/simulator/emt_stub.py, written from
    docs/protocol.md 14), set as their ``meter_data`` endpoints: gateways commissioned or rolled out
    from here on deliver to them (the stub answers 201 to everything). By market partner ID.
    Package scope: once a test asked for them, they stay for the fleet's other tests."""
    from sqlalchemy import select

    from domain.partners.models import MarketPartner
    from tests.fleet import EMT_OF_PARTNER
    from tests.simulator.emt_stub import EmtStub

    stubs = {mp_id: await EmtStub(fleet.pki, name=emt).start() for mp_id, emt in EMT_OF_PARTNER.items()}
    try:
        async with fleet.ctx.sessions() as session, session.begin():
            for partner in (await session.scalars(select(MarketPartner).where(
                    MarketPartner.mp_id.in_(list(stubs))))).all():
                partner.endpoints = [{"purpose": "meter_data",
                                      "url": stubs[partner.mp_id].endpoint(f"{partner.mp_id}.emt.gridgate.test")}]
        yield stubs
    finally:
        for stub in stubs.values():
            await stub.stop()


async def delivered(stub: EmtStub, ref: str, timeout: float = 20) -> Delivery:
    """The delivery with x-CID ``ref`` as the EMT's receiver got it (waits for it)."""
    received = await stub.wait(lambda r: any(d.cid == ref for d in r), timeout=timeout)
    (d,) = [d for d in received if d.cid == ref]
    return d
