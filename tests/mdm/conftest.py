"""MDM fixtures: tenant ``mdm`` with the demo fleet's master data (a few gateways) and the demo's TAF
orders (``domain.demo.demo_orders``: the grid operator TAF 7 everywhere and TAF 10 at gateway 1,
the supplier TAF 1 of consumption points); each test rolls its session back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from domain.demo import seed_demo_fleet, seed_demo_orders
from domain.secrets import SecretBox
from domain.tenancy.service import TenantContext
from tests.conftest import TenantFactory

FLEET = 6


@pytest.fixture(scope="session")
async def mdm_tenant(tenant_factory: TenantFactory, settings: Settings) -> TenantContext:
    ctx = await tenant_factory("mdm")
    async with ctx.sessions() as session, session.begin():
        await seed_demo_fleet(session, FLEET, box=SecretBox(settings, ctx.name))
        await seed_demo_orders(session, FLEET)
    return ctx


@pytest.fixture
async def mdm_session(mdm_tenant: TenantContext) -> AsyncIterator[AsyncSession]:
    async with mdm_tenant.sessions() as s:
        await s.begin()
        try:
            yield s
        finally:
            await s.rollback()


# The receiver tests' fixtures (tests/mdm/receiver_fixtures.py): a test PKI, tenant mdmrx, a receiver.
from tests.mdm.receiver_fixtures import receiver, rx_pki, rx_tenant  # noqa: E402, F401
