"""Time synchronisation and logbook readout, through the API, against the simulated fleet."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from tests.fleet import Fleet, run_process

if TYPE_CHECKING:
    from tests.conftest import ApiUser

T = "fleet"


async def test_time_sync_corrects_a_drifting_clock_once_and_raises_an_event(api: httpx.AsyncClient, fleet: Fleet,
                                                                            fleet_operator: ApiUser) -> None:
    h = fleet_operator.headers
    idx = fleet.take(3)
    gids = [fleet.gid(i) for i in idx]
    drifting = gids[0]
    await fleet.fault(drifting, "clock_drift", 30)  # 30 s off: beyond the 9 s alarm limit

    done = await run_process(api, h, T, "time_sync", gids, {"correct_above_ms": 500, "alarm_above_ms": 9000})
    assert done["state"] == "completed" and done["counts"]["succeeded"] == 3, done["targets"]
    drift = done["targets"][drifting]["result"]
    assert drift["corrected"] is True and abs(drift["offset_ms"]) > 25_000 and abs(drift["offset_after_ms"]) < 500
    assert drift["event"] == "clock_offset"
    assert fleet.applied(drifting).get("set_time") == 1
    for gid in gids:  # simulated clocks start off by up to a few seconds: whoever was off got set once
        result = done["targets"][gid]["result"]
        assert fleet.applied(gid).get("set_time", 0) == (1 if result["corrected"] else 0)
        assert not result["corrected"] or abs(result["offset_after_ms"]) < 500

    # A second run finds every clock within the limit and sets none.
    again = await run_process(api, h, T, "time_sync", gids, {"correct_above_ms": 500})
    assert all(again["targets"][g]["result"]["corrected"] is False for g in gids), again["targets"]
    assert fleet.applied(drifting).get("set_time") == 1

    events = (await api.get(f"/api/v1/tenants/{T}/gateways/{drifting}/events", headers=h))
    if events.status_code == 200:  # the head-end's event listing, when present
        assert any(e["code"] == "clock_offset" for e in events.json()["items"])


async def test_logbook_readout_stores_entries_once_and_they_can_be_filtered(api: httpx.AsyncClient, fleet: Fleet,
                                                                            fleet_operator: ApiUser) -> None:
    h = fleet_operator.headers
    (i,) = fleet.take(1, where=lambda i: fleet.gid(i)[1:4] != "PPC")  # PPC offers no calibration log
    gid = fleet.gid(i)
    await fleet.fault(gid, "tamper_alarm")  # leaves an error entry in a log

    first = await run_process(api, h, T, "logbook_readout", [gid], {"logs": ["system", "calibration"]})
    assert first["state"] == "completed", first["targets"]
    result = first["targets"][gid]["result"]
    assert result["system_read"] > 0 and result["system_new"] == result["system_read"]

    entries = (await api.get(f"/api/v1/tenants/{T}/logbook?gateway={gid}&limit=1000", headers=h)).json()["items"]
    assert len(entries) == result["system_read"] + result["calibration_read"]
    assert {e["log"] for e in entries} <= {"system", "calibration"}
    errors = (await api.get(f"/api/v1/tenants/{T}/logbook?gateway={gid}&min_level=2", headers=h)).json()["items"]
    assert errors and all(e["level"] >= 2 for e in errors)
    word = errors[0]["text"].split()[0]
    found = (await api.get(f"/api/v1/tenants/{T}/logbook?gateway={gid}&text={word.upper()}", headers=h)).json()
    assert any(e["id"] == errors[0]["id"] for e in found["items"])

    # The next readout continues after the last stored record: nothing is stored twice.
    again = await run_process(api, h, T, "logbook_readout", [gid], {"logs": ["system", "calibration"]})
    assert again["targets"][gid]["result"]["system_new"] == again["targets"][gid]["result"]["system_read"]
    after = (await api.get(f"/api/v1/tenants/{T}/logbook?gateway={gid}&limit=1000", headers=h)).json()["items"]
    assert len({(e["log"], e["record"]) for e in after}) == len(after)


async def test_a_log_the_vendor_does_not_offer_is_noted_and_the_others_read(api: httpx.AsyncClient, fleet: Fleet,
                                                                            fleet_operator: ApiUser) -> None:
    (i,) = fleet.take(1, where=lambda i: fleet.gid(i)[1:4] == "PPC")
    gid = fleet.gid(i)
    done = await run_process(api, fleet_operator.headers, T, "logbook_readout", [gid],
                             {"logs": ["system", "calibration"]})
    assert done["state"] == "completed" and done["counts"]["succeeded"] == 1, done["targets"]
    result = done["targets"][gid]["result"]
    assert result["calibration_unsupported"] is True and result["system_read"] > 0
