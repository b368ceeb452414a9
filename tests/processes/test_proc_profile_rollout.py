"""TAF orders and the profile rollout that brings gateways to them, end to end."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx

from tests.fleet import GRID_OPERATOR, SUPPLIER, Fleet, melos_of, run_process
from tests.helpers import error_code

if TYPE_CHECKING:
    from tests.conftest import ApiUser, UserFactory

T = "fleet"
ORDERS = f"/api/v1/tenants/{T}/taf-orders"


async def _order(api: httpx.AsyncClient, h: dict[str, str], melo: str, taf: int, emt: str,
                 params: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await api.post(ORDERS, headers=h, json={"metering_point": melo, "taf": taf, "emt": emt,
                                                "params": params or {}})
    assert r.status_code == 201, r.text
    return r.json()


async def test_taf_orders_are_validated_per_taf_before_anything_is_stored(api: httpx.AsyncClient, fleet: Fleet,
                                                                          fleet_operator: ApiUser,
                                                                          make_user: UserFactory) -> None:
    h = fleet_operator.headers
    (i,) = fleet.take(1, where=lambda i: i % 4 == 0)  # two meters: consumption and feed-in MeLo
    consumption, feed_in = melos_of(i)
    cases = [
        ({"metering_point": consumption, "taf": 3, "emt": SUPPLIER}, "unsupported_taf"),
        ({"metering_point": consumption, "taf": 7, "emt": SUPPLIER, "params": {"interval_s": 300}},
         "invalid_taf_params"),
        ({"metering_point": consumption, "taf": 7, "emt": SUPPLIER, "params": {"registers": ["1-0:32.7.0"]}},
         "invalid_taf_params"),
        ({"metering_point": consumption, "taf": 2, "emt": SUPPLIER, "params": {"switching_times": [
            {"at": "06:00", "tariff_register": "1-0:1.8.1"}]}}, "invalid_taf_params"),
        ({"metering_point": consumption, "taf": 2, "emt": GRID_OPERATOR, "params": {"switching_times": [
            {"at": "06:00", "tariff_register": "1-0:1.8.1"}, {"at": "22:00", "tariff_register": "1-0:1.8.2"}]}},
         "emt_role_mismatch"),
        ({"metering_point": consumption, "taf": 9, "emt": GRID_OPERATOR}, "direction_mismatch"),
        ({"metering_point": "DE0000171011599999999999999999999", "taf": 7, "emt": SUPPLIER}, "unknown_metering_point"),
        ({"metering_point": consumption, "taf": 7, "emt": "9900000000031"}, "unknown_emt"),
        ({"metering_point": consumption, "taf": 7, "emt": SUPPLIER, "bogus": 1}, "validation_error"),
    ]
    for body, code in cases:
        r = await api.post(ORDERS, json=body, headers=h)
        assert r.status_code in (400, 422) and error_code(r) == code, (body, r.text)
    assert (await api.get(f"{ORDERS}?metering_point={consumption}", headers=h)).json()["items"] == []

    # Valid orders of every TAF the demo partners can take, with parameters completed by defaults.
    made = [await _order(api, h, consumption, 1, GRID_OPERATOR),
            await _order(api, h, consumption, 2, SUPPLIER, {"switching_times": [
                {"at": "06:00", "tariff_register": "1-0:1.8.1"}, {"at": "22:00", "tariff_register": "1-0:1.8.2"}]}),
            await _order(api, h, consumption, 6, SUPPLIER),
            await _order(api, h, consumption, 7, SUPPLIER),
            await _order(api, h, feed_in, 9, GRID_OPERATOR, {"interval_s": 60, "delivery_period_s": 900}),
            await _order(api, h, consumption, 10, GRID_OPERATOR)]
    assert [o["taf"] for o in made] == [1, 2, 6, 7, 9, 10]
    assert made[3]["params"] == {"registers": ["1-0:1.8.0"], "interval_s": 900, "delivery_period_s": 86400}
    assert all(o["gateway"] == fleet.gid(i) and o["status"] == "active" for o in made)
    auditor = await make_user(tenant=T, role="auditor")
    assert (await api.post(ORDERS, json={"metering_point": consumption, "taf": 7, "emt": SUPPLIER},
                           headers=auditor.headers)).status_code == 403
    listed = (await api.get(f"{ORDERS}?gateway={fleet.gid(i)}", headers=auditor.headers)).json()["items"]
    assert len(listed) == 6


async def test_rollout_of_a_new_taf_then_an_emt_change_on_a_metering_point(api: httpx.AsyncClient, fleet: Fleet,
                                                                           fleet_operator: ApiUser) -> None:
    """Two gateways in operation with a billing TAF for the grid operator. The supplier orders a
    register profile: the rollout installs the supplier's certificates and writes its communication
    and evaluation profile. Then the metering point's register profile moves to the grid operator
    (an EMT change): the old profile is terminated and deleted, the new one installed, and the
    supplier's communication profile, used by nothing any more, deleted. A rollout with nothing to
    do sends nothing."""
    h = fleet_operator.headers
    idx = fleet.take(2, where=lambda i: i % 4 != 0)
    gids = [fleet.gid(i) for i in idx]
    for i in idx:
        await _order(api, h, melos_of(i)[0], 1, GRID_OPERATOR)
    await fleet.move_to(gids, "installed")
    assert (await run_process(api, h, T, "commissioning", gids, {"first_readout": False}))["counts"]["succeeded"] == 2
    before = {g: Counter(fleet.applied(g)) for g in gids}

    supplier_orders = [await _order(api, h, melos_of(i)[0], 7, SUPPLIER) for i in idx]
    done = await run_process(api, h, T, "profile_rollout", gids)
    assert done["counts"]["succeeded"] == 2, done["targets"]
    for gid in gids:
        delta = Counter(fleet.applied(gid)) - before[gid]
        assert delta == Counter({"install_certificates": 1, "write_communication_profile": 1,
                                 "write_evaluation_profile": 1}), (gid, delta)
        assert done["targets"][gid]["result"]["written"] == 2

    # EMT change on the first gateway's metering point: TAF 7 now goes to the grid operator.
    gid = gids[0]
    old = supplier_orders[0]
    new = await _order(api, h, melos_of(idx[0])[0], 7, GRID_OPERATOR)
    assert new["terminated_order"] == old["id"]
    old_now = (await api.get(f"{ORDERS}/{old['id']}", headers=h)).json()
    assert old_now["status"] == "terminated" and old_now["replaced_by"] == new["id"]
    assert "EMT change" in old_now["termination_reason"]
    mark = Counter(fleet.applied(gid))
    done = await run_process(api, h, T, "profile_rollout", [gid], {"taf_order_ids": [new["id"], old["id"]]})
    assert done["targets"][gid]["result"]["deleted"] == 1, done["targets"][gid]
    # The supplier's last evaluation profile is gone: its communication profile is deleted too.
    assert done["targets"][gid]["result"]["communication_deleted"] == 1, done["targets"][gid]
    assert Counter(fleet.applied(gid)) - mark == Counter({"install_certificates": 1, "write_evaluation_profile": 1,
                                                          "delete_evaluation_profile": 1,
                                                          "delete_communication_profile": 1})
    comms = fleet.gateway_state(gid).profiles["communication"]
    assert {cp["peer"] for cp in comms.values()} == {GRID_OPERATOR}
    history = (await api.get(f"/api/v1/tenants/{T}/gateways/{gid}/profiles?kind=communication", headers=h)).json()
    assert {(p["content"]["peer"], p["status"]) for p in history["items"]} == {
        (GRID_OPERATOR, "active"), (SUPPLIER, "terminated")}
    evaluations = fleet.gateway_state(gid).profiles["evaluation"]
    assert {ep["recipient"] for ep in evaluations.values() if ep["taf"] == 7} == {GRID_OPERATOR}
    history = (await api.get(f"/api/v1/tenants/{T}/gateways/{gid}/profiles?kind=evaluation", headers=h)).json()
    by_order = {p["taf_order_id"]: p for p in history["items"]}
    assert by_order[old["id"]]["status"] == "terminated" and by_order[old["id"]]["valid_to"]
    assert by_order[new["id"]]["status"] == "active" and by_order[new["id"]]["content"]["recipient"] == GRID_OPERATOR

    # Nothing changed since: the rollout finds nothing to do and sends nothing.
    mark = Counter(fleet.applied(gid))
    done = await run_process(api, h, T, "profile_rollout", [gid])
    assert done["targets"][gid]["result"] == {"written": 0, "deleted": 0, "changes": "none"}
    assert Counter(fleet.applied(gid)) == mark

    # More registers on the order: the meter profile is rewritten and its old version superseded.
    patched = await api.patch(f"{ORDERS}/{new['id']}", json={"params": {"registers": ["1-0:1.8.0", "1-0:2.8.0"]}},
                              headers=h)
    assert patched.status_code == 200, patched.text
    done = await run_process(api, h, T, "profile_rollout", [gid])
    assert done["counts"]["succeeded"] == 1, done["targets"]
    meters = (await api.get(f"/api/v1/tenants/{T}/gateways/{gid}/profiles?kind=meter", headers=h)).json()["items"]
    assert sorted(p["status"] for p in meters) == ["active", "superseded"]
    active = next(p for p in meters if p["status"] == "active")
    assert [r["obis"] for r in active["content"]["registers"]] == ["1-0:1.8.0", "1-0:2.8.0"]


async def test_rollout_needs_the_gateway_in_operation_and_known_orders(api: httpx.AsyncClient, fleet: Fleet,
                                                                       fleet_operator: ApiUser) -> None:
    h = fleet_operator.headers
    (i,) = fleet.take(1)
    gid = fleet.gid(i)
    await fleet.move_to([gid], "installed")
    r = await api.post(f"/api/v1/tenants/{T}/processes", headers=h, json={
        "type": "profile_rollout", "target": {"gateway_ids": [gid]}, "reason": "new TAF"})
    assert r.status_code == 409 and error_code(r) == "wrong_lifecycle_state"
    r = await api.post(f"/api/v1/tenants/{T}/processes", headers=h, json={
        "type": "profile_rollout", "target": {"gateway_ids": [gid]}, "params": {"taf_order_ids": ["x"]},
        "reason": "new TAF"})
    assert r.status_code == 400 and error_code(r) == "invalid_params"
    (j,) = fleet.take(1)
    r = await api.post(f"/api/v1/tenants/{T}/processes", headers=h, json={
        "type": "profile_rollout", "target": {"gateway_ids": [fleet.gid(j)]},
        "params": {"taf_order_ids": [987654321]}, "reason": "new TAF"})
    assert r.status_code == 400 and error_code(r) == "unknown_taf_order", r.text


async def test_time_of_use_schedule_reaches_the_gateway(api: httpx.AsyncClient, fleet: Fleet,
                                                        fleet_operator: ApiUser) -> None:
    """TAF 2: the supplier's daily switching times travel in the evaluation profile, and the meter
    profile offers the tariff registers they name; a changed schedule rewrites the profile."""
    h = fleet_operator.headers
    (i,) = fleet.take(1, where=lambda i: i % 4 != 0)
    gid = fleet.gid(i)
    schedule = [{"at": "22:00", "tariff_register": "1-0:1.8.2"}, {"at": "06:00", "tariff_register": "1-0:1.8.1"}]
    order = await _order(api, h, melos_of(i)[0], 2, SUPPLIER, {"switching_times": schedule})
    await fleet.move_to([gid], "installed")
    done = await run_process(api, h, T, "commissioning", [gid], {"first_readout": False})
    assert done["counts"]["succeeded"] == 1, done["targets"]
    state = fleet.gateway_state(gid)
    (ep,) = [p for p in state.profiles["evaluation"].values() if p["taf"] == 2]
    assert ep["switchingTimes"] == [{"at": "06:00", "register": "1-0:1.8.1"}, {"at": "22:00", "register": "1-0:1.8.2"}]
    assert ep["recipient"] == SUPPLIER and {"1-0:1.8.1", "1-0:1.8.2"} <= set(ep["registers"])
    offered = {r["obis"] for r in state.profiles["meter"][ep["meterProfile"]]["registers"]}
    assert {"1-0:1.8.1", "1-0:1.8.2"} <= offered

    patched = await api.patch(f"{ORDERS}/{order['id']}", headers=h, json={"params": {"switching_times": [
        {"at": "07:00", "tariff_register": "1-0:1.8.1"}, {"at": "21:00", "tariff_register": "1-0:1.8.2"}]}})
    assert patched.status_code == 200, patched.text
    mark = Counter(fleet.applied(gid))
    done = await run_process(api, h, T, "profile_rollout", [gid])
    assert done["counts"]["succeeded"] == 1, done["targets"]
    # (the recipient's certificates go with every profile written for it, as in any rollout)
    assert Counter(fleet.applied(gid)) - mark == Counter({"install_certificates": 1, "write_evaluation_profile": 1})
    (ep,) = [p for p in fleet.gateway_state(gid).profiles["evaluation"].values() if p["taf"] == 2]
    assert [s["at"] for s in ep["switchingTimes"]] == ["07:00", "21:00"]
