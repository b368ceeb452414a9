"""The example files of docs/masterdata.md import as documented, in the documented order, twice."""

from __future__ import annotations

from pathlib import Path

from core.config import Settings
from domain.catalogue.schemas import DeviceTypeCreate
from domain.catalogue.service import create_device_type
from domain.demo import DEMO_PARTNERS
from domain.filters import count
from domain.imports.service import run_import
from domain.partners.schemas import Endpoint, MarketPartnerCreate
from domain.partners.service import create as create_partner
from domain.secrets import SecretBox
from tests.conftest import TenantFactory

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "masterdata"
ORDER = ["connection-points", "gateways", "meters", "cls-modules", "metering-points", "market-locations",
         "assignments", "delivery"]


async def test_documented_examples_import_in_order_and_again_without_changes(tenant_factory: TenantFactory,
                                                                             settings: Settings) -> None:
    tenant = await tenant_factory("mdexamples")
    box = SecretBox(settings, tenant.name)
    assert sorted(p.stem for p in EXAMPLES.glob("*.csv")) == sorted(ORDER)
    async with tenant.sessions() as session, session.begin():
        for p in DEMO_PARTNERS:
            endpoint = Endpoint(purpose="meter_data", url=p.endpoint)
            await create_partner(session, MarketPartnerCreate(mp_id=p.mp_id, name=p.name, roles=list(p.roles),
                                                              endpoints=[endpoint]))
        await create_device_type(session, DeviceTypeCreate(code="emh-cls-box", kind="cls", manufacturer="EMH",
                                                           manufacturer_flag="EMH", model="CLS box",
                                                           capabilities=["cls"]))
        for kind in ORDER:
            with (EXAMPLES / f"{kind}.csv").open("rb") as stream:
                result = await run_import(session, kind, stream, file_name=f"{kind}.csv", box=box)
            assert result.created > 0 and result.updated == 0, kind
        for kind in ORDER:
            with (EXAMPLES / f"{kind}.csv").open("rb") as stream:
                again = await run_import(session, kind, stream, box=box)
            assert again.unchanged == again.rows, kind
        assert await count(session, "gateway", "meter = 1EMH0530000000 and grid_area = DEMO-NORD") == 0
        assert await count(session, "meter", "gateway = ETHE0116900000 and malo = 50000000005") == 1
