"""Reading meter data through the API: a metering point's series, its quarter hours as JSON and CSV
(the DST day has 100), raw vs. as known at a time, day quality, the delivery log with refusals; an
EMT user sees its own market partner's data only; bad input is a 4xx with a reason."""

from __future__ import annotations

import dataclasses
import datetime as dt

import httpx

from core.ids import demo_gateway_id
from domain.demo import DEMO_GRID_OPERATOR, DEMO_SUPPLIER, demo_melo
from domain.meterdata.delivery import Delivery
from domain.meterdata.ingest import ingest
from domain.tenancy.service import TenantContext
from tests.conftest import UserFactory
from tests.mdm.test_mdm_ingest import NOW, envelope, taf7_day

BASE = "/api/v1/tenants/mdm/meter-data"
NETZ, VERTRIEB = DEMO_GRID_OPERATOR.mp_id, DEMO_SUPPLIER.mp_id
MELO = demo_melo(2, 0)


async def _deliver(tenant: TenantContext, *deliveries: Delivery) -> None:
    async with tenant.sessions() as session, session.begin():
        for d in deliveries:
            await ingest(session, [(envelope(d), d)], NOW)


async def test_an_operator_reads_quarter_hours_quality_and_the_delivery_log(
        mdm_tenant: TenantContext, api: httpx.AsyncClient, make_user: UserFactory) -> None:
    day, autumn = dt.date(2026, 4, 7), dt.date(2026, 10, 25)
    first = taf7_day(day, gateway=2, missing=(40, 41))
    refused = dataclasses.replace(first, gateway_id=demo_gateway_id(0))  # meter not at gateway 0
    await _deliver(mdm_tenant, first, taf7_day(autumn, gateway=2), refused)
    known_after_first = dt.datetime.now(dt.UTC)
    await _deliver(mdm_tenant, taf7_day(day, gateway=2))  # the late delivery fills the gap
    user = await make_user(tenant="mdm", role="operator")

    r = await api.get(f"{BASE}/metering-points/{MELO}/series", headers=user.headers)
    assert r.status_code == 200, r.text
    assert {(s["obis"], s["market_partner"]) for s in r.json()} >= {("1-0:1.8.0", NETZ), ("1-1:1.29.0", NETZ)}

    r = await api.get(f"{BASE}/metering-points/{MELO}/values", headers=user.headers,
                      params={"obis": "1-1:1.29.0", "from": str(day)})
    body = r.json()
    assert r.status_code == 200 and len(body["intervals"]) == 96
    assert {i["value"] for i in body["intervals"]} == {100} and body["intervals"][41]["version"] == 2
    assert body["intervals"][0]["start"].startswith("2026-04-06T22:00:00")  # local midnight in UTC (CEST)
    earlier = await api.get(f"{BASE}/metering-points/{MELO}/values", headers=user.headers, params={
        "obis": "1-1:1.29.0", "from": str(day), "as_of": known_after_first.isoformat()})
    assert [i["quality"] for i in earlier.json()["intervals"][40:43]] == ["Z30", "Z30", "Z30"]

    autumn_csv = await api.get(f"{BASE}/metering-points/{MELO}/values", headers=user.headers,
                               params={"obis": "1-1:1.29.0", "from": str(autumn), "format": "csv"})
    assert autumn_csv.headers["content-type"].startswith("text/csv")
    assert len(autumn_csv.text.strip().splitlines()) == 1 + 100

    q = await api.get(f"{BASE}/metering-points/{MELO}/quality", headers=user.headers,
                      params={"from": str(day), "to": str(day + dt.timedelta(days=1))})
    assert [(d["completeness"], d["version"]) for d in q.json()] == [(1.0, 2), (0.0, None)]

    log = await api.get(f"{BASE}/deliveries", headers=user.headers, params={"outcome": "refused"})
    assert any(d["refusal"] == "meter_not_assigned" for d in log.json()["items"])


async def test_an_emt_user_sees_its_own_series_only(mdm_tenant: TenantContext, api: httpx.AsyncClient,
                                                    make_user: UserFactory) -> None:
    await _deliver(mdm_tenant, taf7_day(dt.date(2026, 4, 8), gateway=2))
    supplier = await make_user(tenant="mdm", role="emt", market_partner_id=VERTRIEB)
    grid_operator = await make_user(tenant="mdm", role="emt", market_partner_id=NETZ)
    params = {"obis": "1-1:1.29.0", "from": "2026-04-08"}
    assert (await api.get(f"{BASE}/metering-points/{MELO}/series", headers=supplier.headers)).json() == []
    hidden = await api.get(f"{BASE}/metering-points/{MELO}/values", headers=supplier.headers, params=params)
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "series_not_found"
    mine = await api.get(f"{BASE}/metering-points/{MELO}/values", headers=grid_operator.headers, params=params)
    assert mine.status_code == 200
    log = await api.get(f"{BASE}/deliveries", headers=supplier.headers)
    assert all(d["recipient"] == VERTRIEB for d in log.json()["items"])


async def test_bad_input_is_a_clear_4xx(mdm_tenant: TenantContext, api: httpx.AsyncClient,
                                        make_user: UserFactory) -> None:
    user = await make_user(tenant="mdm", role="auditor")
    cases = [
        ({"obis": "1-1:1.29.0", "from": "2026-04-08", "to": "2026-04-01"}, 400, "invalid_range"),
        ({"obis": "1-1:1.29.0", "from": "2024-01-01", "to": "2026-01-01"}, 400, "invalid_range"),
        ({"obis": "9-9:9.9.9", "from": "2026-04-08"}, 404, "series_not_found"),
    ]
    for params, status, code in cases:
        r = await api.get(f"{BASE}/metering-points/{MELO}/values", headers=user.headers, params=params)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    r = await api.get(f"{BASE}/metering-points/DE0000000000000000000000000000000/values", headers=user.headers,
                      params={"obis": "1-1:1.29.0", "from": "2026-04-08"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "metering_point_not_found"
    r = await api.get(f"{BASE}/metering-points/{MELO}/values", headers=user.headers, params={"from": "x"})
    assert r.status_code == 422
