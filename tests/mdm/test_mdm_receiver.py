"""The receiver over real sockets (docs/mdm.md "Receiving", docs/protocol.md 14): a gateway
delivers a TAF 7 day and gets 201 once it is stored; the same again gets 200 and stores nothing;
every refusal of docs/mdm.md gets its status and reason, stores no values and is logged; an
unknown SNI and a foreign client certificate end the handshake; openssl's s_client with a gateway's
certificate completes one and sees the right EMT's certificate; concurrent deliveries share
commits."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from core.ids import demo_gateway_id, demo_meter_id
from domain.meterdata.days import SLOT, day_start, slots_in
from domain.meterdata.delivery import LOAD_PROFILE, Delivery, Entry, MeterData, Profile, Register
from domain.meterdata.models import MeterDay, MeterDelivery, MeterReading, MeterSeries
from mdm.service import MdmService
from pki.testpki import TestPki, init_test_pki
from tests.mdm.delivering import Answer, GatewayConnection, client_context, deliver, seal, to_xml
from tests.mdm.receiver_fixtures import FAULTY, NETZ, TENANT, UNKNOWN, VERTRIEB, RxTenant, sni


def taf7_day(day: dt.date, *, gateway: int = 0, meter: str | None = None, recipient: str = NETZ, taf: int = 7,
             start: int = 2_000_000, step: int = 50) -> Delivery:
    """A day of quarter-hour register readings of the gateway's first meter (the reading at local
    midnight that opens the day, then one at the end of each quarter hour)."""
    entries = tuple(Entry(end=day_start(day) + k * SLOT, values=(start + k * step,)) for k in range(slots_in(day) + 1))
    return Delivery(gateway_id=demo_gateway_id(gateway), recipient=recipient, profile_id=f"ep-{taf}-{recipient}",
                    taf=taf, reason="scheduled", created=day_start(day) + dt.timedelta(days=1, minutes=3),
                    meters=(MeterData(meter_id=meter or demo_meter_id(gateway, 0), scaler_units={"1-0:1.8.0": (0, 30)},
                                      profiles=(Profile(obis=LOAD_PROFILE, period_s=900, columns=("1-0:1.8.0",),
                                                        entries=entries),)),))


def bound(receiver: MdmService) -> tuple[str, int]:
    return receiver.receiver.bound


async def send(receiver: MdmService, rx: RxTenant, body: bytes, *, tls_gateway: str, emt: str = NETZ,
               cid: str | None = None) -> Answer:
    host, port = bound(receiver)
    return await deliver(host, port, client_context(rx.pki, rx.gateway(tls_gateway)), sni(emt), body, cid=cid)


def sealed(rx: RxTenant, d: Delivery, *, signer: str | None = None, emt: str | None = None) -> bytes:
    return seal(to_xml(d), rx.gateway(signer or d.gateway_id), rx.emt(emt or d.recipient))


async def log_row(rx: RxTenant, cid: str) -> MeterDelivery:
    async with rx.ctx.sessions() as session:
        row = await session.scalar(select(MeterDelivery).where(MeterDelivery.delivery_ref == cid))
    assert row is not None, f"no delivery log entry for {cid}"
    return row


async def days_stored(rx: RxTenant, day: dt.date) -> int:
    async with rx.ctx.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(MeterDay).where(MeterDay.day == day)) or 0)


async def test_a_taf7_day_is_stored_and_a_redelivery_stores_nothing(receiver: MdmService, rx_tenant: RxTenant) -> None:
    day = dt.date(2025, 3, 10)
    d = taf7_day(day)
    body = sealed(rx_tenant, d)
    cid = f"uuid:{uuid.uuid4()}"
    first = await send(receiver, rx_tenant, body, tls_gateway=d.gateway_id, cid=cid)
    assert (first.status, first.body, first.headers.get("x-cid")) == (201, b"", cid)
    row = await log_row(rx_tenant, cid)
    assert (row.outcome, row.gateway_id, row.recipient, row.taf, row.values_stored) == (
        "stored", d.gateway_id, NETZ, 7, 96 + 97)  # 96 quarter hours + 97 register readings
    async with rx_tenant.ctx.sessions() as session:
        (interval,) = (await session.scalars(
            select(MeterDay).join(MeterSeries, MeterSeries.id == MeterDay.series_id)
            .where(MeterSeries.obis == "1-1:1.29.0", MeterSeries.market_partner == NETZ, MeterDay.day == day))).all()
    assert interval.version == 1 and interval.values == [50] * 96

    # The same container again, and the same payload sealed anew (fresh keys: other bytes), one
    # after the other on one connection.
    host, port = bound(receiver)
    conn = await GatewayConnection.open(host, port, client_context(rx_tenant.pki, rx_tenant.gateway(d.gateway_id)),
                                        sni(NETZ))
    try:
        again = await conn.post(body, cid=cid, sni=sni(NETZ))
        resealed = await conn.post(sealed(rx_tenant, d), cid=cid, sni=sni(NETZ))
    finally:
        await conn.close()
    assert (again.status, resealed.status, again.body) == (200, 200, b"")
    async with rx_tenant.ctx.sessions() as session:
        outcomes = (await session.scalars(select(MeterDelivery.outcome).where(MeterDelivery.delivery_ref == cid)
                                          .order_by(MeterDelivery.id))).all()
        versions = await session.scalar(select(func.count()).select_from(MeterDay).where(MeterDay.day == day))
    assert list(outcomes) == ["stored", "duplicate", "duplicate"]
    assert versions == 2  # the register series and the interval series, one version each


async def test_a_supplier_gets_its_register_value(receiver: MdmService, rx_tenant: RxTenant) -> None:
    at = dt.datetime(2025, 4, 1, 22, tzinfo=dt.UTC)
    d = Delivery(gateway_id=demo_gateway_id(1), recipient=VERTRIEB, profile_id="ep-1", taf=1, reason="scheduled",
                 created=at + dt.timedelta(minutes=2), meters=(MeterData(meter_id=demo_meter_id(1, 0), registers=(
                     Register(obis="1-0:1.8.0", value=7_654_321, scaler=0, unit=30, status=0, captured_at=at),)),))
    answer = await send(receiver, rx_tenant, sealed(rx_tenant, d), tls_gateway=d.gateway_id, emt=VERTRIEB)
    assert answer.status == 201
    async with rx_tenant.ctx.sessions() as session:
        reading = await session.scalar(select(MeterReading).join(MeterSeries, MeterSeries.id == MeterReading.series_id)
                                       .where(MeterSeries.market_partner == VERTRIEB, MeterReading.at == at))
    assert reading is not None and reading.value == 7_654_321 and reading.meter_id == demo_meter_id(1, 0)


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    pki = init_test_pki(tmp_path_factory.mktemp("mdm-foreign") / "pki", gateways=0)
    pki.issue_gateway(demo_gateway_id(1))  # the same gateway ID, certificates of another CA
    return pki


async def test_every_refusal_has_its_status_and_reason_and_stores_no_values(
        receiver: MdmService, rx_tenant: RxTenant, foreign_pki: TestPki) -> None:
    rx = rx_tenant
    gw1 = demo_gateway_id(1)
    base = dt.date(2025, 5, 1)

    def day(n: int) -> dt.date:
        return base + dt.timedelta(days=2 * n)  # not adjacent: no case touches another's days

    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    xml_for_emt2 = taf7_day(day(0), gateway=1)
    cases: dict[str, tuple[bytes, str, int, str, dt.date | None]] = {
        # name: (body, TLS gateway, status, reason, day that must stay empty)
        "container for another EMT": (seal(to_xml(xml_for_emt2), rx.gateway(gw1), rx.emt(VERTRIEB)), gw1, 400,
                                      "not_for_this_emt", day(0)),
        "payload for another EMT": (sealed(rx, taf7_day(day(1), gateway=1, recipient=VERTRIEB), emt=NETZ), gw1, 400,
                                    "not_for_this_emt", day(1)),
        "unknown gateway": (sealed(rx, dataclasses.replace(taf7_day(day(2), gateway=1), gateway_id=UNKNOWN)),
                            UNKNOWN, 403, "unknown_gateway", day(2)),
        "gateway not in operation": (sealed(rx, taf7_day(day(3), gateway=3)), FAULTY, 403,
                                     "gateway_not_in_operation", day(3)),
        "meter of another gateway": (sealed(rx, taf7_day(day(4), gateway=1, meter=demo_meter_id(2, 0))), gw1, 422,
                                     "meter_not_assigned", day(4)),
        "TAF not ordered": (sealed(rx, taf7_day(day(5), gateway=1, taf=6)), gw1, 422, "taf_not_ordered", day(5)),
        "malformed XML": (seal(b"<cosem xmlns='urn:k461-dke-de:cor-1'><ldevs>", rx.gateway(gw1), rx.emt(NETZ)), gw1,
                          400, "malformed", None),
        "entity in XML": (seal(b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', rx.gateway(gw1), rx.emt(NETZ)), gw1,
                          400, "malformed", None),
        "malformed CMS": (os.urandom(600), gw1, 400, "malformed", None),
        "values in the future": (sealed(rx, taf7_day(tomorrow, gateway=1)), gw1, 422, "future_period", tomorrow),
        "signed by another gateway": (sealed(rx, taf7_day(day(6), gateway=1), signer=demo_gateway_id(2)), gw1, 403,
                                      "signer_mismatch", day(6)),
        "payload names another gateway": (seal(to_xml(taf7_day(day(7), gateway=2)), rx.gateway(gw1), rx.emt(NETZ)),
                                          gw1, 403, "signer_mismatch", day(7)),
        "signer of a foreign PKI": (seal(to_xml(taf7_day(day(8), gateway=1)), foreign_pki.gateway(gw1), rx.emt(NETZ)),
                                    gw1, 403, "bad_signature", day(8)),
    }
    with capture_logs() as logs:
        for name, (body, tls_gateway, status, reason, empty_day) in cases.items():
            cid = f"uuid:{uuid.uuid4()}"
            answer = await send(receiver, rx, body, tls_gateway=tls_gateway, cid=cid)
            assert (answer.status, answer.reason) == (status, reason), name
            row = await log_row(rx, cid)
            assert (row.outcome, row.refusal, row.values_stored, row.conflicts) == ("refused", reason, 0, None), name
            # The log names the gateway of the payload once it is parsed, else the TLS client.
            # The log names the gateway the TLS connection authenticated, whatever the payload says.
            assert (row.gateway_id, row.size) == (tls_gateway, len(body)), name
            if empty_day is not None:
                assert await days_stored(rx, empty_day) == 0, name
    refused = [e for e in logs if e["event"] == "mdm.delivery_refused"]
    assert sorted(e["reason"] for e in refused) == sorted(c[3] for c in cases.values())
    assert not any("PRIVATE KEY" in str(e) for e in logs)


async def test_an_oversize_body_is_refused_before_it_is_read(receiver: MdmService, rx_tenant: RxTenant) -> None:
    host, port = bound(receiver)
    gw = demo_gateway_id(0)
    conn = await GatewayConnection.open(host, port, client_context(rx_tenant.pki, rx_tenant.gateway(gw)), sni(NETZ))
    cid = f"uuid:{uuid.uuid4()}"
    declared = receiver.msettings.max_body_bytes + 1
    try:
        answer = await conn.post(b"", cid=cid, sni=sni(NETZ), content_length=declared, send_body=False)
    finally:
        await conn.close()
    assert (answer.status, answer.reason, answer.headers.get("connection")) == (413, "oversize", "close")
    await asyncio.sleep(0.3)  # the refusal is logged with the next batch
    row = await log_row(rx_tenant, cid)
    assert (row.outcome, row.refusal, row.size, row.gateway_id) == ("refused", "oversize", declared, gw)


def _handshake_failures(receiver: MdmService) -> float:
    reg = receiver.receiver.metrics.registry
    return sum(s.value for m in reg.collect() if m.name == "gridgate_mdm_handshake_failures"
               for s in m.samples if s.name.endswith("_total"))


async def _refused(host: str, port: int, ctx: ssl.SSLContext, server_hostname: str | None) -> bool:
    """True when the connection is refused during the handshake or closed right after it."""
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=server_hostname)
    except (ssl.SSLError, ConnectionError):
        return True
    try:
        data = await asyncio.wait_for(reader.read(1), 5)
    except (ssl.SSLError, ConnectionError):
        return True
    finally:
        writer.close()
    return data == b""


async def test_unknown_names_and_foreign_certificates_end_the_handshake(
        receiver: MdmService, rx_tenant: RxTenant, foreign_pki: TestPki) -> None:
    host, port = bound(receiver)
    good = client_context(rx_tenant.pki, rx_tenant.gateway(demo_gateway_id(0)))
    before = _handshake_failures(receiver)
    with capture_logs() as logs:
        assert await _refused(host, port, good, sni("9900000000031"))  # no such EMT identity
        assert await _refused(host, port, good, f"{NETZ}.nosuchtenant.mdm.gridgate.test")
        assert await _refused(host, port, good, None)  # no SNI (an IP address): no identity
    assert [e["server_name"] for e in logs if e["event"] == "mdm.sni_refused"] == [
        sni("9900000000031"), f"{NETZ}.nosuchtenant.mdm.gridgate.test", None]
    foreign = client_context(rx_tenant.pki, foreign_pki.gateway(demo_gateway_id(1)))
    assert await _refused(host, port, foreign, sni(NETZ))
    await asyncio.sleep(0.2)
    assert _handshake_failures(receiver) >= before + 4
    # The receiver still serves everyone else.
    d = taf7_day(dt.date(2025, 6, 20), gateway=2)
    assert (await send(receiver, rx_tenant, sealed(rx_tenant, d), tls_gateway=d.gateway_id)).status == 201


def _s_client(port: int, name: str, cert: Path, key: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, "-cert", str(cert),
         "-key", str(key), "-CAfile", str(ca), "-curves", "brainpoolP256r1", "-tls1_2"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20, check=False)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
async def test_openssl_s_client_gets_the_certificate_of_the_emt_it_names(
        receiver: MdmService, rx_tenant: RxTenant, tmp_path: Path) -> None:
    _, port = bound(receiver)
    pki = rx_tenant.pki
    ent = pki.gateway(demo_gateway_id(4))
    chain = tmp_path / "gw-chain.pem"
    chain.write_bytes(ent.tls.cert_path.read_bytes() + pki.subca_path.read_bytes())
    for mp_id, cn in ((NETZ, "EMT1-TEST.EMT"), (VERTRIEB, "EMT2-TEST.EMT")):
        done = await asyncio.to_thread(_s_client, port, sni(mp_id), chain, ent.tls.key_path, pki.root_path)
        out = done.stdout + done.stderr
        assert "Verify return code: 0 (ok)" in out, out[-2000:]
        assert "Cipher is ECDHE-ECDSA-AES" in out or "Cipher    : ECDHE-ECDSA-AES" in out, out[-2000:]
        assert f"CN = {cn}" in out or f"CN={cn}" in out, out[-2000:]


async def test_concurrent_deliveries_share_commits(receiver: MdmService, rx_tenant: RxTenant) -> None:
    n = 24
    deliveries = [taf7_day(dt.date(2025, 7, 1) + dt.timedelta(days=2 * i), gateway=(0, 1, 2, 4, 5)[i % 5])
                  for i in range(n)]
    registry = receiver.receiver.metrics.registry

    def batches() -> tuple[float, float]:
        labels = {"tenant": TENANT}
        return (registry.get_sample_value("gridgate_mdm_batch_size_count", labels) or 0.0,
                registry.get_sample_value("gridgate_mdm_batch_size_sum", labels) or 0.0)

    host, port = bound(receiver)
    bodies = [sealed(rx_tenant, d) for d in deliveries]
    conns = await asyncio.gather(*(GatewayConnection.open(host, port, client_context(
        rx_tenant.pki, rx_tenant.gateway(d.gateway_id)), sni(NETZ)) for d in deliveries))
    count0, sum0 = batches()
    try:  # every connection is open: the deliveries arrive together
        answers = await asyncio.gather(*(c.post(b, sni=sni(NETZ)) for c, b in zip(conns, bodies, strict=True)))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    assert [a.status for a in answers] == [201] * n
    count, total = batches()
    assert total - sum0 == n
    assert count - count0 < n  # fewer transactions than deliveries
    stored = registry.get_sample_value("gridgate_mdm_deliveries_total",
                                       {"tenant": TENANT, "outcome": "stored", "reason": ""})
    assert stored is not None and stored >= n


async def test_what_the_simulator_writes_is_stored(receiver: MdmService, rx_tenant: RxTenant) -> None:
    """The simulator's own encoder (simulator/infoxml.py, written from the protocol text too)."""
    from simulator import infoxml as I

    day = dt.date(2025, 10, 26)  # the last Sunday of October: 100 quarter hours
    gw = demo_gateway_id(4)
    start = day_start(day).timestamp()
    column = I.Column("1-0:1.8.0", 0, 30, "long64-unsigned")
    entries = [(start + k * 900, [3_000_000 + 40 * k if k != 7 else None], (1 << 13) << 32 if k == 7 else 0)
               for k in range(slots_in(day) + 1)]
    xml = I.document(gateway=gw, recipient=NETZ, profile="ep-7-sim", taf=7, reason="scheduled",
                     created=start + 86_400 + 120, meter=demo_meter_id(4, 0),
                     objects=[*I.register_objects([column]), I.profile_generic(I.LOAD_PROFILE, 900, [column],
                                                                                 entries)])
    answer = await send(receiver, rx_tenant, seal(xml, rx_tenant.gateway(gw), rx_tenant.emt(NETZ)), tls_gateway=gw)
    assert answer.status == 201
    async with rx_tenant.ctx.sessions() as session:
        (interval,) = (await session.scalars(
            select(MeterDay).join(MeterSeries, MeterSeries.id == MeterDay.series_id)
            .where(MeterSeries.obis == "1-1:1.29.0", MeterDay.day == day))).all()
    assert len(interval.values) == 100 and interval.values.count(None) == 2 and interval.values[0] == 40
