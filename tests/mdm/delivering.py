"""The gateway's side of a meter data delivery, written for the tests from docs/protocol.md
section 14 (independently of ``mdm/``): the XML of section 14.2 for a
:class:`~domain.meterdata.delivery.Delivery`, the CMS container (signed with a gateway's SIG key,
encrypted for an EMT's ENC certificate), and an HTTP/1.1 client over TLS with the gateway's
certificate (ssl + h11)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import h11
from defusedxml import ElementTree as SafeET

from domain.meterdata.delivery import Delivery, MeterData
from pki import cms
from pki import tls as pki_tls
from pki.testpki import Entity, TestPki

COSEM = "urn:k461-dke-de:cor-1"
GG = "urn:gridgate:mdm:1"
CONTENT_TYPE = "application/vnd.de-dke-k461-cosem+xml;encap=cms-tr03109"
PATH = "/mdm/info-report"


def _ln(obis: str) -> str:
    """``A-B:C.D.E[.F]`` -> 12 hex digits of the logical name (F = 255 when omitted)."""
    ab, cde = obis.split(":")
    a, b = ab.split("-")
    parts = [int(a), int(b), *(int(x) for x in cde.split("."))]
    if len(parts) == 5:
        parts.append(255)
    return bytes(parts).hex()


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{COSEM}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def _time(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _capture(parent: ET.Element, class_id: int, obis: str) -> None:
    s = _el(parent, "structure")
    _el(s, "long-unsigned", str(class_id))
    _el(s, "octet-string", _ln(obis))
    _el(s, "integer", "2")
    _el(s, "long-unsigned", "0")


def _meter(ldevs: ET.Element, meter: MeterData) -> None:
    ldev = _el(ldevs, "ldev", id=f"{meter.meter_id.lower()}.sm")
    objects = _el(ldev, "objects", count=str(len(meter.scaler_units) + len(meter.profiles) + len(meter.registers)))
    for obis, (scaler, unit) in meter.scaler_units.items():
        if any(r.obis == obis for r in meter.registers):
            continue
        obj = _el(objects, "object", **{"class-id": "4", "version": "0", "id": _ln(obis)})
        attr = _el(_el(obj, "attributes", count="1"), "attribute", id="3")
        s = _el(attr, "structure")
        _el(s, "integer", str(scaler))
        _el(s, "enum", str(unit))
    for p in meter.profiles:
        obj = _el(objects, "object", **{"class-id": "7", "version": "1", "id": _ln(p.obis)})
        attrs = _el(obj, "attributes", count="3")
        columns = _el(_el(attrs, "attribute", id="3"), "array", count=str(len(p.columns) + 2))
        _capture(columns, 8, "0-0:1.0.0")
        for obis in p.columns:
            _capture(columns, 4, obis)
        _capture(columns, 1, "0-0:97.97.0")
        _el(_el(attrs, "attribute", id="4"), "double-long-unsigned", str(p.period_s))
        buffer = _el(_el(attrs, "attribute", id="2"), "array", count=str(len(p.entries)))
        for e in p.entries:
            s = _el(buffer, "structure")
            _el(s, "date-time", _time(e.end))
            for v in e.values:
                _el(s, "long64" if v is not None and v < 0 else "long64-unsigned", None if v is None else str(v))
            _el(s, "long64-unsigned", str(e.status))
    for r in meter.registers:
        obj = _el(objects, "object", **{"class-id": "4", "version": "0", "id": _ln(r.obis)})
        attrs = _el(obj, "attributes", count="4")
        _el(_el(attrs, "attribute", id="2"), "long64-unsigned", None if r.value is None else str(r.value))
        s = _el(_el(attrs, "attribute", id="3"), "structure")
        _el(s, "integer", str(r.scaler))
        _el(s, "enum", str(r.unit))
        _el(_el(attrs, "attribute", id="4"), "long64-unsigned", str(r.status))
        _el(_el(attrs, "attribute", id="5"), "date-time", _time(r.captured_at))


def to_xml(d: Delivery) -> bytes:
    """The payload of docs/protocol.md 14.2 for ``d``."""
    ET.register_namespace("", COSEM)
    ET.register_namespace("gg", GG)
    root = ET.Element(f"{{{COSEM}}}cosem", {
        f"{{{GG}}}gateway": d.gateway_id, f"{{{GG}}}recipient": d.recipient, f"{{{GG}}}profile": d.profile_id,
        f"{{{GG}}}taf": str(d.taf), f"{{{GG}}}reason": d.reason,
        f"{{{GG}}}created": d.created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")})
    ldevs = _el(root, "ldevs", count=str(len(d.meters)))
    for m in d.meters:
        _meter(ldevs, m)
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)


def seal(payload: bytes, signer: Entity, recipient_enc: Entity) -> bytes:
    """Signed with ``signer``'s SIG key, encrypted for ``recipient_enc``'s ENC certificate."""
    return cms.seal(payload, sign_key=signer.sig.key, sign_cert=signer.sig.cert, recipient_cert=recipient_enc.enc.cert)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def reason(self) -> str | None:
        """The reason code of an ``<error>`` body."""
        if not self.body:
            return None
        root = SafeET.fromstring(self.body)
        assert root.tag == f"{{{GG}}}error", self.body
        return root.get("reason")


def client_context(pki: TestPki, gateway: Entity) -> ssl.SSLContext:
    return pki_tls.client_context(gateway.tls.cert_path, gateway.tls.key_path, [pki.root_path],
                                  intermediates=[pki.chain_path])


class GatewayConnection:
    """One TLS connection of a gateway to the receiver, HTTP/1.1 requests one after the other."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, host: str, port: int, ctx: ssl.SSLContext, sni: str) -> GatewayConnection:
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=sni)
        return cls(reader, writer)

    async def post(self, body: bytes, *, cid: str | None = None, sni: str = "x", path: str = PATH,
                   content_length: int | None = None, send_body: bool = True, timeout: float = 30) -> Answer:
        headers = [("Host", sni), ("Content-Type", CONTENT_TYPE), ("x-CID", cid or f"uuid:{uuid.uuid4()}"),
                   ("Content-Length", str(len(body) if content_length is None else content_length))]
        data = self.h11.send(h11.Request(method="POST", target=path, headers=headers))
        if send_body:
            data += self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage())
        self.writer.write(data)
        await self.writer.drain()
        return await asyncio.wait_for(self._answer(), timeout)

    async def _answer(self) -> Answer:
        status, headers, body = 0, {}, b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                chunk = await self.reader.read(65536)
                self.h11.receive_data(chunk)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
                    self.h11.start_next_cycle()
                return Answer(status, headers, body)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before an answer")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


async def deliver(host: str, port: int, ctx: ssl.SSLContext, sni: str, body: bytes, *,
                  cid: str | None = None) -> Answer:
    """One delivery on a connection of its own."""
    conn = await GatewayConnection.open(host, port, ctx, sni)
    try:
        return await conn.post(body, cid=cid, sni=sni)
    finally:
        await conn.close()
