"""An EMT's on-demand readout (TAF 6) through its machine interface: the GWA triggers, the gateway
delivers to the EMT's meter data endpoint itself (docs/protocol.md 10.9, 14), the request records
the delivery the gateway started.

The EMT's receiver here is the stub of tests/simulator/emt_stub.py (``emt_receivers``), not
``gridgate mdm``: these tests end at "the gateway delivered to the EMT".
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.fleet import GRID_OPERATOR, SUPPLIER, Fleet, melos_of, meters_of, run_process
from tests.helpers import error_code
from tests.processes.conftest import delivered

if TYPE_CHECKING:
    from tests.conftest import ApiUser, UserFactory
    from tests.simulator.emt_stub import EmtStub

T = "fleet"
URL = f"/api/v1/tenants/{T}/emt/readouts"


@pytest.fixture(scope="module")
async def metering_point(api: httpx.AsyncClient, fleet: Fleet, fleet_operator: ApiUser,
                         emt_receivers: dict[str, EmtStub]) -> tuple[str, str, int, str]:
    """A commissioned gateway whose consumption MeLo has a TAF 6 order of the supplier."""
    h = fleet_operator.headers
    (i,) = fleet.take(1, where=lambda i: i % 4 != 0)
    melo, gid = melos_of(i)[0], fleet.gid(i)
    r = await api.post(f"/api/v1/tenants/{T}/taf-orders", headers=h, json={
        "metering_point": melo, "taf": 6, "emt": SUPPLIER, "params": {"registers": ["1-0:1.8.0", "1-0:2.8.0"]}})
    assert r.status_code == 201, r.text
    await fleet.move_to([gid], "installed")
    assert (await run_process(api, h, T, "commissioning", [gid], {"first_readout": False}))["counts"]["succeeded"] == 1
    return melo, gid, int(r.json()["id"]), meters_of(i)[0]


async def test_the_supplier_asks_and_the_gateway_delivers_to_the_supplier(
    api: httpx.AsyncClient, fleet: Fleet, make_user: UserFactory, metering_point: tuple[str, str, int, str],
    emt_receivers: dict[str, EmtStub]
) -> None:
    melo, gid, order, meter = metering_point
    supplier = await make_user(tenant=T, role="emt", market_partner_id=SUPPLIER)
    r = await api.post(URL, json={"metering_point": melo}, headers=supplier.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "succeeded" and body["registers"] == ["1-0:1.8.0", "1-0:2.8.0"]
    assert "readout" not in body and "container" not in r.text  # no meter data passes the GWA
    ack: dict[str, Any] = body["delivery"]
    assert (ack["profile_id"], ack["taf"], ack["reason"]) == (f"ep-taf6-{order}-{meter}", 6, "on_demand")
    assert ack["delivery_ref"].startswith("uuid:") and ack["values_at"]
    assert ack["readings_url"].startswith(f"/api/v1/tenants/{T}/meter-data/metering-points/{melo}/readings?from=")
    # The gateway delivered to the supplier's receiver, on its own connection, sealed for the supplier.
    d = await delivered(emt_receivers[SUPPLIER], ack["delivery_ref"])
    assert (d.gg("gateway"), d.gg("recipient"), d.gg("profile"), d.gg("taf"), d.gg("reason")) == (
        gid, SUPPLIER, ack["profile_id"], "6", "on_demand")
    assert d.signer_cn == d.client_cn == f"{gid}.SMGW"
    assert {o.obis_hex for o in d.objects()} == {"0100010800ff", "0100020800ff"}
    assert fleet.applied(gid)["trigger_readout"] == 1
    assert not any(x.cid == ack["delivery_ref"] for x in emt_receivers[GRID_OPERATOR].received)

    # The same request key returns the same readout instead of reading again.
    first = await api.post(URL, json={"metering_point": melo, "request_id": "move-out-4711"}, headers=supplier.headers)
    second = await api.post(URL, json={"metering_point": melo, "request_id": "move-out-4711"},
                            headers=supplier.headers)
    assert first.json()["id"] == second.json()["id"] and fleet.applied(gid)["trigger_readout"] == 2
    reused = await api.post(URL, json={"metering_point": "DE0000171011599999999999999999999",
                                       "request_id": "move-out-4711"}, headers=supplier.headers)
    assert reused.status_code == 409 and error_code(reused) == "request_id_reused"
    status = await api.get(f"{URL}/{first.json()['id']}", headers=supplier.headers)
    assert status.json()["delivery"]["delivery_ref"] == first.json()["delivery"]["delivery_ref"]
    await delivered(emt_receivers[SUPPLIER], first.json()["delivery"]["delivery_ref"])

    # The outbox of sealed readouts is gone.
    assert (await api.get(f"/api/v1/tenants/{T}/emt/outbox", headers=supplier.headers)).status_code == 404


async def test_anything_but_a_current_order_of_the_caller_is_a_plain_404(
    api: httpx.AsyncClient, fleet: Fleet, make_user: UserFactory, fleet_operator: ApiUser,
    metering_point: tuple[str, str, int, str]
) -> None:
    melo, *_ = metering_point
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
                                                        metering_point: tuple[str, str, int, str],
                                                        emt_receivers: dict[str, EmtStub]) -> None:
    melo, gid, *_ = metering_point
    supplier = await make_user(tenant=T, role="emt", market_partner_id=SUPPLIER)
    await fleet.fault(gid, "slow", 1.5)
    try:
        r = await api.post(f"{URL}?wait_s=0.2", json={"metering_point": melo}, headers=supplier.headers)
        assert r.status_code == 202 and r.json()["state"] == "running", r.text
        assert r.json()["delivery"]["delivery_ref"] is None  # asked for, not acknowledged yet
        url = r.json()["status_url"]
        body: dict[str, Any] = {}
        for _ in range(100):
            body = (await api.get(url, headers=supplier.headers)).json()
            if body["state"] != "running":
                break
            await asyncio.sleep(0.2)
        assert body["state"] == "succeeded" and body["delivery"]["delivery_ref"]
    finally:
        fleet.clear_fault(gid, "slow")
    await delivered(emt_receivers[SUPPLIER], body["delivery"]["delivery_ref"])


async def test_an_order_without_on_demand_readout_or_its_profile_not_on_the_gateway_is_a_409(
    api: httpx.AsyncClient, fleet: Fleet, make_user: UserFactory, fleet_operator: ApiUser,
    metering_point: tuple[str, str, int, str]
) -> None:
    """The grid operator orders a register profile (TAF 7) on the metering point: it may ask, but the
    gateway delivers no TAF 7 profile on request. It orders TAF 6 (which ends the supplier's: one
    order per metering point and TAF, so this test comes last): not on the gateway before a rollout."""
    melo, gid, *_ = metering_point
    h = fleet_operator.headers
    asked = fleet.applied(gid).get("trigger_readout", 0)
    grid = await make_user(tenant=T, role="emt", market_partner_id=GRID_OPERATOR)
    r = await api.post(f"/api/v1/tenants/{T}/taf-orders", headers=h, json={
        "metering_point": melo, "taf": 7, "emt": GRID_OPERATOR})
    assert r.status_code == 201, r.text
    r = await api.post(URL, json={"metering_point": melo}, headers=grid.headers)
    assert r.status_code == 409 and error_code(r) == "no_on_demand_order", r.text
    r = await api.post(f"/api/v1/tenants/{T}/taf-orders", headers=h, json={
        "metering_point": melo, "taf": 6, "emt": GRID_OPERATOR})
    assert r.status_code == 201, r.text
    r = await api.post(URL, json={"metering_point": melo}, headers=grid.headers)
    assert r.status_code == 409 and error_code(r) == "profile_not_on_gateway", r.text
    assert fleet.applied(gid).get("trigger_readout", 0) == asked  # the gateway was not asked
