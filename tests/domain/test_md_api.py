"""The master data API as operators and auditors use it: clear reason codes for bad input, roles
enforced, secrets never returned, mirrored fields read-only."""

from __future__ import annotations

import httpx
import pytest

from domain.tenancy.service import TenantContext
from tests.conftest import UserFactory
from tests.domain.conftest import cp_code, gateway_id, malo, melo, meter_id, mp_id, serial
from tests.helpers import error_code

T = "/api/v1/tenants/alpha"


@pytest.fixture(scope="module")
async def operator(make_user: UserFactory, tenant_a: TenantContext) -> dict[str, str]:
    return (await make_user(tenant="alpha", role="operator")).headers


@pytest.fixture(scope="module")
async def auditor(make_user: UserFactory, tenant_a: TenantContext) -> dict[str, str]:
    return (await make_user(tenant="alpha", role="auditor")).headers


async def test_auditors_read_operators_write(api: httpx.AsyncClient, operator: dict[str, str],
                                             auditor: dict[str, str]) -> None:
    body = {"device_id": gateway_id(), "device_type": "emh-casa"}
    denied = await api.post(f"{T}/gateways", json=body, headers=auditor)
    assert denied.status_code == 403 and error_code(denied) == "permission_denied"
    created = await api.post(f"{T}/gateways", json=body, headers=operator)
    assert created.status_code == 201, created.text
    assert created.json()["manufacturer"] == "EMH" and created.json()["state"] == "in_stock"
    read = await api.get(f"{T}/gateways/{body['device_id']}", headers=auditor)
    assert read.status_code == 200 and read.json()["gateway"]["device_id"] == body["device_id"]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"device_id": "EEMH01169", "device_type": "emh-casa"}, 400, "invalid_device_id"),
    ({"device_id": "1EMH0116909060", "device_type": "emh-casa"}, 400, "invalid_gateway_id"),
    ({"device_id": "EEMH0116909060", "device_type": "no-such-type"}, 400, "unknown_device_type"),
    ({"device_id": "ETHE0116909060", "device_type": "emh-casa"}, 400, "device_type_mismatch"),
    ({"device_id": "EEMH0116909060", "device_type": "emh-ebzd"}, 400, "device_type_mismatch"),
    ({"device_id": "EEMH0116909060", "device_type": "emh-casa", "firmware_version": "latest"}, 400,
     "invalid_firmware_version"),
    ({"device_id": "EEMH0116909060", "device_type": "emh-casa", "state": "broken"}, 400, "invalid_state"),
    ({"device_id": "EEMH0116909060", "device_type": "emh-casa", "colour": "red"}, 422, "validation_error"),
])
async def test_bad_gateways_get_a_reason_and_nothing_is_stored(api: httpx.AsyncClient, operator: dict[str, str],
                                                               body: dict[str, str], status: int, code: str) -> None:
    response = await api.post(f"{T}/gateways", json=body, headers=operator)
    assert response.status_code == status and error_code(response) == code, response.text
    assert (await api.get(f"{T}/gateways/{body['device_id']}", headers=operator)).status_code in (400, 404)


