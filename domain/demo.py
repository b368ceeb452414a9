"""The demo tenant's fleet: gateways with meters, connection points, MeLos, MaLos and two EMTs.

Device IDs come from ``domain.ids.demo_gateway_id/demo_meter_id/demo_meter_count`` so the
simulator derives the same fleet. Seeding runs the regular imports, so it is idempotent: run it
again (or with a larger size) and only what is missing is added.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core import ids
from core.config import Settings
from core.ids import (
    DEMO_METER_VENDORS,
    DEMO_VENDORS,
    demo_gateway_id,
    demo_meter_count,
    demo_meter_id,
    malo_check_digit,
)
from domain.imports.service import run_import
from domain.partners import repository as partners
from domain.partners.models import MarketPartner
from domain.secrets import SecretBox
from domain.tariffs import repository as tariff_repo
from domain.tariffs.schemas import TafOrderCreate
from domain.tariffs.service import create_order
from domain.tenancy.service import TenantContext


@dataclass(frozen=True)
class DemoPartner:
    mp_id: str
    name: str
    roles: tuple[str, ...]
    endpoint: str


# The two EMTs of the demo: the grid operator (also metering point operator) and a supplier.
DEMO_GRID_OPERATOR = DemoPartner("9900000000017", "Demo Netz GmbH", ("VNB", "MSB"),
                                 "https://emt-netz.demo.invalid:4443/smgw")
DEMO_SUPPLIER = DemoPartner("9900000000024", "Demo Energie Vertrieb GmbH", ("LF",),
                            "https://emt-vertrieb.demo.invalid:4443/smgw")
DEMO_PARTNERS = (DEMO_GRID_OPERATOR, DEMO_SUPPLIER)

GATEWAY_TYPES = {"THE": "theben-conexa-3.0", "EMH": "emh-casa", "PPC": "ppc-smgw"}
METER_TYPES = {"EMH": "emh-ebzd", "ISK": "iskra-mt631"}
FIRMWARE = {"THE": ("2.1.0", "2.0.3"), "EMH": ("2.1.0", "1.1.5"), "PPC": ("5.0.0", "4.2.1")}
PLACES = (("10115", "Berlin", "DEMO-NORD"), ("20095", "Hamburg", "DEMO-NORD"), ("80331", "München", "DEMO-SUED"),
          ("70173", "Stuttgart", "DEMO-SUED"))
SINCE = "2024-01-01T00:00:00+01:00"


def demo_meter_mk0(meter_id: str) -> str:
    """The demo meter's MK0 as hex (the simulated meter holds the same key)."""
    return ids.demo_meter_mk0(meter_id).hex()


def demo_melo(gateway_index: int, slot: int) -> str:
    postcode = PLACES[gateway_index % len(PLACES)][0]
    return f"DE000017{postcode}DEMO{gateway_index:08d}{slot:08d}"


def demo_malo(gateway_index: int, slot: int) -> str:
    first10 = f"5{gateway_index * 4 + slot:09d}"
    return first10 + str(malo_check_digit(first10))


def _csv(header: list[str], rows: Iterable[list[str]]) -> io.BytesIO:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return io.BytesIO(out.getvalue().encode())


def _gateway_row(i: int) -> list[str]:
    flag = DEMO_VENDORS[i % len(DEMO_VENDORS)][0]
    firmware = FIRMWARE[flag][1 if i % 7 == 3 else 0]
    return [demo_gateway_id(i), GATEWAY_TYPES[flag], firmware, f"CELL-A{10 + i % 8}", "in_operation"]


EndpointOf = Callable[[str], str]


async def _ensure_partners(session: AsyncSession, endpoint_of: EndpointOf | None) -> None:
    """The demo EMTs; with ``endpoint_of`` (market partner ID -> URL) their meter data endpoint is
    this installation's MDM receiver, so the demo gateways deliver to it."""
    for p in DEMO_PARTNERS:
        endpoints = [{"purpose": "meter_data", "url": endpoint_of(p.mp_id) if endpoint_of else p.endpoint}]
        found = await partners.by_mp_id(session, p.mp_id)
        if found is None:
            session.add(MarketPartner(mp_id=p.mp_id, name=p.name, roles=list(p.roles), endpoints=endpoints))
        elif endpoint_of is not None and found.endpoints != endpoints:
            found.endpoints = endpoints
    await session.flush()


