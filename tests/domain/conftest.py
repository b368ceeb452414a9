"""Master data fixtures: a session on tenant alpha rolled back after each test, unique IDs, and
small factories per entity (each test builds the fleet it talks about)."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.ids import DeviceId, malo_check_digit
from domain.devices.models import Gateway, Meter
from domain.locations.models import ConnectionPoint
from domain.secrets import SecretBox
from domain.tenancy.service import TenantContext

# Serials unique per test session: a random block of 10^6 and a counter.
_BASE = (10 + secrets.randbelow(89)) * 1_000_000
_counter = itertools.count(1)


def serial() -> int:
    return _BASE + next(_counter)


def gateway_id(flag: str = "EMH") -> str:
    return str(DeviceId("E", flag, 1, serial()))


def meter_id(flag: str = "EMH") -> str:
    return str(DeviceId("1", flag, 5, serial()))


def melo() -> str:
    return f"DE00012345678{serial():020d}"


def malo() -> str:
    first = f"{(serial() % 900_000_000) + 100_000_000:09d}"
    first10 = "5" + first
    return first10 + str(malo_check_digit(first10))


def mp_id() -> str:
    return f"99{serial():011d}"


def cp_code() -> str:
    return f"CP-{serial()}"


@pytest.fixture
async def session(tenant_a: TenantContext) -> AsyncIterator[AsyncSession]:
    """A session on tenant alpha inside a transaction that is rolled back after the test."""
    async with tenant_a.sessions() as s:
        await s.begin()
        try:
            yield s
        finally:
            await s.rollback()


@pytest.fixture
def box(settings: Settings) -> SecretBox:
    return SecretBox(settings, "alpha")


async def make_gateway(session: AsyncSession, *, device_type: str = "emh-casa", firmware: str | None = "2.1.0",
                       segment: str | None = None, state: str = "in_stock", flag: str = "EMH") -> Gateway:
    from domain.devices.schemas import GatewayCreate
    from domain.devices.service import create_gateway

    return await create_gateway(session, GatewayCreate(device_id=gateway_id(flag), device_type=device_type,
                                                       firmware_version=firmware, network_segment=segment,
                                                       state=state))


async def make_meter(session: AsyncSession, box: SecretBox, *, device_type: str = "emh-ebzd", flag: str = "EMH",
                     mk0: str | None = None) -> Meter:
    from domain.devices.schemas import MeterCreate
    from domain.devices.service import create_meter

    return await create_meter(session, box, MeterCreate(device_id=meter_id(flag), device_type=device_type,
                                                        mk0=SecretStr(mk0) if mk0 is not None else None))


async def make_connection_point(session: AsyncSession, *, grid_area: str = "NORD",
                                grid_operator: str | None = None) -> ConnectionPoint:
    from domain.locations.schemas import ConnectionPointCreate
    from domain.locations.service import create

    return await create(session, ConnectionPoint, ConnectionPointCreate(
        code=cp_code(), street="Musterweg", house_number="1", postcode="10115", city="Berlin", grid_area=grid_area,
        grid_operator=grid_operator))