async def test_duplicates_and_illegal_transitions_conflict(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    body = {"device_id": gateway_id(), "device_type": "emh-casa"}
    assert (await api.post(f"{T}/gateways", json=body, headers=operator)).status_code == 201
    again = await api.post(f"{T}/gateways", json=body, headers=operator)
    assert again.status_code == 409 and error_code(again) == "already_exists"
    jump = await api.post(f"{T}/gateways/{body['device_id']}/state", json={"state": "in_operation"}, headers=operator)
    assert jump.status_code == 409 and error_code(jump) == "illegal_state_transition"
    assert jump.json()["error"]["details"]["allowed"] == ["faulty", "pre_personalized"]
    step = await api.post(f"{T}/gateways/{body['device_id']}/state", json={"state": "pre_personalized"},
                          headers=operator)
    assert step.status_code == 200 and step.json()["state"] == "pre_personalized"


async def test_lists_filter_page_count_and_export(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    seg = f"API{serial()}"
    ids = sorted(gateway_id() for _ in range(5))
    for n, device in enumerate(ids):
        body = {"device_id": device, "device_type": "emh-casa", "firmware_version": f"2.{n}", "network_segment": seg}
        assert (await api.post(f"{T}/gateways", json=body, headers=operator)).status_code == 201
    query: dict[str, str | int] = {"filter": f"segment = {seg} and firmware >= 2.1", "limit": 2}
    first = (await api.get(f"{T}/gateways", params=query, headers=operator)).json()
    second = (await api.get(f"{T}/gateways", params={**query, "after": first["next_after"]}, headers=operator)).json()
    assert [g["device_id"] for g in first["items"] + second["items"]] == ids[1:]
    assert second["next_after"] is None
    counted = await api.get(f"{T}/gateways/count", params={"filter": query["filter"]}, headers=operator)
    assert counted.json() == {"count": 4}
    export = await api.get(f"{T}/gateways/export", params={"filter": f"segment = {seg}"}, headers=operator)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert export.text.count("\n") == 6 and ids[0] in export.text


@pytest.mark.parametrize("expression", ["segment = A12; drop table gateways", "state = 'x' or 1=1 --",
                                        "nofield = 1", "state in (in_stock"])
async def test_bad_filters_are_400_with_a_position(api: httpx.AsyncClient, operator: dict[str, str],
                                                   expression: str) -> None:
    for path in ("gateways", "gateways/count", "gateways/export", "meters"):
        response = await api.get(f"{T}/{path}", params={"filter": expression}, headers=operator)
        assert response.status_code == 400 and error_code(response) == "invalid_filter", (path, response.text)
        assert isinstance(response.json()["error"]["details"]["position"], int)


async def test_master_keys_go_in_and_never_come_out(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    device, key = meter_id(), "f0e1d2c3b4a5968778695a4b3c2d1e0f"
    created = await api.post(f"{T}/meters", json={"device_id": device, "device_type": "emh-ebzd", "mk0": key},
                             headers=operator)
    assert created.status_code == 201 and created.json()["has_mk0"] is True
    for path in (f"meters/{device}", f"meters/{device}/history", f"meters?filter=device_id%20%3D%20{device}",
                 f"meters/export?filter=device_id%20%3D%20{device}", f"audit?object_id={device}"):
        response = await api.get(f"{T}/{path}", headers=operator)
        assert response.status_code == 200 and key not in response.text.lower(), path
    bad = await api.patch(f"{T}/meters/{device}", json={"mk0": "123"}, headers=operator)
    assert bad.status_code == 400 and error_code(bad) == "invalid_mk0" and "123" not in bad.text


async def test_mirrored_records_change_only_through_imports(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    device = gateway_id()
    csv = f"device_id,device_type,firmware_version\n{device},emh-casa,2.0\n"
    imported = await api.post(f"{T}/imports/gateways", params={"source_system": "SAP-ISU"}, content=csv,
                              headers={**operator, "Content-Type": "text/csv"})
    assert imported.status_code == 200 and imported.json()["created"] == 1, imported.text
    blocked = await api.patch(f"{T}/gateways/{device}", json={"device_type": "emh-casa", "firmware_version": "2.1"},
                              headers=operator)
    assert blocked.status_code == 200  # device_type unchanged, firmware is the GWA's own field
    blocked = await api.patch(f"{T}/gateways/{device}", json={"device_type": "ppc-smgw"}, headers=operator)
    assert blocked.status_code in (400, 409)
    cp = cp_code()
    await api.post(f"{T}/imports/connection-points", params={"source_system": "SAP-ISU"},
                   content=f"code,city\n{cp},Berlin\n", headers={**operator, "Content-Type": "text/csv"})
    refused = await api.patch(f"{T}/connection-points/{cp}", json={"city": "Potsdam"}, headers=operator)
    assert refused.status_code == 409 and error_code(refused) == "mirrored_field_read_only"
    assert refused.json()["error"]["details"] == {"fields": ["city"], "source_system": "SAP-ISU"}
    assert (await api.get(f"{T}/connection-points/{cp}", headers=operator)).json()["leading"] is False


async def test_imports_over_http_report_every_line(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    csv = f"device_id,device_type\n{gateway_id()},emh-casa\nEEMH0x,emh-casa\n{meter_id()},emh-casa\n"
    rejected = await api.post(f"{T}/imports/gateways", content=csv, headers={**operator, "Content-Type": "text/csv"})
    assert rejected.status_code == 400 and error_code(rejected) == "import_rejected"
    assert [(e["line"], e["code"]) for e in rejected.json()["error"]["details"]["errors"]] == [
        (3, "invalid_device_id"), (4, "invalid_gateway_id")]
    upload = await api.post(f"{T}/imports/gateways", files={"file": ("g.csv", csv.splitlines()[0] + "\n"
                                                                     + csv.splitlines()[1] + "\n")},
                            headers=operator)
    assert upload.status_code == 200 and upload.json()["file_name"] == "g.csv" and upload.json()["created"] == 1
    unknown = await api.post(f"{T}/imports/widgets", content="a\n1\n", headers=operator)
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_import_kind"


async def test_topology_over_http(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    gw, meter = gateway_id(), meter_id()
    await api.post(f"{T}/gateways", json={"device_id": gw, "device_type": "emh-casa"}, headers=operator)
    await api.post(f"{T}/meters", json={"device_id": meter, "device_type": "emh-ebzd"}, headers=operator)
    body = {"subject": meter, "target": gw, "valid_from": "2024-01-01T00:00:00+01:00"}
    made = await api.post(f"{T}/assignments/meter-gateway", json=body, headers=operator)
    assert made.status_code == 201, made.text
    clash = await api.post(f"{T}/assignments/meter-gateway", json={**body, "valid_from": "2024-02-01T00:00:00Z"},
                           headers=operator)
    assert clash.status_code == 409 and error_code(clash) == "assignment_overlap"
    detail = (await api.get(f"{T}/gateways/{gw}", headers=operator)).json()
    assert [m["device_id"] for m in detail["topology"]["meters"]] == [meter]
    earlier = (await api.get(f"{T}/gateways/{gw}", params={"as_of": "2023-06-01T00:00:00Z"}, headers=operator)).json()
    assert earlier["topology"]["meters"] == []
    assert detail["history"][0]["action"] == "create"
    ended = await api.post(f"{T}/assignments/meter-gateway/{made.json()['id']}/end",
                           json={"valid_to": "2024-03-01T00:00:00Z"}, headers=operator)
    assert ended.status_code == 200 and ended.json()["valid_to"].startswith("2024-03-01")
    listed = await api.get(f"{T}/assignments/meter-gateway", params={"subject": meter}, headers=operator)
    assert len(listed.json()) == 1
    nokind = await api.get(f"{T}/assignments/gateway-meter", headers=operator)
    assert nokind.status_code == 404 and error_code(nokind) == "unknown_assignment_kind"


async def test_locations_partners_and_catalogue(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    partner = mp_id()
    bad_partner = await api.post(f"{T}/market-partners", json={"mp_id": "12345", "name": "x", "roles": ["LF"]},
                                 headers=operator)
    assert bad_partner.status_code == 400 and error_code(bad_partner) == "invalid_market_partner_id"
    bad_role = await api.post(f"{T}/market-partners", json={"mp_id": partner, "name": "x", "roles": ["BOSS"]},
                              headers=operator)
    assert bad_role.status_code == 400 and error_code(bad_role) == "invalid_role"
    made = await api.post(f"{T}/market-partners", json={
        "mp_id": partner, "name": "Stadtwerke", "roles": ["LF", "VNB"],
        "endpoints": [{"purpose": "meter_data", "url": "https://emt.example:443/smgw"}]}, headers=operator)
    assert made.status_code == 201 and made.json()["roles"] == ["LF", "VNB"]
    assert (await api.get(f"{T}/market-partners", params={"filter": f"mp_id = {partner} and role = LF"},
                          headers=operator)).json()["items"][0]["name"] == "Stadtwerke"

    bad_malo = malo()[:10] + str((int(malo()[10]) + 1) % 10)
    wrong = await api.post(f"{T}/market-locations", json={"malo": "41373559240"}, headers=operator)
    assert wrong.status_code == 400 and error_code(wrong) == "invalid_malo_check_digit"
    assert (await api.post(f"{T}/market-locations", json={"malo": "4137355924"}, headers=operator)).status_code == 400
    assert bad_malo
    ok = await api.post(f"{T}/market-locations", json={"malo": malo(), "supplier": partner}, headers=operator)
    assert ok.status_code == 201, ok.text
    short = await api.post(f"{T}/metering-points", json={"melo": "DE0001"}, headers=operator)
    assert short.status_code == 400 and error_code(short) == "invalid_melo"
    assert (await api.post(f"{T}/metering-points", json={"melo": melo(), "msb": partner},
                           headers=operator)).status_code == 201
    ghost = await api.post(f"{T}/connection-points", json={"code": cp_code(), "grid_operator": mp_id()},
                           headers=operator)
    assert ghost.status_code == 400 and error_code(ghost) == "unknown_market_partner"
    in_use = await api.delete(f"{T}/market-partners/{partner}", headers=operator)
    assert in_use.status_code == 409 and error_code(in_use) == "in_use"

    types = (await api.get(f"{T}/device-types", headers=operator)).json()
    codes = {t["code"] for t in types}
    assert {"theben-conexa-3.0", "emh-casa", "ppc-smgw", "emh-ebzd", "emh-ehz", "iskra-mt176", "iskra-mt631",
            "iskra-mt691"} <= codes
    assert "taf7" in next(t for t in types if t["code"] == "emh-casa")["capabilities"]
    firmware = (await api.get(f"{T}/firmware-versions", params={"device_type": "emh-casa"}, headers=operator)).json()
    assert [f["version"] for f in firmware] == ["1.1.5", "2.1.0"]


async def test_saved_filters_over_http(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    name = f"faulty-{serial()}"
    saved = await api.put(f"{T}/filters/{name}", json={"expression": "state = faulty"}, headers=operator)
    assert saved.status_code == 200 and saved.json()["entity"] == "gateway"
    bad = await api.put(f"{T}/filters/{name}", json={"expression": "state = sad"}, headers=operator)
    assert bad.status_code == 400 and error_code(bad) == "invalid_filter"
    page = await api.get(f"{T}/gateways", params={"saved_filter": name}, headers=operator)
    assert page.status_code == 200 and all(g["state"] == "faulty" for g in page.json()["items"])
    check = await api.post(f"{T}/filters/check", json={"expression": "state = faulty"}, headers=operator)
    assert check.status_code == 200 and "count" in check.json()
    missing = await api.get(f"{T}/gateways", params={"saved_filter": "nope-nope"}, headers=operator)
    assert missing.status_code == 404 and error_code(missing) == "filter_not_found"
    assert (await api.delete(f"{T}/filters/{name}", headers=operator)).status_code == 204
