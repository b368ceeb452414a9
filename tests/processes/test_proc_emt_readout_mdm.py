"""On-demand readout end to end, into gridgate's MDM: the EMT asks the GWA (EMT API), the GWA
triggers (``trigger_readout``), the gateway delivers to the EMT's meter data endpoint, which is
``gridgate mdm`` receiving for the supplier (an EMT identity of the tenant), the MDM stores the
reading, and the EMT reads the value from the MDM API.

A module of its own: the supplier's ``meter_data`` endpoint points at the MDM receiver only while
it runs (restored afterwards), and its gateway is commissioned while it does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import select

from core.config import Settings
from core.db import Databases
from domain.partners.models import MarketPartner
from tests.fleet import EMT_OF_PARTNER, SUPPLIER, Fleet, melos_of, meters_of, run_process

if TYPE_CHECKING:
    from mdm.service import MdmService
    from tests.conftest import ApiUser, UserFactory

T = "fleet"


def _pem(fleet: Fleet, emt: str) -> bytes:
    entity = fleet.pki.emts[emt]
    out = b""
    for usage in ("tls", "sig", "enc"):
        cred = entity.credential(usage)
        out += cred.cert_path.read_bytes() + cred.key_path.read_bytes()
    return out


@pytest.fixture(scope="module")
async def mdm(settings: Settings, dbs: Databases, fleet: Fleet) -> AsyncIterator[MdmService]:
    """``gridgate mdm`` in this process, receiving for the supplier of the fleet tenant (its
    certificates imported with their keys), set as the supplier's ``meter_data`` endpoint."""
    from domain.certificates.service import import_emt_identity
    from mdm.config import MdmSettings
    from mdm.service import MdmService

    async with fleet.ctx.sessions() as session, session.begin():
        await import_emt_identity(session, settings, fleet.ctx, _pem(fleet, EMT_OF_PARTNER[SUPPLIER]), SUPPLIER)
    msettings = MdmSettings.model_validate({"host": "127.0.0.1", "port": 0, "metrics_port": 0, "tenant_poll_s": 0.5,
                                            "batch_wait_s": 0.005})
    service = MdmService(settings, msettings, dbs)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.ready.wait(), 60)
    _, port = service.receiver.bound
    endpoint = f"https://{msettings.sni_name(T, SUPPLIER)}:{port}/mdm/info-report"
    async with fleet.ctx.sessions() as session, session.begin():
        partner = (await session.scalars(select(MarketPartner).where(MarketPartner.mp_id == SUPPLIER))).one()
        before = partner.endpoints
        partner.endpoints = [{"purpose": "meter_data", "url": endpoint}]
    try:
        for _ in range(100):  # the receiver picks the identity up when it polls the tenants
            if any(key[0] == T for key in service.receiver.directory.by_key):
                break
            await asyncio.sleep(0.1)
        yield service
    finally:
        async with fleet.ctx.sessions() as session, session.begin():
            partner = (await session.scalars(select(MarketPartner).where(MarketPartner.mp_id == SUPPLIER))).one()
            partner.endpoints = before
        stop.set()
        await asyncio.wait_for(task, 30)


async def poll(api: httpx.AsyncClient, url: str, headers: dict[str, str], found: Any, timeout: float = 30) -> Any:
    """GET ``url`` until ``found(json)`` returns something (that is returned)."""
    body: Any = None
    for _ in range(int(timeout * 5)):
        r = await api.get(url, headers=headers)
        assert r.status_code in (200, 404), r.text
        body = r.json()
        if r.status_code == 200 and (hit := found(body)) is not None:
            return hit
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url}: not there after {timeout} s: {body}")


async def test_the_readout_the_emt_asked_for_arrives_in_its_mdm(
    api: httpx.AsyncClient, fleet: Fleet, fleet_operator: ApiUser, make_user: UserFactory, mdm: MdmService
) -> None:
    from simulator.meters import INTERVAL_S, MeterModel

    h = fleet_operator.headers
    (i,) = fleet.take(1, where=lambda i: i % 4 != 0)
    melo, gid, meter = melos_of(i)[0], fleet.gid(i), meters_of(i)[0]
    # An order in force for a while (values before its start are not the supplier's: the MDM would
    # refuse them as taf_not_ordered).
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    r = await api.post(f"/api/v1/tenants/{T}/taf-orders", headers=h, json={
        "metering_point": melo, "taf": 6, "emt": SUPPLIER, "params": {"registers": ["1-0:1.8.0"]},
        "valid_from": since})
    assert r.status_code == 201, r.text
    await fleet.move_to([gid], "installed")
    assert (await run_process(api, h, T, "commissioning", [gid], {"first_readout": False}))["counts"]["succeeded"] == 1

    supplier = await make_user(tenant=T, role="emt", market_partner_id=SUPPLIER)
    asked = await api.post(f"/api/v1/tenants/{T}/emt/readouts", json={"metering_point": melo},
                           headers=supplier.headers)
    assert asked.status_code == 200 and asked.json()["state"] == "succeeded", asked.text
    ack = asked.json()["delivery"]

    # The MDM received the delivery under the x-CID the gateway acknowledged, and stored it.
    logged = await poll(api, f"/api/v1/tenants/{T}/meter-data/deliveries?gateway={gid}", supplier.headers,
                        lambda page: next((d for d in page["items"] if d["delivery_ref"] == ack["delivery_ref"]),
                                          None))
    assert (logged["outcome"], logged["reason"], logged["taf"], logged["profile_id"], logged["recipient"]) == (
        "stored", "on_demand", 6, ack["profile_id"], SUPPLIER), logged

    # The value: a reading of the metering point, reason on_demand, at the time of the values.
    at = dt.datetime.fromisoformat(ack["values_at"])
    readings = await poll(api, ack["readings_url"], supplier.headers,
                          lambda rows: [x for x in rows if x["reason"] == "on_demand"] or None)
    (reading,) = [x for x in readings if dt.datetime.fromisoformat(x["at"]) == at]
    k = int(at.timestamp()) // INTERVAL_S
    assert reading["value"] == MeterModel(meter).import_wh(k) and reading["meter_id"] == meter
