"""Request builders for the simulator tests (XML per docs/protocol.md section 10)."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import xml.etree.ElementTree as ET
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki.testpki import TestPki
from simulator.meters import INTERVAL_S, MeterModel, demo_mk0
from tests.simulator.gwa_stub import GwaStub, Link, Reply, child, xml

DEVICE_INFO = "objects/1-0000600100ff/attributes/2"
CLOCK = "objects/8-0000010000ff/attributes/2"
CERTS_READ = "objects/64-00002b0000ff/attributes/6"
CERTS_INSTALL = "objects/64-00002b0000ff/methods/6"
METER_PROFILE = "objects/130-00005e3101ff/methods/{}"
COMM_PROFILE = "objects/131-00005e3102ff/methods/{}"
EVAL_PROFILE = "objects/132-00005e3103ff/methods/{}"
LMN = "objects/133-00005e3104ff/methods/{}"
SYSTEM_LOG = "objects/7-0000636200ff/attributes/2"
CONSUMER_LOG = "objects/7-0000636202ff/attributes/2"
FIRMWARE_STATUS = "objects/18-00002c0000ff/attributes/6"
FIRMWARE = "objects/18-00002c0000ff/methods/{}"
REBOOT = "objects/9-00000a0000ff/methods/1"

_ids = itertools.count(1)


def new_id(prefix: str = "cmd") -> str:
    return f"{prefix}-{next(_ids)}"


def cert_el(owner: str, role: str, usage: str, cert: x509.Certificate) -> ET.Element:
    der = cert.public_bytes(serialization.Encoding.DER)
    return child("certificate", {"owner": owner, "role": role, "usage": usage}, base64.b64encode(der).decode())


def emt_certificates(pki: TestPki, name: str = "emt1") -> bytes:
    emt = pki.emts[name]
    return xml("certificates", {}, *(cert_el(name, "emt", u, emt.credential(u).cert) for u in ("tls", "sig", "enc")))


async def post(link: Link, path: str, body: bytes, command_id: str | None = None) -> Reply:
    return await link.request("POST", path, body, command_id=command_id or new_id())


async def pair(link: Link, stub: GwaStub, meter: str, mk0: bytes | None = None) -> ET.Element:
    cid = new_id("pair")
    body = xml("pairMeter", {"meter": meter, "interface": "lmn-wired"},
               child("mk0", text=(mk0 or demo_mk0(meter)).hex()))
    reply = await post(link, LMN.format(1), body, cid)
    assert reply.status == 202, reply
    return await stub.wait_notify(cid)


async def commission(link: Link, stub: GwaStub, pki: TestPki, meter: str) -> None:
    """Install EMT certificates, pair the meter, write meter/communication/evaluation profiles."""
    assert (await post(link, CERTS_INSTALL, emt_certificates(pki))).status == 200
    notify = await pair(link, stub, meter)
    assert notify.get("status") == "200"
    mp = xml("meterProfile", {"id": f"mp-{meter}", "meter": meter, "interface": "lmn-wired", "capturePeriod": 60},
             child("register", {"obis": "1-0:1.8.0", "unit": 30, "scaler": 0}),
             child("register", {"obis": "1-0:2.8.0", "unit": 30, "scaler": 0}))
    assert (await post(link, METER_PROFILE.format(1), mp)).status == 200
    cp = xml("communicationProfile", {"id": "cp-emt1", "peer": "emt1", "role": "emt",
                                      "endpoint": "https://emt1.gridgate.test:443/smgw"})
    assert (await post(link, COMM_PROFILE.format(1), cp)).status == 200
    ep = xml("evaluationProfile", {"id": f"ep-taf7-{meter}", "taf": 7, "recipient": "emt1",
                                   "communicationProfile": "cp-emt1", "meterProfile": f"mp-{meter}",
                                   "interval": 900, "deliveryPeriod": 86400, "active": "true"},
             child("register", {"obis": "1-0:1.8.0"}))
    assert (await post(link, EVAL_PROFILE.format(1), ep)).status == 200


def brute_force_tariffs(model: MeterModel, schedule: list[tuple[str, str]], start_k: int,
                        end_k: int) -> dict[str, int]:
    """Interval by interval: the tariff in force at each quarter hour's local start time."""
    berlin = ZoneInfo("Europe/Berlin")
    quarters = sorted(((int(at[:2]) * 60 + int(at[3:])) // 15 * 15, reg) for at, reg in schedule)
    out = {reg: 0 for _, reg in schedule}
    for i in range(start_k, end_k):
        local = dt.datetime.fromtimestamp(i * INTERVAL_S, berlin)
        minute = local.hour * 60 + local.minute
        reg = next((r for q, r in reversed(quarters) if q <= minute), quarters[-1][1])
        out[reg] += model.import_wh(i + 1) - model.import_wh(i)
    return out



# --------------------------------------------------------------------------- meter data deliveries (protocol.md 14)
ENERGY = ("1-0:1.8.0", "1-0:2.8.0", "1-0:1.8.1", "1-0:1.8.2")
GRID = ("1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0", "1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0", "1-0:16.7.0", "1-0:14.7.0")
UNITS = {**dict.fromkeys(ENERGY, (30, 0)), "1-0:32.7.0": (35, -1), "1-0:52.7.0": (35, -1), "1-0:72.7.0": (35, -1),
         "1-0:31.7.0": (33, -2), "1-0:51.7.0": (33, -2), "1-0:71.7.0": (33, -2), "1-0:16.7.0": (27, 0),
         "1-0:14.7.0": (44, -2)}


def evaluation_profile(pid: str, taf: int, meter: str, registers: tuple[str, ...] = ("1-0:1.8.0",), *,
                       interval: int = 900, period: int = 86400, valid_from: str | None = None,
                       valid_to: str | None = None, switching: tuple[tuple[str, str], ...] = ()) -> bytes:
    attrs: dict[str, object] = {"id": pid, "taf": taf, "recipient": "emt1", "communicationProfile": "cp-emt1",
                                "meterProfile": f"mp-{meter}", "interval": interval, "deliveryPeriod": period,
                                "active": "true"}
    if valid_from:
        attrs["validFrom"] = valid_from
    if valid_to:
        attrs["validTo"] = valid_to
    return xml("evaluationProfile", attrs, *(child("register", {"obis": r}) for r in registers),
               *(child("switchingTime", {"at": at, "register": reg}) for at, reg in switching))


async def commission_deliveries(link: Link, stub: GwaStub, pki: TestPki, meter: str, endpoint: str,
                                profiles: list[bytes], *, scalers: dict[str, int] | None = None) -> None:
    """Install emt1's certificates, pair ``meter``, write its meter profile (every register the
    tests use, natural scalers unless ``scalers`` says otherwise), a communication profile to
    ``endpoint`` and the evaluation ``profiles``."""
    assert (await post(link, CERTS_INSTALL, emt_certificates(pki))).status == 200
    assert (await pair(link, stub, meter)).get("status") == "200"
    scalers = scalers or {}
    mp = xml("meterProfile", {"id": f"mp-{meter}", "meter": meter, "interface": "lmn-wired", "capturePeriod": 60},
             *(child("register", {"obis": o, "unit": u, "scaler": scalers.get(o, s)}) for o, (u, s) in UNITS.items()))
    assert (await post(link, METER_PROFILE.format(1), mp)).status == 200
    cp = xml("communicationProfile", {"id": "cp-emt1", "peer": "emt1", "role": "emt", "endpoint": endpoint})
    assert (await post(link, COMM_PROFILE.format(1), cp)).status == 200
    for ep in profiles:
        reply = await post(link, EVAL_PROFILE.format(1), ep)
        assert reply.status == 200, reply
