"""MDM fixtures: tenant ``mdm`` with the demo fleet's master data (a few gateways) and TAF orders of
the two demo EMTs: the grid operator orders TAF 7 and TAF 10, the supplier TAF 1 (consumption
metering points); each test rolls its session back."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from domain.demo import DEMO_GRID_OPERATOR, DEMO_SUPPLIER, demo_melo, seed_demo_fleet
from domain.secrets import SecretBox
from domain.tariffs.schemas import TafOrderCreate
from domain.tariffs.service import create_order
from domain.tenancy.service import TenantContext
from tests.conftest import TenantFactory

FLEET = 6
ORDERS_FROM = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
async def mdm_tenant(tenant_factory: TenantFactory, settings: Settings) -> TenantContext:
    ctx = await tenant_factory("mdm")
    async with ctx.sessions() as session, session.begin():
        await seed_demo_fleet(session, FLEET, box=SecretBox(settings, ctx.name))
        for i in range(FLEET):
            melo = demo_melo(i, 0)
            for taf, emt in ((7, DEMO_GRID_OPERATOR.mp_id), (10, DEMO_GRID_OPERATOR.mp_id), (1, DEMO_SUPPLIER.mp_id)):
                params = {"registers": ["1-0:32.7.0", "1-0:31.7.0"]} if taf == 10 else {}
                await create_order(session, TafOrderCreate(metering_point=melo, taf=taf, emt=emt, params=params,
                                                           valid_from=ORDERS_FROM))
    return ctx


@pytest.fixture
async def mdm_session(mdm_tenant: TenantContext) -> AsyncIterator[AsyncSession]:
    async with mdm_tenant.sessions() as s:
        await s.begin()
        try:
            yield s
        finally:
            await s.rollback()
