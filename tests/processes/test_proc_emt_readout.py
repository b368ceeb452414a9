"""An EMT's on-demand readout (TAF 6) through its machine interface."""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING

import httpx
import pytest

from pki import cms
from tests.fleet import GRID_OPERATOR, SUPPLIER, Fleet, melos_of, run_process
from tests.helpers import error_code

if TYPE_CHECKING:
    from tests.conftest import ApiUser, UserFactory

T = "fleet"
URL = f"/api/v1/tenants/{T}/emt/readouts"


@pytest.fixture(scope="module")
async def metering_point(api: httpx.AsyncClient, fleet: Fleet, fleet_operator: ApiUser) -> tuple[str, str]:
    """A commissioned gateway whose consumption MeLo has a TAF 6 order of the supplier."""
    h = fleet_operator.headers
    (i,) = fleet.take(1, where=lambda i: i % 4 != 0)
    melo, gid = melos_of(i)[0], fleet.gid(i)
    r = await api.post(f"/api/v1/tenants/{T}/taf-orders", headers=h, json={
        "metering_point": melo, "taf": 6, "emt": SUPPLIER, "params": {"registers": ["1-0:1.8.0", "1-0:2.8.0"]}})
    assert r.status_code == 201, r.text
    await fleet.move_to([gid], "installed")
    assert (await run_process(api, h, T, "commissioning", [gid], {"first_readout": False}))["counts"]["succeeded"] == 1
    return melo, gid


async def test_the_supplier_reads_its_metering_point_and_only_it_can_open_the_values(
    api: httpx.AsyncClient, fleet: Fleet, make_user: UserFactory, metering_point: tuple[str, str]
) -> None:
    melo, gid = metering_point
    supplier = await make_user(tenant=T, role="emt", market_partner_id=SUPPLIER)
    r = await api.post(URL, json={"metering_point": melo}, headers=supplier.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "succeeded" and body["registers"] == ["1-0:1.8.0", "1-0:2.8.0"]
    raw = base64.b64decode(body["readout"]["container"])
    emt2 = fleet.pki.emts["emt2"]
    opened = cms.open(raw, key=emt2.enc.key, cert=emt2.enc.cert, validator=fleet.pki.validator())
    assert b'reason="on_demand"' in opened.payload and b'obis="1-0:2.8.0"' in opened.payload
    assert fleet.applied(gid)["trigger_readout"] == 1

    # The same request key returns the same readout instead of reading again.
    first = await api.post(URL, json={"metering_point": melo, "request_id": "move-out-4711"}, headers=supplier.headers)
    second = await api.post(URL, json={"metering_point": melo, "request_id": "move-out-4711"},
                            headers=supplier.headers)
    assert first.json()["id"] == second.json()["id"] and fleet.applied(gid)["trigger_readout"] == 2
    reused = await api.post(URL, json={"metering_point": "DE0000171011599999999999999999999",
                                       "request_id": "move-out-4711"}, headers=supplier.headers)
    assert reused.status_code == 409 and error_code(reused) == "request_id_reused"
    status = await api.get(f"{URL}/{first.json()['id']}", headers=supplier.headers)
    assert status.json()["readout"]["sha256"] == first.json()["readout"]["sha256"]


async def test_anything_but_a_current_order_of_the_caller_is_a_plain_404(
    api: httpx.AsyncClient, fleet: Fleet, make_user: UserFactory, fleet_operator: ApiUser,
    metering_point: tuple[str, str]
) -> None:
    melo, _ = metering_point
    grid = await make_user(tenant=T, role="emt", market_partner_id=GRID_OPERATOR)
    for other in (melo, "DE0000171011599999999999999999999", "not-a-melo"):
        r = await api.post(URL, json={"metering_point": other}, headers=grid.headers)
        assert r.status_code == 404 and error_code(r) == "metering_point_not_found", r.text
    r = await api.post(URL, json={"metering_point": melo}, headers=fleet_operator.headers)
    assert r.status_code == 403
    unbound = await make_user(tenant=T, role="emt")
    r = await api.post(URL, json={"metering_point": melo}, headers=unbound.headers)
    assert r.status_code == 403 and error_code(r) == "no_market_partner"
    supplier = await make_user(tenant=T, role="emt", market_partner_id=SUPPLIER)
    mine = (await api.post(URL, json={"metering_point": melo}, headers=supplier.headers)).json()
    assert (await api.get(f"{URL}/{mine['id']}", headers=grid.headers)).status_code == 404


async def test_a_slow_gateway_gets_202_and_a_status_url(api: httpx.AsyncClient, fleet: Fleet, make_user: UserFactory,
                                                        metering_point: tuple[str, str]) -> None:
    melo, gid = metering_point
    supplier = await make_user(tenant=T, role="emt", market_partner_id=SUPPLIER)
    await fleet.fault(gid, "slow", 1.5)
    try:
        r = await api.post(f"{URL}?wait_s=0.2", json={"metering_point": melo}, headers=supplier.headers)
        assert r.status_code == 202 and r.json()["state"] == "running", r.text
        url = r.json()["status_url"]
        body = {}
        for _ in range(100):
            body = (await api.get(url, headers=supplier.headers)).json()
            if body["state"] != "running":
                break
            await asyncio.sleep(0.2)
        assert body["state"] == "succeeded" and body["readout"]["container"]
    finally:
        fleet.clear_fault(gid, "slow")
