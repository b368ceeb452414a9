"""Every admin command of docs/protocol.md section 10, end to end over real sockets: wake-up ->
TLS -> request (CMS sealed for the gateway) -> answer (CMS from the gateway) or 202 + Notify."""

from __future__ import annotations

import time
from pathlib import Path

import defusedxml.ElementTree as DET

from pki import cms
from pki.testpki import TestPki
from simulator.meters import INTERVAL_S, MeterModel
from simulator.run import Simulator
from simulator.state import meter_ids
from simulator.xmlcodec import parse_time
from tests.simulator.conftest import connect, fleet, gid
from tests.simulator.emt_stub import Delivery
from tests.simulator.gwa_stub import GwaStub, child, child_of, local, xml
from tests.simulator.helpers import (
    CERTS_INSTALL,
    CERTS_READ,
    CLOCK,
    COMM_PROFILE,
    CONSUMER_LOG,
    DEVICE_INFO,
    EVAL_PROFILE,
    LMN,
    METER_PROFILE,
    SYSTEM_LOG,
    brute_force_tariffs,
    cert_el,
    commission,
    emt_certificates,
    new_id,
    pair,
    post,
)

Q = "{urn:gridgate:gwa:1}"


async def test_device_info_per_vendor(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    expected = {0: ("Theben", "CONEXA 3.0", {"system", "calibration"}), 1: ("EMH", "CASA",
                {"system", "calibration", "consumer"}), 2: ("PPC", "SMGW", {"system"})}
    for i, (vendor, model, logs) in expected.items():
        link = await connect(sim, stub, gid(i), sim_pki)
        root = (await link.request("GET", DEVICE_INFO)).root
        assert root is not None and root.findtext(Q + "vendor") == vendor and root.findtext(Q + "model") == model
        assert root.findtext(Q + "state") == "personalized"
        assert {c.get("value") for c in root.findall(Q + "capability") if c.get("name") == "log"} == logs
        assert [m.get("id") for m in root.findall(Q + "meter")] == meter_ids(i)
        assert root.findtext(Q + "serverId") == "0a0e" + gid(i)[1:4].encode().hex() + "01" + \
            (16_900_000 + i).to_bytes(4, "big").hex()


async def test_clock_read_set_and_shift(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    link = await connect(sim, stub, gid(0), sim_pki)
    root = (await link.request("GET", CLOCK)).root
    assert root is not None and local(root) == "clock" and root.get("valid") == "true"
    target = "2030-01-01T00:00:00.000Z"
    assert (await link.request("PUT", CLOCK, xml("clock", {"time": target, "mode": "set"}),
                               command_id=new_id())).status == 204
    assert (await link.request("GET", CLOCK)).element.get("time", "").startswith("2030-01-01T00:00:0")
    assert (await link.request("PUT", CLOCK, xml("clock", {"mode": "shift", "shiftMs": -5000}),
                               command_id=new_id())).status == 204
    assert (await link.request("GET", CLOCK)).element.get("time", "").startswith("2029-12-31T23:59:5")


async def test_certificates_read_and_install_all_or_nothing(sim: Simulator, stub: GwaStub, sim_pki: TestPki,
                                                            tmp_path: Path) -> None:
    link = await connect(sim, stub, gid(0), sim_pki)
    own = (await link.request("GET", CERTS_READ)).root
    assert own is not None
    assert sorted(c.get("usage", "") for c in own.findall(Q + "certificate")) == ["enc", "sig", "tls"]
    first = await post(link, CERTS_INSTALL, emt_certificates(sim_pki))
    assert first.status == 200
    assert {c.get("status") for c in first.element.findall(Q + "certificate")} == {"installed"}
    again = await post(link, CERTS_INSTALL, emt_certificates(sim_pki))
    assert {c.get("status") for c in again.element.findall(Q + "certificate")} == {"unchanged"}
    from pki.testpki import init_test_pki

    foreign = init_test_pki(tmp_path / "foreign")
    mixed = xml("certificates", {}, cert_el("emt2", "emt", "enc", sim_pki.emts["emt2"].enc.cert),
                cert_el("emt9", "emt", "enc", foreign.emts["emt1"].enc.cert))
    bad = await post(link, CERTS_INSTALL, mixed)
    assert bad.status == 422 and bad.reason == "certificate_invalid"
    st = fleet(sim).gateways[gid(0)].state
    assert not any(k.startswith("emt:emt2") for k in st.certificates)  # nothing of the failed batch installed


async def test_pairing_profiles_readout_final_readout(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g = gid(0)
    meter = meter_ids(0)[0]
    link = await connect(sim, stub, g, sim_pki)
    # a profile for a meter that is not paired yet is refused
    mp = xml("meterProfile", {"id": "mp-x", "meter": meter, "interface": "lmn-wired", "capturePeriod": 900},
             child("register", {"obis": "1-0:1.8.0"}))
    assert (await post(link, METER_PROFILE.format(1), mp)).reason == "not_paired"
    wrong = await pair(link, stub, meter, mk0=bytes(16))
    assert wrong.get("status") == "403" and child_of(wrong, "error").get("reason") == "rejected"
    await commission(link, stub, sim_pki, meter)
    again = await pair(link, stub, meter)
    assert child_of(again, "meterPaired").get("status") == "already_paired"
    info = (await link.request("GET", DEVICE_INFO)).element
    assert info.findtext(Q + "state") == "operational"
    # unknown references and vendor limits
    bad_ep = xml("evaluationProfile", {"id": "ep-bad", "taf": 7, "recipient": "emt1", "communicationProfile": "nope",
                                       "meterProfile": f"mp-{meter}", "interval": 900, "deliveryPeriod": 86400},
                 child("register", {"obis": "1-0:1.8.0"}))
    assert (await post(link, EVAL_PROFILE.format(1), bad_ep)).reason == "unknown_profile"
    # readouts: the gateway starts a delivery to the EMT (docs/protocol.md 14) and answers which one;
    # no meter data in the answer to the GWA
    store = fleet(sim).store
    before = len(store.deliveries(g))
    req = xml("readoutRequest", {"profile": f"ep-taf7-{meter}", "reason": "first_readout"})
    cmd = new_id("first")
    out = await post(link, EVAL_PROFILE.format(4), req, cmd)
    assert out.status == 200 and local(out.element) == "readoutTriggered", out
    delivery = child_of(out.element, "delivery")
    assert (delivery.get("profile"), delivery.get("taf"), delivery.get("recipient"), delivery.get("meter"),
            delivery.get("reason")) == (f"ep-taf7-{meter}", "7", "emt1", meter, "first_readout")
    assert (delivery.get("cid") or "").startswith("uuid:") and delivery.get("valuesFrom")
    values_at = parse_time(delivery.get("valuesAt", ""))
    assert values_at % INTERVAL_S == 0 and abs(values_at - time.time()) < 2 * INTERVAL_S
    assert not (out.element.text or "").strip() and len(list(delivery)) == 0
    (row,) = [r for r in store.deliveries(g) if r.cid == delivery.get("cid")]
    assert (row.profile, row.reason, row.taf, row.recipient) == (f"ep-taf7-{meter}", "first_readout", 7, "emt1")
    # the same command ID again: the stored answer, no second delivery
    repeated = await post(link, EVAL_PROFILE.format(4), req, cmd)
    assert child_of(repeated.element, "delivery").get("cid") == delivery.get("cid")
    assert len(store.deliveries(g)) == before + 1
    # recipient + meter: the gateway looks for that EMT's TAF 6 profile on the meter
    by_meter = xml("readoutRequest", {"recipient": "emt1", "meter": meter, "reason": "on_demand"})
    assert (await post(link, EVAL_PROFILE.format(4), by_meter)).reason == "unknown_profile"
    ep6 = xml("evaluationProfile", {"id": f"ep-taf6-{meter}", "taf": 6, "recipient": "emt1",
                                    "communicationProfile": "cp-emt1", "meterProfile": f"mp-{meter}",
                                    "interval": 900, "deliveryPeriod": 86400},
              child("register", {"obis": "1-0:1.8.0"}))
    assert (await post(link, EVAL_PROFILE.format(1), ep6)).status == 200
    out = await post(link, EVAL_PROFILE.format(4), by_meter)
    delivery = child_of(out.element, "delivery")
    assert (delivery.get("profile"), delivery.get("taf"), delivery.get("reason")) == (f"ep-taf6-{meter}", "6",
                                                                                       "on_demand")
    assert delivery.get("valuesFrom") is None
    refusals: list[tuple[dict[str, object], str]] = [
        ({"profile": f"ep-taf6-{meter}", "reason": "final"}, "malformed"), ({"profile": "ep-nope"}, "unknown_profile"),
        ({"meter": meter}, "malformed")]
    for bad, reason in refusals:
        assert (await post(link, EVAL_PROFILE.format(4), xml("readoutRequest", bad))).reason == reason, bad
    assert (await post(link, EVAL_PROFILE.format(2), xml("profileRef", {"id": f"ep-taf6-{meter}"}))).status == 200
    # deinstallation: final readout (202 + Notify listing the deliveries started), then deactivate
    cid = new_id("final")
    assert (await post(link, EVAL_PROFILE.format(5), xml("finalReadoutRequest", {"reason": "deinstallation"}),
                       cid)).status == 202
    notify = await stub.wait_notify(cid)
    deliveries = child_of(notify, "finalReadout").findall(Q + "delivery")
    assert [(d.get("profile"), d.get("reason")) for d in deliveries] == [(f"ep-taf7-{meter}", "final")]
    assert [r.reason for r in store.deliveries(g) if r.cid == deliveries[0].get("cid")] == ["final"]
    deact = await post(link, EVAL_PROFILE.format(3), xml("deactivateProfiles", {"all": "true"}))
    assert [p.get("wasActive") for p in deact.element.findall(Q + "profile")] == ["true"]
    # removal order is enforced: meter profile in use, meter in use
    assert (await post(link, METER_PROFILE.format(2), xml("profileRef", {"id": f"mp-{meter}"}))).reason == "rejected"
    assert (await post(link, EVAL_PROFILE.format(2), xml("profileRef", {"id": f"ep-taf7-{meter}"}))).status == 200
    assert (await post(link, LMN.format(2), xml("unpairMeter", {"meter": meter}))).reason == "rejected"
    assert (await post(link, METER_PROFILE.format(2), xml("profileRef", {"id": f"mp-{meter}"}))).status == 200
    unp = await post(link, LMN.format(2), xml("unpairMeter", {"meter": meter}))
    assert unp.element.get("existed") == "true"


async def test_vendor_capabilities_refuse(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    link = await connect(sim, stub, gid(2), sim_pki)  # PPC: system log only, TAF 1/2/6/7
    assert (await link.request("GET", CONSUMER_LOG)).reason == "not_found"
    meter = meter_ids(2)[0]
    await commission(link, stub, sim_pki, meter)
    taf10 = xml("evaluationProfile", {"id": "ep-10", "taf": 10, "recipient": "emt1", "communicationProfile": "cp-emt1",
                                      "meterProfile": f"mp-{meter}", "interval": 900, "deliveryPeriod": 900},
                child("register", {"obis": "1-0:1.8.0"}))
    r = await post(link, EVAL_PROFILE.format(1), taf10)
    assert (r.status, r.reason) == (501, "unsupported")


async def test_logbook_range_and_paging(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    link = await connect(sim, stub, gid(1), sim_pki)
    for n in range(5):
        await link.request("PUT", CLOCK, xml("clock", {"mode": "shift", "shiftMs": n}), command_id=new_id())
    full = (await link.request("GET", SYSTEM_LOG)).root
    assert full is not None and full.get("log") == "system"
    records = [int(e.get("record", 0)) for e in full.findall(Q + "entry")]
    assert records == list(range(1, len(records) + 1)) and int(full.get("last", 0)) == records[-1] >= 7
    page = (await link.request("GET", SYSTEM_LOG, query="sa.fromidx=2&sa.toidx=6&sa.count=3")).element
    assert [int(e.get("record", 0)) for e in page.findall(Q + "entry")] == [2, 3, 4]
    assert page.get("more") == "true"
    e = page.find(Q + "entry")
    assert e is not None and e.get("level") in {"1", "2", "3", "4"} and e.get("outcome") in {"0", "1"} and e.get("time")
    assert (await link.request("GET", SYSTEM_LOG, query="sa.count=x")).reason == "malformed"


async def test_protocol_errors(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    link = await connect(sim, stub, gid(0), sim_pki)
    assert (await link.request("DELETE", METER_PROFILE.format(1))).status == 405
    assert (await link.request("GET", "objects/3-0100010800ff/attributes/2")).reason == "not_found"
    assert (await link.request("GET", DEVICE_INFO, host="other.sm")).status == 403
    no_id = await link.request("POST", COMM_PROFILE.format(1), xml("profileRef", {"id": "x"}))
    assert (no_id.status, no_id.reason) == (400, "malformed")
    # a container signed by someone other than the GWA (here: an EMT) is refused
    emt = sim_pki.emts["emt1"]
    forged = cms.seal(xml("profileRef", {"id": "x"}), sign_key=emt.sig.key, sign_cert=emt.sig.cert,
                      recipient_cert=sim_pki.gateway(gid(0)).enc.cert)
    r = await link.request("POST", COMM_PROFILE.format(2), raw_body=forged, command_id=new_id())
    assert (r.status, r.reason) == (403, "cms_invalid")
    r = await link.request("POST", COMM_PROFILE.format(2), raw_body=b"garbage", command_id=new_id())
    assert (r.status, r.reason) == (403, "cms_invalid")
    r = await link.request("POST", COMM_PROFILE.format(2), b"<notxml", command_id=new_id())
    assert (r.status, r.reason) == (400, "malformed")
    # the connection is still usable
    assert (await link.request("GET", DEVICE_INFO)).status == 200


async def test_taf2_readout_derives_tariff_registers_from_the_schedule(sim: Simulator, stub: GwaStub,
                                                                       sim_pki: TestPki) -> None:
    g, meter = gid(0), meter_ids(0)[0]
    link = await connect(sim, stub, g, sim_pki)
    await commission(link, stub, sim_pki, meter)
    mp = xml("meterProfile", {"id": f"mp-{meter}", "meter": meter, "interface": "lmn-wired", "capturePeriod": 900},
             *(child("register", {"obis": o, "unit": 30, "scaler": 0}) for o in ("1-0:1.8.0", "1-0:2.8.0",
                                                                                  "1-0:1.8.1", "1-0:1.8.2")))
    assert (await post(link, METER_PROFILE.format(1), mp)).status == 200
    pid = f"ep-taf2-{meter}"
    ep = xml("evaluationProfile", {"id": pid, "taf": 2, "recipient": "emt1", "communicationProfile": "cp-emt1",
                                   "meterProfile": f"mp-{meter}", "interval": 900, "deliveryPeriod": 86400},
             child("register", {"obis": "1-0:1.8.1"}), child("register", {"obis": "1-0:1.8.2"}),
             child("switchingTime", {"at": "06:00", "register": "1-0:1.8.1"}),
             child("switchingTime", {"at": "22:00", "register": "1-0:1.8.2"}))
    assert (await post(link, EVAL_PROFILE.format(1), ep)).element.get("status") == "created"
    stored = fleet(sim).gateways[g].state.profiles["evaluation"][pid]
    assert abs(stored["since"] - time.time()) < 60
    stored["since"] = since = time.time() - 3 * 86400  # as if written three days ago
    # writing the same profile again changes nothing, the registers keep counting from then
    assert (await post(link, EVAL_PROFILE.format(1), ep)).element.get("status") == "unchanged"
    assert stored["since"] == since
    # a readout on request delivers the profile's registers at the last quarter hour to the EMT
    out = await post(link, EVAL_PROFILE.format(4), xml("readoutRequest", {"profile": pid, "reason": "on_demand"}))
    ack = child_of(out.element, "delivery")
    (row,) = [r for r in fleet(sim).store.deliveries(g) if r.cid == ack.get("cid")]
    payload = fleet(sim).store.delivery_xml(row.id)
    assert payload is not None
    delivered = Delivery("", {}, None, "", "", DET.fromstring(payload), payload, 0.0, 0)
    assert delivered.gg("reason") == "on_demand" and delivered.gg("profile") == pid
    k = int(parse_time(ack.get("valuesAt", "")) // INTERVAL_S)
    high, low = (delivered.object(4, h).attributes for h in ("0100010801ff", "0100010802ff"))
    assert parse_time(high[5]) == parse_time(low[5]) == k * INTERVAL_S
    model, start_k = MeterModel(meter), -(-int(since) // INTERVAL_S)
    assert high[2] + low[2] == model.import_wh(k) - model.import_wh(start_k)  # derived since the profile, not 70/30
    assert {"1-0:1.8.1": high[2], "1-0:1.8.2": low[2]} == brute_force_tariffs(
        model, [("06:00", "1-0:1.8.1"), ("22:00", "1-0:1.8.2")], start_k, k)