async def seed_demo_fleet(session: AsyncSession, size: int, *, box: SecretBox,
                          endpoint_of: EndpointOf | None = None) -> None:
    """Make sure the first ``size`` demo gateways and everything around them exist."""
    if size <= 0:
        return
    await _ensure_partners(session, endpoint_of)
    netz, vertrieb = DEMO_GRID_OPERATOR.mp_id, DEMO_SUPPLIER.mp_id
    gateways = range(size)
    slots = [(i, s) for i in gateways for s in range(demo_meter_count(i))]

    def place(i: int) -> tuple[str, str, str]:
        return PLACES[i % len(PLACES)]

    files = [
        ("connection-points", _csv(
            ["code", "street", "house_number", "postcode", "city", "grid_area", "grid_operator"],
            ([f"DEMO-CP-{i:05d}", "Musterstraße", str(i + 1), place(i)[0], place(i)[1], place(i)[2], netz]
             for i in gateways))),
        ("gateways", _csv(["device_id", "device_type", "firmware_version", "network_segment", "state"],
                          (_gateway_row(i) for i in gateways))),
        ("meters", _csv(["device_id", "device_type", "calibration_date", "calibration_valid_until", "lmn_type", "mk0"],
                        ([demo_meter_id(i, s),
                          METER_TYPES[DEMO_METER_VENDORS[(i + s) % len(DEMO_METER_VENDORS)][0]],
                          "2023-06-01", "2031-12-31" if i % 10 else "2026-12-31", "wired",
                          demo_meter_mk0(demo_meter_id(i, s))] for i, s in slots))),
        ("metering-points", _csv(["melo", "direction", "grid_operator", "msb"],
                                 ([demo_melo(i, s), "feed_in" if s else "consumption", netz, netz]
                                  for i, s in slots))),
        ("market-locations", _csv(["malo", "direction", "supplier"],
                                  ([demo_malo(i, s), "feed_in" if s else "consumption", vertrieb]
                                   for i, s in slots))),
        ("assignments", _csv(["kind", "subject", "target", "valid_from", "valid_to"], [
            *(["gateway-connection-point", demo_gateway_id(i), f"DEMO-CP-{i:05d}", SINCE, ""] for i in gateways),
            *(["meter-gateway", demo_meter_id(i, s), demo_gateway_id(i), SINCE, ""] for i, s in slots),
            *(["meter-metering-point", demo_meter_id(i, s), demo_melo(i, s), SINCE, ""] for i, s in slots),
            *(["metering-point-market-location", demo_melo(i, s), demo_malo(i, s), SINCE, ""] for i, s in slots),
        ])),
    ]
    for kind, data in files:
        await run_import(session, kind, data, file_name=f"demo-{kind}.csv", box=box)


def demo_orders(size: int) -> list[TafOrderCreate]:
    """What the demo EMTs order for the first ``size`` gateways: the grid operator (also metering
    point operator) a register profile (TAF 7) of every metering point, and grid state data (TAF 10)
    at every twelfth gateway; the supplier a monthly register value (TAF 1) of each consumption point."""
    netz, vertrieb = DEMO_GRID_OPERATOR.mp_id, DEMO_SUPPLIER.mp_id
    orders = []
    for i in range(size):
        consumption = demo_melo(i, 0)
        orders.append(TafOrderCreate(metering_point=consumption, taf=7, emt=netz, valid_from=_since()))
        orders.append(TafOrderCreate(metering_point=consumption, taf=1, emt=vertrieb, valid_from=_since()))
        if demo_meter_count(i) > 1:
            orders.append(TafOrderCreate(metering_point=demo_melo(i, 1), taf=7, emt=netz, valid_from=_since(),
                                         params={"registers": ["1-0:2.8.0"]}))
        if i % 12 == 1:  # every 12th gateway, an EMH one (i % 3 == 1): the demo PPC gateways have no TAF 10
            orders.append(TafOrderCreate(metering_point=consumption, taf=10, emt=netz, valid_from=_since(),
                                         params={"registers": ["1-0:32.7.0", "1-0:31.7.0", "1-0:16.7.0"]}))
    return orders


def _since() -> datetime:
    return datetime.fromisoformat(SINCE)


async def seed_demo_orders(session: AsyncSession, size: int) -> int:
    """The demo TAF orders that do not exist yet (by metering point, TAF and EMT). Returns how many
    were created."""
    have = {(melo, taf, emt) for melo, taf, emt in await tariff_repo.order_keys(session)}
    created = 0
    for order in demo_orders(size):
        if (order.metering_point, order.taf, order.emt) not in have:
            await create_order(session, order)
            created += 1
    return created


async def seed_demo_tenant(settings: Settings, tenant: TenantContext, *, endpoint_of: EndpointOf | None = None
                           ) -> None:
    """Seed the demo fleet of ``GRIDGATE_DEMO_FLEET_SIZE`` gateways and its TAF orders in its own
    transaction."""
    async with tenant.sessions() as session, session.begin():
        await seed_demo_fleet(session, settings.demo_fleet_size, box=SecretBox(settings, tenant.name),
                              endpoint_of=endpoint_of)
        await seed_demo_orders(session, settings.demo_fleet_size)
