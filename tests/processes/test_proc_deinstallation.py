"""Deinstallation (Ausbau) with final reading, end to end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from sqlalchemy import select

from domain.certificates.models import Certificate
from domain.devices.models import Gateway
from tests.fleet import GRID_OPERATOR, SUPPLIER, Fleet, melos_of, meters_of, run_process, wait_process
from tests.helpers import error_code
from tests.processes.conftest import delivered

if TYPE_CHECKING:
    from core.temporal_clients import TemporalClients
    from tests.conftest import ApiUser
    from tests.simulator.emt_stub import EmtStub

T = "fleet"


async def test_deinstall_two_gateways_final_readings_reach_every_emt(api: httpx.AsyncClient, fleet: Fleet,
                                                                     fleet_operator: ApiUser,
                                                                     emt_receivers: dict[str, EmtStub],
                                                                     temporal_clients: TemporalClients) -> None:
    """Two gateways with orders of both EMTs. While another process holds one of them,
    deinstallation is refused. Then both are deinstalled: each gateway delivers its final reading to
    each EMT itself (the process records the deliveries), the profiles are deactivated on the
    gateways, the assignments end, the certificates are marked for revocation and the gateways are
    deinstalled."""
    h = fleet_operator.headers
    idx = fleet.take(2, where=lambda i: i % 4 != 0)
    gids = [fleet.gid(i) for i in idx]
    for i in idx:
        for taf, emt in ((7, SUPPLIER), (1, GRID_OPERATOR)):
            r = await api.post(f"/api/v1/tenants/{T}/taf-orders", headers=h,
                               json={"metering_point": melos_of(i)[0], "taf": taf, "emt": emt})
            assert r.status_code == 201, r.text
    await fleet.move_to(gids, "installed")
    assert (await run_process(api, h, T, "commissioning", gids, {"first_readout": False}))["counts"]["succeeded"] == 2

    # Another process holds the second gateway: deinstallation is refused until it is done.
    held = await api.post(f"/api/v1/tenants/{T}/processes", headers=h, json={
        "type": "meter_pairing", "target": {"gateway_ids": [gids[1]]}, "reason": "check the LMN"})
    assert held.status_code == 202
    refused = await api.post(f"/api/v1/tenants/{T}/processes", headers=h, json={
        "type": "deinstallation", "target": {"gateway_ids": gids}, "reason": "contract ended"})
    assert refused.status_code == 409 and error_code(refused) == "gateway_busy", refused.text
    assert refused.json()["error"]["details"]["sample"][0]["gateway"] == gids[1]
    assert (await wait_process(api, h, T, held.json()["id"]))["counts"]["succeeded"] == 1

    done = await run_process(api, h, T, "deinstallation", gids)
    assert done["counts"]["succeeded"] == 2, done["targets"]
    for i, gid in zip(idx, gids, strict=True):
        result = done["targets"][gid]["result"]
        assert (result["final_readouts"], result["emts"], result["profiles_deactivated"]) == (2, 2, 2)
        assert not any(ep["active"] for ep in fleet.gateway_state(gid).profiles["evaluation"].values())
        assert fleet.applied(gid)["final_readout"] == 1 and fleet.applied(gid)["deactivate_profiles"] == 1
        assert await fleet.gateway_db_state(gid) == "deinstalled"
        meter = meters_of(i)[0]
        link = (await api.get(f"/api/v1/tenants/{T}/assignments/meter-gateway?subject={meter}", headers=h)).json()
        assert link[0]["valid_to"] is not None
        place = (await api.get(f"/api/v1/tenants/{T}/assignments/gateway-connection-point?subject={gid}",
                               headers=h)).json()
        assert place[0]["valid_to"] is not None
        history = (await api.get(f"/api/v1/tenants/{T}/gateways/{gid}/profiles?status=active", headers=h)).json()
        assert history["items"] == []
        async with fleet.ctx.sessions() as session:
            marked = (await session.scalars(select(Certificate.revocation_requested_at).join(
                Gateway, Gateway.id == Certificate.gateway_id).where(Gateway.device_id == gid))).all()
        assert len(marked) == 3 and all(marked)

    # Each EMT received the final reading of each gateway from the gateway itself, before the
    # profiles were deactivated, under the x-CID the process recorded.
    client = await temporal_clients.for_namespace(fleet.ctx.namespace)
    for gid in gids:
        result = await client.get_workflow_handle(f"deinstallation/{gid}/{done['id']}").result()
        acks = result["details"]["final_readout_deliveries"]
        assert sorted((a["recipient"], a["taf"], a["reason"]) for a in acks) == [
            (GRID_OPERATOR, 1, "final"), (SUPPLIER, 7, "final")]
        for a in acks:
            d = await delivered(emt_receivers[a["recipient"]], a["delivery_ref"])
            assert (d.gg("gateway"), d.gg("profile"), d.gg("reason")) == (gid, a["profile"], "final")

    # A deinstalled gateway takes no further process.
    again = await api.post(f"/api/v1/tenants/{T}/processes", headers=h, json={
        "type": "deinstallation", "target": {"gateway_ids": gids[:1]}, "reason": "twice"})
    assert again.status_code == 409 and error_code(again) == "wrong_lifecycle_state"
