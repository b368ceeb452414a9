"""Meter pairing and meter exchange (Zählerwechsel) end to end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from tests.fleet import SUPPLIER, Fleet, melos_of, meters_of, run_process
from tests.helpers import error_code
from tests.processes.conftest import delivered

if TYPE_CHECKING:
    from core.temporal_clients import TemporalClients
    from tests.conftest import ApiUser
    from tests.simulator.emt_stub import EmtStub

T = "fleet"


async def test_pair_the_meters_of_two_gateways_and_a_wrong_master_key_fails(api: httpx.AsyncClient, fleet: Fleet,
                                                                            fleet_operator: ApiUser) -> None:
    h = fleet_operator.headers
    idx = fleet.take(3, where=lambda i: i % 4 != 0)
    gids = [fleet.gid(i) for i in idx]
    wrong = meters_of(idx[2])[0]
    r = await api.patch(f"/api/v1/tenants/{T}/meters/{wrong}", json={"mk0": "00" * 16}, headers=h)
    assert r.status_code == 200, r.text

    done = await run_process(api, h, T, "meter_pairing", gids, options={"failure_min_samples": 10})
    assert (done["counts"]["succeeded"], done["counts"]["failed"]) == (2, 1), done["targets"]
    for i, gid in zip(idx[:2], gids[:2], strict=True):
        assert all(fleet.gateway_state(gid).meters[m]["paired"] for m in meters_of(i))
        assert done["targets"][gid]["result"] == {"meters": 1, "newly_paired": 1}
        assert fleet.applied(gid)["pair_meter"] == 1
    failed = done["targets"][gids[2]]
    assert failed["error_type"] == "rejected" and "master key" in failed["error_message"]
    assert not fleet.gateway_state(gids[2]).meters[wrong]["paired"]

    # Pairing again changes nothing on the gateway: the meter is already paired.
    again = await run_process(api, h, T, "meter_pairing", gids[:1])
    assert again["targets"][gids[0]]["result"] == {"meters": 1, "newly_paired": 0}

    # A meter of another gateway is refused with the reason.
    other = await run_process(api, h, T, "meter_pairing", gids[:1], {"meter_ids": meters_of(idx[1])})
    assert other["targets"][gids[0]]["error_type"] == "meter_not_assigned"


async def test_exchange_a_meter_final_and_initial_reading_and_assignments_moved(
        api: httpx.AsyncClient, fleet: Fleet, fleet_operator: ApiUser, emt_receivers: dict[str, EmtStub],
        temporal_clients: TemporalClients) -> None:
    """A commissioned gateway's meter is replaced by a spare: the gateway delivers the old meter's
    closing and the new meter's opening reading to the supplier itself, the old meter leaves the LMN
    with its profiles, the metering point is measured by the new meter from the exchange on."""
    h = fleet_operator.headers
    (i,) = fleet.take(1, where=lambda i: i % 4 == 0)
    gid = fleet.gid(i)
    old, spare = meters_of(i)
    melo = melos_of(i)[0]
    # The second meter of this gateway's LMN becomes a spare meter: no gateway, no metering point.
    for kind in ("meter-gateway", "meter-metering-point"):
        links = (await api.get(f"/api/v1/tenants/{T}/assignments/{kind}?subject={spare}", headers=h)).json()
        r = await api.post(f"/api/v1/tenants/{T}/assignments/{kind}/{links[0]['id']}/end", json={}, headers=h)
        assert r.status_code == 200, r.text
    order = (await api.post(f"/api/v1/tenants/{T}/taf-orders", headers=h, json={
        "metering_point": melo, "taf": 7, "emt": SUPPLIER})).json()
    await fleet.move_to([gid], "installed")
    assert (await run_process(api, h, T, "commissioning", [gid], {"first_readout": False}))["counts"]["succeeded"] == 1

    bad = await api.post(f"/api/v1/tenants/{T}/processes", headers=h, json={
        "type": "meter_exchange", "target": {"gateway_ids": [gid]}, "reason": "meter broken",
        "params": {"old_meter_id": old, "new_meter_id": old}})
    assert bad.status_code == 400 and error_code(bad) == "invalid_params"
    elsewhere = await api.post(f"/api/v1/tenants/{T}/processes", headers=h, json={
        "type": "meter_exchange", "target": {"gateway_ids": [gid]}, "reason": "meter broken",
        "params": {"old_meter_id": spare, "new_meter_id": old}})
    assert elsewhere.status_code == 409 and error_code(elsewhere) == "meter_not_assigned", elsewhere.text

    done = await run_process(api, h, T, "meter_exchange", [gid], {"old_meter_id": old, "new_meter_id": spare})
    target = done["targets"][gid]
    assert target["state"] == "succeeded", target
    result = target["result"]
    assert (result["final_readings"], result["initial_readings"]) == (1, 1)
    assert (result["assignments_ended"], result["assignments_created"]) == (2, 2)

    on_gateway = fleet.gateway_state(gid)
    assert not on_gateway.meters[old]["paired"] and on_gateway.meters[spare]["paired"]
    assert set(on_gateway.profiles["meter"]) == {f"mp-{spare}"}
    assert [ep["meterProfile"] for ep in on_gateway.profiles["evaluation"].values()] == [f"mp-{spare}"]
    assert fleet.applied(gid)["unpair_meter"] == 1 and fleet.repeated(gid) == 0

    now_melo = (await api.get(f"/api/v1/tenants/{T}/assignments/meter-metering-point?subject={spare}",
                              headers=h)).json()
    assert now_melo[0]["target"] == melo and now_melo[0]["valid_to"] is None
    assert now_melo[0]["valid_from"][:19] == result["exchanged_at"][:19]
    old_gateway = (await api.get(f"/api/v1/tenants/{T}/assignments/meter-gateway?subject={old}", headers=h)).json()
    assert old_gateway[0]["valid_to"] is not None

    history = (await api.get(f"/api/v1/tenants/{T}/gateways/{gid}/profiles", headers=h)).json()["items"]
    ended = {p["profile_id"] for p in history if p["status"] == "terminated"}
    assert {f"mp-{old}", f"ep-taf7-{order['id']}-{old}"} <= ended

    # The readings: deliveries of the supplier's profile on the old meter (closing) and on the new
    # one (opening), made by the gateway, recorded by the process with their x-CIDs.
    client = await temporal_clients.for_namespace(fleet.ctx.namespace)
    details = (await client.get_workflow_handle(f"meter_exchange/{gid}/{done['id']}").result())["details"]
    (closing,) = details["closing_reading_deliveries"]
    (opening,) = details["opening_reading_deliveries"]
    assert (closing["profile"], closing["meter"], closing["reason"]) == (
        f"ep-taf7-{order['id']}-{old}", old, "meter_exchange_closing")
    assert (opening["profile"], opening["meter"], opening["reason"]) == (
        f"ep-taf7-{order['id']}-{spare}", spare, "meter_exchange_opening")
    for ack in (closing, opening):
        d = await delivered(emt_receivers[SUPPLIER], ack["delivery_ref"])
        assert (d.gg("gateway"), d.gg("profile"), d.gg("reason")) == (gid, ack["profile"], ack["reason"])
        assert list(d.ldevs) == [f"{ack['meter'].lower()}.sm"]


async def test_pairing_over_a_connection_that_drops_every_answer_pairs_once(api: httpx.AsyncClient, fleet: Fleet,
                                                                            fleet_operator: ApiUser) -> None:
    """The gateway applies each command and then drops the connection before answering. The
    process repeats the step with the same command ID: the gateway answers from its command table,
    the meter is paired exactly once."""
    (i,) = fleet.take(1, where=lambda i: i % 4 != 0)
    gid = fleet.gid(i)
    await fleet.fault(gid, "flaky", 1.0)
    try:
        done = await run_process(api, fleet_operator.headers, T, "meter_pairing", [gid], options={"attempts": 4})
    finally:
        fleet.clear_fault(gid, "flaky")
    assert done["targets"][gid]["state"] == "succeeded", done["targets"][gid]
    assert fleet.applied(gid) == {"pair_meter": 1}
    assert fleet.repeated(gid) >= 1 and fleet.gateway_state(gid).counters["dropped"] >= 2
    assert fleet.gateway_state(gid).meters[meters_of(i)[0]]["paired"]
