"""Who may connect, and what the head-end does with bad input: foreign, unknown and revoked
certificates are refused; openssl's s_client with a gateway's test certificate completes a
handshake, a self-signed one does not; garbage, unparsable HTTP, oversize bodies, Notifies with an
unknown CID and a gateway speaking for another gateway are refused, and the head-end keeps
serving everyone else."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.exceptions import ApplicationError

from headend import contract as M
from headend import xmlcodec as X
from pki import cms
from pki import tls as pki_tls
from pki.testpki import TestPki, init_test_pki
from tests.headend.conftest import GATEWAYS, SNI, TENANT, UNKNOWN_GATEWAY, Acts, HeSim, HeTenant

if TYPE_CHECKING:
    import httpx

    from headend.service import HeadendService
    from tests.conftest import UserFactory


def gateway_context(pki: TestPki, gid: str) -> ssl.SSLContext:
    ent = pki.gateway(gid)
    return pki_tls.client_context(ent.tls.cert_path, ent.tls.key_path, [pki.root_path], intermediates=[pki.chain_path])


def admissions(headend: HeadendService, outcome: str) -> float:
    return headend.node.metrics.registry.get_sample_value(
        "gridgate_headend_admissions_total", {"tenant": TENANT, "kind": "management", "outcome": outcome}) or 0.0


def handshake_failures(headend: HeadendService) -> float:
    reg = headend.node.metrics.registry
    return sum(s.value for m in reg.collect() if m.name == "gridgate_headend_handshake_failures"
               for s in m.samples if s.name.endswith("_total"))


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float = 5) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(1), timeout)
    except (ConnectionError, ssl.SSLError):
        return True
    return data == b""


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    pki = init_test_pki(tmp_path_factory.mktemp("foreign") / "pki", gateways=0)
    pki.issue_gateway(GATEWAYS[0])  # same gateway ID, certificate of another CA
    return pki


async def test_foreign_certificate_is_refused(headend: HeadendService, he_tenant: HeTenant,
                                              foreign_pki: TestPki) -> None:
    host, port, _ = headend.node.bound
    ent = foreign_pki.gateway(GATEWAYS[0])
    ctx = pki_tls.client_context(ent.tls.cert_path, ent.tls.key_path, [he_tenant.pki.root_path])
    before = handshake_failures(headend)
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=SNI)
    except (ssl.SSLError, ConnectionError):
        pass  # refused during the handshake (TLS 1.2: the server's alert)
    else:
        assert await closed_by_peer(reader)
        writer.close()
    await asyncio.sleep(0.2)
    assert handshake_failures(headend) > before


async def test_unknown_and_revoked_gateways_are_refused(headend: HeadendService, he_tenant: HeTenant) -> None:
    from cryptography.x509 import load_der_x509_crl

    from domain.certificates import service
    from pki.profile import crl_urls

    host, port, _ = headend.node.bound
    pki = he_tenant.pki
    before = admissions(headend, "unknown_gateway")
    reader, writer = await asyncio.open_connection(host, port, ssl=gateway_context(pki, UNKNOWN_GATEWAY),
                                                   server_hostname=SNI)
    assert await closed_by_peer(reader)
    writer.close()
    assert admissions(headend, "unknown_gateway") == before + 1

    pki.revoke(pki.gateway(UNKNOWN_GATEWAY).tls.cert)
    crl = load_der_x509_crl(pki.crl_path("subca").read_bytes())
    for url in crl_urls(pki.gwa.tls.cert):
        service.crl_cache(he_tenant.ctx).put(url, crl)
    revoked_before = admissions(headend, "revoked")
    reader, writer = await asyncio.open_connection(host, port, ssl=gateway_context(pki, UNKNOWN_GATEWAY),
                                                   server_hostname=SNI)
    assert await closed_by_peer(reader)
    writer.close()
    assert admissions(headend, "revoked") == revoked_before + 1


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.BrainpoolP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{GATEWAYS[0]}.SMGW")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    c, k = directory / "self.crt", directory / "self.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return c, k


def _s_client(port: int, cert: Path, key: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", SNI, "-cert", str(cert),
         "-key", str(key), "-CAfile", str(ca), "-curves", "brainpoolP256r1", "-tls1_2"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20, check=False)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
async def test_openssl_s_client_handshake(headend: HeadendService, he_tenant: HeTenant, tmp_path: Path) -> None:
    _, port, _ = headend.node.bound
    pki = he_tenant.pki
    ent = pki.gateway(GATEWAYS[2])
    chain_cert = tmp_path / "gw-chain.pem"
    chain_cert.write_bytes(ent.tls.cert_path.read_bytes() + pki.subca_path.read_bytes())
    good = await asyncio.to_thread(_s_client, port, chain_cert, ent.tls.key_path, pki.root_path)
    out = good.stdout + good.stderr
    assert "Verify return code: 0 (ok)" in out, out[-2000:]
    assert "Cipher is ECDHE-ECDSA-AES" in out or "Cipher    : ECDHE-ECDSA-AES" in out, out[-2000:]
    assert "GRIDGATE-TEST.GWA" in out

    cert, key = _self_signed(tmp_path)
    before = handshake_failures(headend)
    bad = await asyncio.to_thread(_s_client, port, cert, key, pki.root_path)
    out = bad.stdout + bad.stderr
    assert "Cipher is (NONE)" in out or bad.returncode != 0, out[-2000:]
    await asyncio.sleep(0.2)
    assert handshake_failures(headend) > before


async def test_garbage_and_no_tenant_do_not_hurt_others(sim: HeSim, headend: HeadendService, acts: Acts) -> None:
    host, port, inbound = headend.node.bound
    before = handshake_failures(headend)
    for p in (port, inbound):
        reader, writer = await asyncio.open_connection(host, p)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4)
        await writer.drain()
        assert await closed_by_peer(reader)
        writer.close()
    await asyncio.sleep(0.2)
    assert handshake_failures(headend) >= before + 2
    info = await acts("read_device_info", M.ReadDeviceInfoInput(gateway_id=GATEWAYS[5], command_id="g-info"))
    assert info.gateway_id == GATEWAYS[5]


class Inbound:
    """A raw inbound connection as a gateway (the Notify/event channel)."""

    def __init__(self, headend: HeadendService, pki: TestPki, gid: str) -> None:
        self.headend, self.pki, self.gid = headend, pki, gid

    def seal(self, xml: bytes, signer: str | None = None) -> bytes:
        ent = self.pki.gateway(signer or self.gid)
        return cms.seal(xml, sign_key=ent.sig.key, sign_cert=ent.sig.cert, recipient_cert=self.pki.gwa.enc.cert)

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None,
                   raw: bytes | None = None) -> int | None:
        host, _, inbound = self.headend.node.bound
        reader, writer = await asyncio.open_connection(host, inbound, ssl=gateway_context(self.pki, self.gid),
                                                       server_hostname=SNI)
        try:
            if raw is None:
                hdrs = {"Host": f"{host}:{inbound}", "Content-Length": str(len(body)),
                        "Content-Type": "application/vnd.de-dke-k461-cosem+xml;encap=cms-tr03109",
                        "x-CID": f"uuid:{uuid.uuid4()}", **(headers or {})}
                raw = f"POST {path} HTTP/1.1\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()).encode()
                raw += b"\r\n" + body
            writer.write(raw)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 10)
            return int(line.split()[1]) if line.startswith(b"HTTP/1.1") else None
        except (ConnectionError, ssl.SSLError):
            return None
        finally:
            writer.close()


def events_xml(gid: str, event_id: str, code: str = "meter_tamper") -> bytes:
    root = X.element("events", {"gateway": gid}, children=[
        X.element("event", {"id": event_id, "code": code, "level": 3, "time": X.timestamp()}, "terminal cover opened")])
    return X.dumps(root)


async def test_inbound_bad_input_is_refused_and_nothing_stored(sim: HeSim, headend: HeadendService, he_tenant: HeTenant,
                                                               api: httpx.AsyncClient, make_user: UserFactory) -> None:
    gid, other = GATEWAYS[5], GATEWAYS[4]
    ib = Inbound(headend, he_tenant.pki, gid)
    assert await ib.post("/gwa/notify", b"", raw=b"THIS IS NOT HTTP\r\n\r\n") in (400, None)
    notify = X.dumps(X.element("notify", {"gateway": gid, "status": 200}))
    assert await ib.post("/gwa/notify", ib.seal(notify)) == 404  # unknown CID
    assert await ib.post("/gwa/notify", b"", headers={"Content-Length": str(10 * 1024 * 1024)}) in (413, None)
    assert await ib.post("/gwa/events", b"\x30\x03garbage") == 400
    spoofed = str(uuid.uuid4())
    # gateway 5's connection, events of gateway 4 signed by gateway 4: speaking for another gateway
    assert await ib.post("/gwa/events", ib.seal(events_xml(other, spoofed), signer=other)) == 403
    # signed by gateway 5 but naming gateway 4
    assert await ib.post("/gwa/events", ib.seal(events_xml(other, spoofed))) == 403
    good = str(uuid.uuid4())
    assert await ib.post("/gwa/events", ib.seal(events_xml(gid, good))) == 204
    assert await ib.post("/gwa/events", ib.seal(events_xml(gid, good))) == 204  # re-delivery: stored once

    user = await make_user(tenant=TENANT, role="auditor")
    r = await api.get(f"/api/v1/tenants/{TENANT}/gateways/{gid}/events", headers=user.headers)
    assert r.status_code == 200, r.text
    ids = [e["event_id"] for e in r.json()["items"]]
    assert ids.count(good) == 1 and spoofed not in ids
    r = await api.get(f"/api/v1/tenants/{TENANT}/gateways/{other}/events", headers=user.headers)
    assert spoofed not in [e["event_id"] for e in r.json()["items"]]


async def test_gateway_answering_for_another_gateway_is_dropped(sim: HeSim, headend: HeadendService,
                                                                he_tenant: HeTenant, acts: Acts) -> None:
    """A peer holding gateway 0's connection answers with a body signed by gateway 1: the head-end
    closes the connection, the command fails retryably, nothing is taken as gateway 0's answer."""
    gid, other = GATEWAYS[0], GATEWAYS[1]
    pki = he_tenant.pki
    host, port, _ = headend.node.bound
    reader, writer = await asyncio.open_connection(host, port, ssl=gateway_context(pki, gid), server_hostname=SNI)
    for _ in range(100):
        conn = headend.node.registry.get(TENANT, gid)
        if conn is not None and conn.peer.endswith(str(writer.get_extra_info("sockname")[1])):
            break
        await asyncio.sleep(0.05)

    async def fake_gateway() -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        cid = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"x-cid"))
        ent = pki.gateway(other)
        body = cms.seal(X.dumps(X.element("deviceInfo", {"gateway": other})), sign_key=ent.sig.key,
                        sign_cert=ent.sig.cert, recipient_cert=pki.gwa.enc.cert)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nx-CID: %s\r\n\r\n" % (len(body), cid) + body)
        await writer.drain()

    task = asyncio.create_task(fake_gateway())
    with pytest.raises(ApplicationError) as err:
        await acts("read_device_info", M.ReadDeviceInfoInput(gateway_id=gid, command_id="spoof-1"))
    await task
    assert err.value.type == "connection_lost" and not err.value.non_retryable
    assert await closed_by_peer(reader)
    writer.close()
    # The real gateway is woken again and answers for itself.
    info = await acts("read_device_info", M.ReadDeviceInfoInput(gateway_id=gid, command_id="spoof-2"))
    assert info.gateway_id == gid
